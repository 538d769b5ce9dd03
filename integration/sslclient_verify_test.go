package integration

// sslclient's verification of the server: refusals with a clear line,
// -X and -N with their warnings, and a client certificate whose key is
// encrypted, with the passphrase on fd 3.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Each failure, against openssl s_server (a peer we did not write), is
// refused before the program runs: exit 111 and one fatal line that
// names the reason.
func TestSslclientVerifyFailures(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "Itest CA")
	unknown := newTestCA(t, "Unknown CA")
	expired := serverLeaf()
	expired.expired = true
	for _, tc := range []struct {
		name   string
		cert   *testCert
		host   string
		reason string
	}{
		{"wrong name", ca.issue(t, leafSpec{cn: "other.example", dns: []string{"other.example"}}), "localhost",
			`x509: certificate is valid for other\.example, not localhost`},
		{"unknown CA", unknown.issue(t, serverLeaf()), "127.0.0.1",
			`x509: certificate signed by unknown authority.*`},
		{"expired", ca.issue(t, expired), "127.0.0.1",
			`x509: certificate has expired or is not yet valid: current time \S+ is after \S+`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ss := startOpenSSLServer(t, tc.cert)
			res := runClient(t, clientRun{args: []string{"-4", "-RHl0", tc.host, strconv.Itoa(ss.port)}, role: "env",
				env: []string{"CAFILE=" + ca.path}})
			expectFatal(t, res, `^sslclient: fatal: unable to verify the certificate of 127\.0\.0\.1:\d+: `+tc.reason+`$`)
			if res.stdout != "" {
				t.Errorf("the program ran and printed %q", res.stdout)
			}
		})
	}
}

// Under -y the program has started TLS when verification fails: the
// session ends with 111 and the same kind of line, and the program is
// ended.
func TestSslclientDelayedVerifyFailure(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "Itest CA")
	unknown := newTestCA(t, "Unknown CA")
	s := startServer(t, serverConfig{flags: []string{"-n"}, role: "echo", cert: unknown.issue(t, serverLeaf())})
	res := runClient(t, clientRun{args: []string{"-y", "-RHl0", "127.0.0.1", portOf(s)}, role: "cy",
		env: []string{"CAFILE=" + ca.path}, stdin: "never sent\n"})
	expectFatal(t, res, `^sslclient: fatal: unable to verify the certificate of 127\.0\.0\.1:\d+: x509: certificate signed by unknown authority`)
	// With y the program learns of the failure only when its I/O fails;
	// nothing it sent may have come back from the echoing server.
	if strings.Contains(res.stdout, "never sent") || res.elapsed > waitTime {
		t.Errorf("the program printed %q; the run took %v", res.stdout, res.elapsed)
	}
}

// -X goes on with an unverified server and says so; -N checks the chain
// but not the name, and says so. SSL_SERVER_VERIFY tells the program.
func TestSslclientUnverifiedWarnings(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "Itest CA")
	unknown := newTestCA(t, "Unknown CA")
	for _, tc := range []struct {
		name, flag, host string
		cert             *testCert
		lines            []string // sslclient's stderr, as patterns
		verify           string
	}{
		{"-X", "-X", "127.0.0.1", unknown.issue(t, serverLeaf()),
			[]string{`^sslclient: warning: -X: the server's certificate is not verified$`,
				`^sslclient: warning: -X: going on with a certificate that failed verification: x509: certificate signed by unknown authority`},
			"FAILED:x509: certificate signed by unknown authority"},
		{"-N", "-N", "localhost", ca.issue(t, leafSpec{cn: "other.example", dns: []string{"other.example"}}),
			[]string{`^sslclient: warning: -N: the server's certificate is not checked against the name "localhost"$`},
			"SUCCESS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ss := startOpenSSLServer(t, tc.cert)
			res := runClient(t, clientRun{args: []string{tc.flag, "-s", "-4", "-RHl0", tc.host, strconv.Itoa(ss.port)}, role: "env",
				env: []string{"CAFILE=" + ca.path}})
			if res.code != 0 {
				t.Fatalf("exit %d\n%s", res.code, res.stderr)
			}
			lines := sslclientLines(res.stderr)
			if len(lines) != len(tc.lines) {
				t.Fatalf("sslclient said %q, want %d lines", lines, len(tc.lines))
			}
			for i, re := range tc.lines {
				if !hasLine(lines[i], re) {
					t.Errorf("line %q does not match %q", lines[i], re)
				}
			}
			if v := parseEnvDump(t, res.stdout)["SSL_SERVER_VERIFY"]; !strings.HasPrefix(v, tc.verify) {
				t.Errorf("SSL_SERVER_VERIFY=%q, want %q", v, tc.verify)
			}
		})
	}
}

// A client certificate whose key is encrypted (PBES2, made by openssl),
// the passphrase on fd 3 with -3; openssl s_server requires and verifies
// the certificate. A wrong passphrase is a clear fatal error.
func TestSslclientClientCertificate(t *testing.T) {
	t.Parallel()
	openssl := needTool(t, "openssl")
	ca := newTestCA(t, "Itest CA")
	cc := ca.issue(t, leafSpec{cn: "client.example", client: true})
	encrypted := filepath.Join(filepath.Dir(cc.keyPath), "encrypted.pem")
	out, err := exec.Command(openssl, "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", cc.keyPath,
		"-out", encrypted, "-passout", "pass:s3cret").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl pkcs8: %v\n%s", err, out)
	}
	env := []string{"CAFILE=" + ca.path, "CERTFILE=" + cc.certPath, "KEYFILE=" + encrypted}
	t.Run("passphrase", func(t *testing.T) {
		ss := startOpenSSLServer(t, ca.issue(t, serverLeaf()), "-Verify", "1", "-CAfile", ca.path, "-verify_return_error")
		res := runClient(t, clientRun{args: []string{"-3", "-RHl0", "127.0.0.1", strconv.Itoa(ss.port)}, role: "cconnect",
			env: env, stdin: "client cert\n", extra: []*os.File{passphraseFile(t, "s3cret\x00")}})
		if res.code != 0 || res.stdout != "trec tneilc\n" {
			t.Fatalf("exit %d, output %q\n%s", res.code, res.stdout, res.stderr)
		}
		if !strings.Contains(ss.out.String(), "CN = client.example") {
			t.Errorf("s_server did not report the client certificate:\n%s", ss.out.String())
		}
	})
	t.Run("wrong passphrase", func(t *testing.T) {
		ss := startOpenSSLServer(t, ca.issue(t, serverLeaf()))
		res := runClient(t, clientRun{args: []string{"-3", "-RHl0", "127.0.0.1", strconv.Itoa(ss.port)}, role: "env",
			env: env, extra: []*os.File{passphraseFile(t, "wrong\x00")}})
		expectFatal(t, res, `^sslclient: fatal: unable to load the client key: .+`)
	})
}

// passphraseFile is the read end of a pipe holding s.
func passphraseFile(t *testing.T, s string) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	w.WriteString(s)
	w.Close()
	return r
}
