package integration

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clientLeaf is a client certificate for cn, which is also its DNS name.
func clientLeaf(cn string) leafSpec { return leafSpec{cn: cn, dns: []string{cn}, client: true} }

// goCert is c for a Go client.
func goCert(t testing.TB, c *testCert) tls.Certificate {
	pair, err := tls.X509KeyPair(c.certPEM, c.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// sClientEnv runs openssl s_client against an env-role server, with
// extra arguments (a client certificate), and returns the program's
// environment as the client received it (nil if none came).
func (s *server) sClientEnv(t testing.TB, extra ...string) map[string]string {
	t.Helper()
	openssl := needTool(t, "openssl")
	args := append([]string{"s_client", "-quiet", "-ign_eof", "-connect", s.addr, "-servername", serverName}, extra...)
	cmd := exec.Command(openssl, args...)
	cmd.Stdin = bytes.NewReader(nil)
	out, _ := cmd.Output() // a refused handshake is an exit status 1 here
	var dump []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, `"`) {
			dump = append(dump, line)
		}
	}
	if len(dump) == 0 {
		return nil
	}
	return parseEnvDump(t, strings.Join(dump, "\n")+"\n")
}

// endStatus waits for the next "end" line with status code and returns
// it whole.
func (s *server) endStatus(t testing.TB, code int) {
	t.Helper()
	s.waitLog(t, regexp.MustCompile(`^sslserver: end \d+ status `+strconv.Itoa(code)+`$`))
}

// TestClientCertRequired: -m with CAFILE. openssl s_client with a
// certificate from the CA gets a session whose program sees who the
// client is; without a certificate, or with one from another CA, the
// session ends with status 110 and a warning giving the reason.
func TestClientCertRequired(t *testing.T) {
	ca, other := newTestCA(t, "Itest client CA"), newTestCA(t, "Itest other CA")
	good, stranger := ca.issue(t, clientLeaf("client.example.net")), other.issue(t, clientLeaf("client.example.net"))
	s := startServer(t, serverConfig{flags: []string{"-m", "-s"}, role: "env", env: []string{"CAFILE=" + ca.path}})

	vars := s.sClientEnv(t, "-cert", good.certPath, "-key", good.keyPath)
	checkExact(t, vars, map[string]string{
		"SSL_CLIENT_S_DN_CN": "client.example.net",
		"SSL_CLIENT_VERIFY":  "SUCCESS",
		"SSL_CLIENT_I_DN":    "/O=Itest/CN=Itest client CA",
	})
	if b, _ := pem.Decode([]byte(vars["SSL_CLIENT_CERT"])); b == nil || !bytes.Equal(b.Bytes, good.certDER) {
		t.Errorf("SSL_CLIENT_CERT is not the client's certificate: %q", vars["SSL_CLIENT_CERT"])
	}
	s.endStatus(t, 0)

	if vars := s.sClientEnv(t); vars != nil {
		t.Errorf("a client without a certificate reached the program: %v", vars)
	}
	s.waitLog(t, regexp.MustCompile(`^sslserver: warning: dropping connection from 127\.0\.0\.1, client certificate verification failed: no client certificate$`))
	s.endStatus(t, 110)

	if vars := s.sClientEnv(t, "-cert", stranger.certPath, "-key", stranger.keyPath); vars != nil {
		t.Errorf("a client with another CA's certificate reached the program: %v", vars)
	}
	s.waitLog(t, regexp.MustCompile(`^sslserver: warning: dropping connection from 127\.0\.0\.1, client certificate verification failed: x509: certificate signed by unknown authority`))
	if n := s.countLog(regexp.MustCompile(`^sslserver: end \d+ status 110$`)); n < 1 {
		t.Errorf("no session ended with 110:\n%s", s.log.text())
	}
	s.waitCount(t, regexp.MustCompile(`^sslserver: end \d+ status 110$`), 2)
	if n := s.countLog(regexp.MustCompile(`^sslserver: ok `)); n != 1 {
		t.Errorf("%d programs started, want 1: the refused clients' programs must not run:\n%s", n, s.log.text())
	}
}

// TestClientCertNotAsked: under -Z (the default) SSL_CLIENT_VERIFY is
// NONE and a client certificate is not asked for.
func TestClientCertNotAsked(t *testing.T) {
	s := startServer(t, serverConfig{flags: []string{"-s"}, role: "env"})
	vars := s.sClientEnv(t)
	checkExact(t, vars, map[string]string{"SSL_CLIENT_VERIFY": "NONE"})
	if _, ok := vars["SSL_CLIENT_S_DN"]; ok {
		t.Errorf("SSL_CLIENT_S_DN set under -Z: %q", vars["SSL_CLIENT_S_DN"])
	}
}

// nameMatchServer starts a server as c says, whose client CA is the
// returned one and whose DNS names from "client.example.net".
func nameMatchServer(t *testing.T, from string, c serverConfig) (*server, *testCA) {
	t.Helper()
	notInHosts(t, from)
	dns := startDNS(t)
	dns.ptr(from, "client.example.net.")
	ca := newTestCA(t, "Itest client CA")
	c.env = append(c.env, "CAFILE="+ca.path, dns.cacheVar())
	return startServer(t, c), ca
}

