package integration

// sslclient sessions that work: immediate TLS against our sslserver and
// against openssl s_server, -y against our sslserver -n and against
// Debian's mailfront, and byte integrity both ways.

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serverWithCA starts sslserver with a certificate from ca.
func serverWithCA(t *testing.T, ca *testCA, cfg serverConfig) *server {
	t.Helper()
	if cfg.cert == nil {
		cfg.cert = ca.issue(t, serverLeaf())
	}
	return startServer(t, cfg)
}

func portOf(s *server) string { return strconv.Itoa(s.port) }

// The program's environment: endpoints, TCP* with -e, SSL_* with -s
// describing the server, no TLS settings, no UCSPI-TLS descriptors
// without -y; and -i picks the local address.
func TestSslclientImmediateEnvironment(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "Itest CA")
	s := serverWithCA(t, ca, serverConfig{role: "echo"})
	res := runClient(t, clientRun{args: []string{"-s", "-e", "-H", "-l0", "-i", "127.0.0.2", "127.0.0.1", portOf(s)},
		role: "env", env: []string{"CAFILE=" + ca.path, "CIPHERS=HIGH", "SSL_UID=1"}})
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	env := parseEnvDump(t, res.stdout)
	want := map[string]string{
		"PROTO": "SSL", "SSLREMOTEIP": "127.0.0.1", "SSLREMOTEPORT": portOf(s), "SSLLOCALIP": "127.0.0.2",
		"TCPREMOTEIP": "127.0.0.1", "TCPREMOTEPORT": portOf(s), "TCPLOCALIP": "127.0.0.2",
		"SSL_SERVER_S_DN_CN": serverName, "SSL_SERVER_I_DN_CN": "Itest CA", "SSL_SERVER_VERIFY": "SUCCESS",
		"SSL_PROTOCOL": "TLSv1.3", "SSL_VERSION_INTERFACE": "sslclient/",
	}
	for k, v := range want {
		if !strings.HasPrefix(env[k], v) || env[k] == "" {
			t.Errorf("%s=%q, want %q", k, env[k], v)
		}
	}
	for _, k := range []string{"CAFILE", "CIPHERS", "SSL_UID", "SSLREMOTEHOST", "SSLLOCALHOST", "SSLREMOTEINFO",
		"SSLCTLFD", "SSLREADFD", "SSLWRITEFD", "SSL_CLIENT_S_DN", "SSL_TLS_SNI"} {
		if v, ok := env[k]; ok {
			t.Errorf("%s=%q is set", k, v)
		}
	}
	if p, _ := strconv.Atoi(env["SSLLOCALPORT"]); p == 0 {
		t.Errorf("SSLLOCALPORT=%q", env["SSLLOCALPORT"])
	}
	s.waitLog(t, regexp.MustCompile(`^sslserver: pid \d+ from 127\.0\.0\.2$`))
}

// A name as host: it resolves (from /etc/hosts), goes out as SNI (the
// server's program sees SSL_TLS_SNI) and is checked against the
// certificate; -h looks up the server's name. An address as host sends
// no SNI.
func TestSslclientSNIAndNames(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "Itest CA")
	for _, tc := range []struct {
		host, sni string
	}{{"localhost", "localhost"}, {"127.0.0.1", ""}} {
		t.Run(tc.host, func(t *testing.T) {
			s := serverWithCA(t, ca, serverConfig{flags: []string{"-s"}, role: "env"})
			res := runClient(t, clientRun{args: []string{"-4", "-h", "-l", "me.example", tc.host, portOf(s)},
				role: "cconnect", env: []string{"CAFILE=" + ca.path}})
			if res.code != 0 {
				t.Fatalf("exit %d\n%s", res.code, res.stderr)
			}
			serverEnv := parseEnvDump(t, res.stdout)
			if serverEnv["SSL_TLS_SNI"] != tc.sni {
				t.Errorf("the server saw SNI %q, want %q", serverEnv["SSL_TLS_SNI"], tc.sni)
			}
		})
	}
	s := serverWithCA(t, ca, serverConfig{role: "echo"})
	res := runClient(t, clientRun{args: []string{"-h", "-l", "me.example", "127.0.0.1", portOf(s)}, role: "env",
		env: []string{"CAFILE=" + ca.path}})
	env := parseEnvDump(t, res.stdout)
	if env["SSLREMOTEHOST"] != "localhost" || env["SSLLOCALHOST"] != "me.example" {
		t.Errorf("-h -l me.example: SSLREMOTEHOST=%q SSLLOCALHOST=%q, want localhost (/etc/hosts) and me.example",
			env["SSLREMOTEHOST"], env["SSLLOCALHOST"])
	}
}

