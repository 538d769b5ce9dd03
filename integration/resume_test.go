package integration

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// ticketKeyFile writes a TICKETKEYFILE of n fresh keys and returns its
// path and the keys.
func ticketKeyFile(t testing.TB, n int) (string, [][]byte) {
	t.Helper()
	var lines []string
	var keys [][]byte
	for i := 0; i < n; i++ {
		k := make([]byte, 80)
		rand.Read(k)
		keys = append(keys, k)
		lines = append(lines, base64.StdEncoding.EncodeToString(k))
	}
	return writeFile(t, filepath.Join(t.TempDir(), "tickets"), []byte(strings.Join(lines, "\n")+"\n"), 0o600), keys
}

// envSession runs one session of the env role with a Go client and
// returns the program's environment and whether TLS resumed.
func (s *server) envSession(t testing.TB, cfg *tls.Config) (map[string]string, bool) {
	t.Helper()
	tc, raw := s.dialTLS(t, cfg)
	pid := s.sessionPID(t, localPort(raw))
	vars := s.readEnvTLS(t, tc, pid) // reading to the end takes the TLS 1.3 ticket too
	return vars, tc.ConnectionState().DidResume
}

// TestResumptionAcrossWorkers: a Go client with a session cache resumes
// on a fresh worker (one session per worker, the default), on TLS 1.3 and
// 1.2, and the program is told: SSL_SESSION_RESUMED is Initial, then
// Resumed.
func TestResumptionAcrossWorkers(t *testing.T) {
	s := startServer(t, serverConfig{flags: []string{"-s"}, role: "env"})
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		cfg := s.clientConfig()
		cfg.MaxVersion, cfg.ClientSessionCache = version, tls.NewLRUClientSessionCache(4)
		first, resumed := s.envSession(t, cfg)
		if resumed || first["SSL_SESSION_RESUMED"] != "Initial" {
			t.Errorf("%s: first session resumed %v, SSL_SESSION_RESUMED=%q; want a full handshake, Initial",
				tls.VersionName(version), resumed, first["SSL_SESSION_RESUMED"])
		}
		second, resumed := s.envSession(t, cfg)
		if !resumed || second["SSL_SESSION_RESUMED"] != "Resumed" {
			t.Errorf("%s: second session resumed %v, SSL_SESSION_RESUMED=%q; want Resumed",
				tls.VersionName(version), resumed, second["SSL_SESSION_RESUMED"])
		}
	}
}

// sClientSession runs openssl s_client to the end of an env-role session,
// storing the session in sessOut and offering sessIn (either may be ""),
// and returns its report ("New, TLSv1.3, ..." or "Reused, ...").
func sClientSession(t testing.TB, addr, version, sessIn, sessOut string) string {
	t.Helper()
	openssl := needTool(t, "openssl")
	args := []string{"s_client", "-connect", addr, "-servername", serverName, "-ign_eof", version}
	if sessIn != "" {
		args = append(args, "-sess_in", sessIn)
	}
	if sessOut != "" {
		args = append(args, "-sess_out", sessOut)
	}
	cmd := exec.Command(openssl, args...)
	cmd.Stdin = bytes.NewReader(nil)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("s_client: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "New, ") || strings.HasPrefix(line, "Reused, ") {
			return line
		}
	}
	t.Fatalf("s_client said neither New nor Reused:\n%s", out)
	return ""
}

// TestOpenSSLResumes: openssl s_client's saved session is Reused by a
// fresh worker, TLS 1.3 and 1.2; and, with TICKETKEYFILE, by a restarted
// sslserver (another process, another key holder, the same keys).
func TestOpenSSLResumes(t *testing.T) {
	file, _ := ticketKeyFile(t, 2)
	cfg := serverConfig{role: "env", env: []string{"TICKETKEYFILE=" + file}}
	s := startServer(t, cfg)
	dir := t.TempDir()
	for _, v := range []string{"-tls1_3", "-tls1_2"} {
		sess := filepath.Join(dir, "session"+v)
		if got := sClientSession(t, s.addr, v, "", sess); !strings.HasPrefix(got, "New, ") {
			t.Errorf("%s: first connection %q, want New", v, got)
		}
		if got := sClientSession(t, s.addr, v, sess, ""); !strings.HasPrefix(got, "Reused, ") {
			t.Errorf("%s: with the saved session %q, want Reused", v, got)
		}
	}
	s.stop()
	cfg.cert = s.cert
	again := startServer(t, cfg)
	for _, v := range []string{"-tls1_3", "-tls1_2"} {
		if got := sClientSession(t, again.addr, v, filepath.Join(dir, "session"+v), ""); !strings.HasPrefix(got, "Reused, ") {
			t.Errorf("%s: after a restart with TICKETKEYFILE, %q, want Reused", v, got)
		}
	}
}