// TestClientCertNameMatch: -z matches the client certificate's name to
// the PTR name of the client's address (from the test's DNS server).
func TestClientCertNameMatch(t *testing.T) {
	const from = "127.77.3.1"
	s, ca := nameMatchServer(t, from, serverConfig{flags: []string{"-z", "-h", "-s"}, role: "env"})
	client := func(c *testCert) *tls.Config {
		return &tls.Config{RootCAs: s.cert.pool, ServerName: serverName, Certificates: []tls.Certificate{goCert(t, c)}}
	}

	tc, err := handshakeFrom(s.addr, from, client(ca.issue(t, clientLeaf("Client.Example.NET"))))
	if err != nil {
		t.Fatalf("handshake with the host's own certificate: %v", err)
	}
	pid := s.sessionPIDFrom(t, from, localPort(tc))
	vars := s.readEnvTLS(t, tc, pid)
	checkExact(t, vars, map[string]string{"SSL_CLIENT_S_DN_CN": "Client.Example.NET", "SSL_CLIENT_VERIFY": "SUCCESS"})

	tc, err = handshakeFrom(s.addr, from, client(ca.issue(t, clientLeaf("other.example.net"))))
	if err == nil {
		tc.SetDeadline(time.Now().Add(waitTime))
		if n, _ := tc.Read(make([]byte, 1)); n > 0 {
			t.Error("a client whose certificate names another host got data from the program")
		}
		tc.Close()
	}
	s.waitLog(t, regexp.MustCompile(`^sslserver: warning: dropping connection from 127\.77\.3\.1, client certificate refused: names \["other\.example\.net"\], none is the remote host "client\.example\.net\.?"$`))
	s.endStatus(t, 110)
}

// TestClientCertNameMatchDelayed: -z under -n (UCSPI-TLS). The ytls
// program talks plaintext and writes Y; the worker does the handshake,
// the supervisor matches the certificate's names to the PTR name, and
// only then does the program get its block and the client's bytes. A
// certificate for another host ends the session with status 110 and
// the refusal's warning: the client gets nothing from the program.
func TestClientCertNameMatchDelayed(t *testing.T) {
	const from = "127.77.3.2"
	s, ca := nameMatchServer(t, from, serverConfig{flags: []string{"-n", "-z", "-h"}, role: "ytls"})
	starttls := func(cn string) (*tls.Conn, error) {
		raw, err := dialFromAddr(s.addr, from)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Close() })
		io.WriteString(raw, "hello\n")
		expectLine(t, bufio.NewReader(raw), "GO\n")
		tc := tls.Client(raw, &tls.Config{RootCAs: s.cert.pool, ServerName: serverName,
			Certificates: []tls.Certificate{goCert(t, ca.issue(t, clientLeaf(cn)))}})
		return tc, tc.Handshake()
	}

	tc, err := starttls("Client.Example.NET")
	if err != nil {
		t.Fatalf("handshake with the host's own certificate: %v\n%s", err, s.log.text())
	}
	r := bufio.NewReader(tc)
	expectLine(t, r, fmt.Sprintf("LINE %q\n", "hello\n"))
	vars := readVars(t, r)
	checkExact(t, vars, map[string]string{"SSL_CLIENT_S_DN_CN": "Client.Example.NET", "SSL_CLIENT_VERIFY": "SUCCESS"})
	echoRoundTrip(t, tc, "inside TLS")
	tc.Close()
	s.endStatus(t, 0)

	tc, err = starttls("other.example.net")
	if err == nil {
		if n, _ := tc.Read(make([]byte, 1)); n > 0 {
			t.Error("a client whose certificate names another host got data from the program")
		}
	}
	s.waitLog(t, regexp.MustCompile(`^sslserver: warning: dropping connection from 127\.77\.3\.2, client certificate refused: names \["other\.example\.net"\], none is the remote host "client\.example\.net\.?"$`))
	s.endStatus(t, 110)
}

// TestSwaksClientCert: swaks sends a message over STARTTLS (-n) to the
// demo application under -m with its --tls-cert and --tls-key; without
// them the session ends with status 110 after STARTTLS.
func TestSwaksClientCert(t *testing.T) {
	swaks := needTool(t, "swaks")
	ca := newTestCA(t, "Itest client CA")
	c := ca.issue(t, clientLeaf("client.example.net"))
	s := startServer(t, serverConfig{flags: []string{"-n", "-m"}, program: smtpdCommand(t), env: []string{"CAFILE=" + ca.path}})
	run := func(extra ...string) (string, error) {
		args := append([]string{"--server", "127.0.0.1", "--port", strconv.Itoa(s.port), "--tls", "--helo", "client.example",
			"--from", "a@client.example", "--to", "b@mx.example.org", "--timeout", "10"}, extra...)
		out, err := exec.Command(swaks, args...).CombinedOutput()
		return string(out), err
	}
	if out, err := run("--tls-cert", c.certPath, "--tls-key", c.keyPath); err != nil || !strings.Contains(out, "=== TLS started") {
		t.Fatalf("swaks with a client certificate: %v\n%s", err, out)
	}
	s.endStatus(t, 0)
	if out, err := run(); err == nil {
		t.Errorf("swaks without a client certificate succeeded:\n%s", out)
	}
	s.waitLog(t, regexp.MustCompile(`client certificate verification failed: no client certificate$`))
	s.endStatus(t, 110)
}