// Immediate TLS against our own sslserver: lines echoed, the client's
// EOF reaches the server's program, status 0 on both sides.
func TestSslclientImmediateOwnServer(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "Itest CA")
	s := serverWithCA(t, ca, serverConfig{role: "echo"})
	res := runClient(t, clientRun{args: []string{"-v", "-RHl0", "127.0.0.1", portOf(s)}, role: "cconnect",
		env: []string{"CAFILE=" + ca.path}, stdin: "one\ntwo\n"})
	if res.code != 0 || res.stdout != "one\ntwo\n" {
		t.Fatalf("exit %d, output %q\n%s", res.code, res.stdout, res.stderr)
	}
	for _, re := range []string{`^sslclient: connected to 127\.0\.0\.1 port \d+ from 127\.0\.0\.1 port \d+$`,
		`^sslclient: tls TLSv1\.3:TLS_\w+ verify SUCCESS$`, `^sslclient: end status 0$`} {
		if !hasLine(res.stderr, re) {
			t.Errorf("no line matching %q in:\n%s", re, res.stderr)
		}
	}
	if status := s.waitEnd(t, s.onlySession(t)); status != 0 {
		t.Errorf("server session status %d", status)
	}
}

func hasLine(text, re string) bool {
	return regexp.MustCompile(`(?m)` + re).MatchString(text)
}

// Immediate TLS against openssl s_server (-rev answers lines reversed),
// with the name checked against the DNS name and against the address.
func TestSslclientOpenSSLServer(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "Itest CA")
	for _, host := range []string{"localhost", "127.0.0.1"} {
		t.Run(host, func(t *testing.T) {
			t.Parallel()
			ss := startOpenSSLServer(t, ca.issue(t, serverLeaf()))
			res := runClient(t, clientRun{args: []string{"-RHl0", "-4", host, strconv.Itoa(ss.port)}, role: "cconnect",
				env: []string{"CAFILE=" + ca.path}, stdin: "hello world\n"})
			if res.code != 0 || res.stdout != "dlrow olleh\n" {
				t.Fatalf("exit %d, output %q\n%s", res.code, res.stdout, res.stderr)
			}
			if !hasLine(ss.out.String(), `^CONNECTION ESTABLISHED$`) {
				t.Errorf("s_server did not report the connection")
			}
		})
	}
}

// -y against our sslserver -n: a plaintext exchange, then Y on both
// sides, the blocks, and an echo inside TLS.
func TestSslclientDelayedOwnServer(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "Itest CA")
	s := serverWithCA(t, ca, serverConfig{flags: []string{"-n"}, role: "ytls"})
	res := runClient(t, clientRun{args: []string{"-y", "-RHl0", "127.0.0.1", portOf(s)}, role: "cytls",
		env: []string{"CAFILE=" + ca.path}})
	if res.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	for _, want := range []string{
		`SERVER LINE "hello before TLS\n"`, `SERVER VAR "SSL_PROTOCOL=TLSv1.3"`,
		`CLIENT SSL_SERVER_VERIFY=SUCCESS`, `CLIENT SSL_SERVER_S_DN_CN=` + serverName, `CLIENT SSL_PROTOCOL=TLSv1.3`,
	} {
		if !strings.Contains(res.stdout, want+"\n") {
			t.Errorf("output lacks %q:\n%s", want, res.stdout)
		}
	}
	if status := s.waitEnd(t, s.onlySession(t)); status != 0 {
		t.Errorf("server session status %d", status)
	}
}