// TestTicketKeysStayInKeyHolder: with TICKETKEYFILE, the ticket keys'
// secret bytes are in the key holder's memory and in no worker's, even
// one that has just issued a ticket and holds a resumed session.
func TestTicketKeysStayInKeyHolder(t *testing.T) {
	file, keys := ticketKeyFile(t, 1)
	s := startServer(t, serverConfig{role: "sleep", env: []string{"TICKETKEYFILE=" + file}})
	cfg := s.clientConfig()
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	first := holdSessionWith(t, s, cfg)
	first.conn.Close()
	h := holdSessionWith(t, s, cfg)
	if !h.conn.ConnectionState().DidResume {
		t.Fatal("the second session did not resume: the scan would not show a worker that opened a ticket")
	}
	patterns := map[string][]byte{"ticket AES key": keys[0][16:48], "ticket key, all 80 bytes": keys[0]}
	if found, n := scanMemory(t, h.worker, patterns); len(found) > 0 {
		t.Errorf("worker %d: ticket key material in memory (%d bytes scanned): %v", h.worker, n, found)
	}
	kh := s.keyHolder(t)
	if found, n := scanMemory(t, kh, patterns); !slices.Contains(found, "ticket AES key") {
		t.Errorf("control failed: the ticket AES key is not in the key holder %d (%d bytes scanned)", kh, n)
	}
	h.conn.Close()
}

// TestBadTicketKeyFile: a TICKETKEYFILE that is not base64 of 80-byte
// keys stops sslserver at start, naming the file and line.
func TestBadTicketKeyFile(t *testing.T) {
	bad := writeFile(t, filepath.Join(t.TempDir(), "tickets"), []byte(base64.StdEncoding.EncodeToString(make([]byte, 48))+"\n"), 0o600)
	env := append(serverEnv(t, serverConfig{cert: newCert(t, keyECDSA)}), "TICKETKEYFILE="+bad)
	code, _, stderr := runCLI(t, "sslserver", env, "-1", "127.0.0.1", "0", "/bin/true")
	want := regexp.MustCompile(`^sslserver: fatal: unable to load private key: TICKETKEYFILE=` + regexp.QuoteMeta(bad) + `: line 1: a key of 48 bytes, want 80\n$`)
	if code != 111 || !want.MatchString(stderr) {
		t.Errorf("exit %d, stderr %q; want 111 and %s", code, stderr, want)
	}
}

// TestResumptionNeedsClientCert plays a client that got a ticket from a
// server that asks for no certificate (-Z) and brings it to one that
// requires one (-m), both sharing TICKETKEYFILE: the ticket opens, but
// resuming it without a certificate that verifies is refused (status
// 110), and a client with one still gets in.
func TestResumptionNeedsClientCert(t *testing.T) {
	file, _ := ticketKeyFile(t, 1)
	ca := newTestCA(t, "Itest client CA")
	open := startServer(t, serverConfig{role: "env", flags: []string{"-s"}, env: []string{"TICKETKEYFILE=" + file}})
	strict := startServer(t, serverConfig{role: "env", flags: []string{"-s", "-m"}, cert: open.cert,
		env: []string{"TICKETKEYFILE=" + file, "CAFILE=" + ca.path}})
	cfg := open.clientConfig()
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	cfg.MaxVersion = tls.VersionTLS12 // a TLS 1.2 ticket resumes without any client certificate message
	open.envSession(t, cfg)
	if _, resumed := open.envSession(t, cfg); !resumed {
		t.Fatal("the ticket does not resume on its own server: the test would prove nothing")
	}
	tc, err := handshakeFrom(strict.addr, "127.0.0.1", cfg)
	if err == nil {
		if n, _ := tc.Read(make([]byte, 1)); n > 0 {
			t.Error("a resumed session without a client certificate reached the program under -m")
		}
		tc.Close()
	}
	strict.waitLog(t, regexp.MustCompile(`client certificate verification failed: no client certificate$`))
	strict.endStatus(t, 110)
	good := strict.clientConfig()
	good.Certificates = []tls.Certificate{goCert(t, ca.issue(t, clientLeaf("client.example.net")))}
	vars, _ := strict.envSession(t, good)
	checkExact(t, vars, map[string]string{"SSL_CLIENT_VERIFY": "SUCCESS"})
}

// TestResumeAcrossBalancedHosts: two sslservers behind one haproxy
// (PROXY v2, round robin), sharing TICKETKEYFILE as hosts of a farm
// would: a session that openssl s_client saved from one is Reused on
// both, TLS 1.3 and 1.2.
func TestResumeAcrossBalancedHosts(t *testing.T) {
	file, _ := ticketKeyFile(t, 2)
	cfg := serverConfig{role: "env", env: []string{"TICKETKEYFILE=" + file}}
	a := proxyServer(t, cfg)
	cfg.cert = a.cert
	b := proxyServer(t, cfg)
	front := startHAProxy(t, "send-proxy-v2", "", a, b)
	dir := t.TempDir()
	accepted := regexp.MustCompile(`^sslserver: tls \d+ accept `)
	for _, v := range []string{"-tls1_3", "-tls1_2"} {
		sess := filepath.Join(dir, "session"+v)
		if got := sClientSession(t, front, v, "", sess); !strings.HasPrefix(got, "New, ") {
			t.Fatalf("%s: first connection %q, want New", v, got)
		}
		beforeA, beforeB := a.countLog(accepted), b.countLog(accepted)
		for i := 0; i < 4; i++ {
			if got := sClientSession(t, front, v, sess, ""); !strings.HasPrefix(got, "Reused, ") {
				t.Errorf("%s: connection %d with the saved session %q, want Reused", v, i+1, got)
			}
		}
		a.waitCount(t, accepted, beforeA+2)
		b.waitCount(t, accepted, beforeB+2)
	}
}