// -y with Debian's mailfront, whose SMTP side we did not write, under
// sslserver -n: a message goes through after STARTTLS; its echo backend
// writes the message to sslserver's log.
func TestSslclientMailfront(t *testing.T) {
	t.Parallel()
	front := "/usr/sbin/smtpfront-echo"
	if _, err := os.Stat(front); err != nil {
		missing(t, front+" (Debian package mailfront)")
	}
	ca := newTestCA(t, "Itest CA")
	s := serverWithCA(t, ca, serverConfig{flags: []string{"-n"},
		program: []string{"/usr/bin/env", "UCSPITLS=", "PLUGINS=starttls-ucspi:accept", front}})
	token := randomToken(t)
	res := runClient(t, clientRun{args: []string{"-y", "-RHl0", "127.0.0.1", portOf(s)}, role: "csmtp",
		roleEnv: []string{"ITEST_TOKEN=" + token}, env: []string{"CAFILE=" + ca.path}})
	if res.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	for _, re := range []string{`(?m)^C: STARTTLS\nS: 220 .*\n=== TLS\nC: EHLO`, `(?m)^C: \.\nS: 250 `,
		`(?m)^VAR SSL_SERVER_VERIFY=SUCCESS$`, `(?m)^VAR SSL_PROTOCOL=TLSv1\.[23]$`} {
		if !regexp.MustCompile(re).MatchString(res.stdout) {
			t.Errorf("transcript lacks %q:\n%s", re, res.stdout)
		}
	}
	if strings.Count(res.stdout, "250-STARTTLS") != 1 && strings.Count(res.stdout, "250 STARTTLS") != 1 {
		t.Errorf("STARTTLS should be offered once, before TLS only:\n%s", res.stdout)
	}
	s.waitLog(t, regexp.MustCompile(`X-Itest: `+token))
	if status := s.waitEnd(t, s.onlySession(t)); status != 0 {
		t.Errorf("server session status %d", status)
	}
}

// Random megabytes both ways at once through sslclient and sslserver,
// with half-close on the client side, checked by sha256 at both ends.
func TestSslclientIntegrity(t *testing.T) {
	const size = 4 << 20
	ca := newTestCA(t, "Itest CA")
	for _, tc := range []struct {
		name                     string
		serverFlags, clientFlags []string
	}{
		{"immediate", nil, nil},
		{"delayed", []string{"-n"}, []string{"-y"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := serverWithCA(t, ca, serverConfig{flags: tc.serverFlags, role: "sha",
				roleEnv: []string{"ITEST_N=" + strconv.Itoa(size)}})
			res := runClient(t, clientRun{args: append(tc.clientFlags, "-RHl0", "127.0.0.1", portOf(s)), role: "csha",
				roleEnv: []string{"ITEST_N=" + strconv.Itoa(size)}, env: []string{"CAFILE=" + ca.path}})
			if res.code != 0 {
				t.Fatalf("exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
			}
			checkBothWays(t, res.stdout, size)
			if status := s.waitEnd(t, s.onlySession(t)); status != 0 {
				t.Errorf("server session status %d", status)
			}
		})
	}
}

// checkBothWays compares the client's "RECEIVED r REST q SENT s" with
// the server role's report inside q, "READ s' n WROTE r'".
func checkBothWays(t *testing.T, out string, size int) {
	t.Helper()
	var received, sent []byte
	var rest string
	if _, err := fmt.Sscanf(out, "RECEIVED %x REST %q SENT %x\n", &received, &rest, &sent); err != nil {
		t.Fatalf("client report %q: %v", out, err)
	}
	var read, wrote []byte
	var count int
	if _, err := fmt.Sscanf(rest, "READ %x %d WROTE %x\n", &read, &count, &wrote); err != nil {
		t.Fatalf("server report %q: %v", rest, err)
	}
	if count != size || !bytes.Equal(read, sent) {
		t.Errorf("client to server: sent %d bytes %x, the server read %d bytes %x", size, sent, count, read)
	}
	if !bytes.Equal(received, wrote) {
		t.Errorf("server to client: the server wrote %x, the client received %x", wrote, received)
	}
}

// The program's descriptors: 6 and 7 pipes without -y; under -y 6 and 7
// the TCP socket and 3, 4, 5 the control socket and two pipes. A
// descriptor sslclient inherited does not reach the program.
func TestSslclientProgramFDs(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "Itest CA")
	for _, tc := range []struct {
		name   string
		flags  []string
		server []string
		want   map[int]string // fd -> kind and mode
	}{
		{"immediate", nil, nil, map[int]string{6: "pipe r", 7: "pipe w"}},
		{"delayed", []string{"-y"}, []string{"-n"},
			map[int]string{3: "socket rw", 4: "pipe r", 5: "pipe w", 6: "socket rw", 7: "socket rw"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := serverWithCA(t, ca, serverConfig{flags: tc.server, role: "sleep"})
			stray, err := os.Open(os.DevNull)
			if err != nil {
				t.Fatal(err)
			}
			defer stray.Close()
			res := runClient(t, clientRun{args: append(tc.flags, "-RHl0", "127.0.0.1", portOf(s)), role: "fds",
				env: []string{"CAFILE=" + ca.path}, extra: []*os.File{nil, stray}})
			if res.code != 0 {
				t.Fatalf("exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
			}
			checkProgramFDs(t, res.stdout, tc.want, tc.flags != nil)
		})
	}
}

var programFDLine = regexp.MustCompile(`^FD (\d+) (\S+) (\S+)$`)

func checkProgramFDs(t *testing.T, out string, want map[int]string, delayed bool) {
	t.Helper()
	got := map[int]string{}
	targets := map[int]string{}
	for _, line := range strings.Split(out, "\n") {
		m := programFDLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		fd, _ := strconv.Atoi(m[1])
		if fd <= 2 {
			continue
		}
		kind, _, _ := strings.Cut(m[2], ":")
		got[fd] = kind + " " + m[3]
		targets[fd] = m[2]
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("program fds %v, want %v\n%s", got, want, out)
	}
	if delayed && targets[6] != targets[7] {
		t.Errorf("fds 6 and 7 are %s and %s, want the same socket", targets[6], targets[7])
	}
	wantEnv := "ENV SSLCTLFD=\nENV SSLREADFD=\nENV SSLWRITEFD=\n"
	if delayed {
		wantEnv = "ENV SSLCTLFD=3\nENV SSLREADFD=4\nENV SSLWRITEFD=5\n"
	}
	if !strings.Contains(out, wantEnv) {
		t.Errorf("program's UCSPI-TLS variables, want\n%s\ngot\n%s", wantEnv, out)
	}
}

// sslclient exits with the program's status.
func TestSslclientProgramStatus(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "Itest CA")
	s := serverWithCA(t, ca, serverConfig{role: "echo"})
	res := runClient(t, clientRun{args: []string{"-RHl0", "127.0.0.1", portOf(s)}, role: "die",
		env: []string{"CAFILE=" + ca.path}})
	if res.code != 3 || len(sslclientLines(res.stderr)) != 0 {
		t.Errorf("exit %d, said %q; want the program's 3 and nothing", res.code, res.stderr)
	}
}

// SIGTERM to sslclient reaches the program; a program killed by a
// signal makes sslclient exit 111, and nothing is left running.
func TestSslclientForwardsSIGTERM(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "Itest CA")
	s := serverWithCA(t, ca, serverConfig{role: "echo"})
	p := startClient(t, clientRun{args: []string{"-RHl0", "127.0.0.1", portOf(s)}, role: "chold",
		env: []string{"CAFILE=" + ca.path}})
	p.stdout.waitFor(t, regexp.MustCompile(`READY \d+\n`))
	worker := tlsProcessOf(t, p.cmd.Process.Pid)
	p.cmd.Process.Signal(syscall.SIGTERM)
	select { // without closing stdin, which would end the program too
	case <-p.done:
	case <-time.After(waitTime):
		t.Fatalf("sslclient still running %v after SIGTERM", waitTime)
	}
	if res := p.finish(); res.code != 111 {
		t.Errorf("exit %d, want 111\n%s", res.code, res.stderr)
	}
	if !processGone(worker) {
		t.Errorf("the TLS process %d is still there", worker)
	}
}

// An IPv6 server address: the name check uses the certificate's IP
// address, and -e adds the TCP6* variables.
func TestSslclientIPv6(t *testing.T) {
	t.Parallel()
	needIPv6(t)
	ca := newTestCA(t, "Itest CA")
	s := serverWithCA(t, ca, serverConfig{host: "::1", role: "echo"})
	res := runClient(t, clientRun{args: []string{"-e", "-RHl0", "::1", portOf(s)}, role: "env",
		env: []string{"CAFILE=" + ca.path}})
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	env := parseEnvDump(t, res.stdout)
	if env["SSLREMOTEIP"] != "::1" || env["TCP6REMOTEIP"] != "::1" || env["TCP6REMOTEPORT"] != portOf(s) {
		t.Errorf("SSLREMOTEIP=%q TCP6REMOTEIP=%q TCP6REMOTEPORT=%q", env["SSLREMOTEIP"], env["TCP6REMOTEIP"], env["TCP6REMOTEPORT"])
	}
}
