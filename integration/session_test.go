package integration

// What the program sees: the Y reply block, its environment, its fds.

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// tlsProtocolName is SSL_PROTOCOL's spelling of a version.
var tlsProtocolName = map[uint16]string{tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3"}

// The ytls and ylower roles start TLS with Y and y under -n and report
// what came back on the control fd (see roles_test.go).
func TestControlReply(t *testing.T) {
	for _, tc := range []struct {
		name    string
		role    string
		key     keyKind
		version uint16
		suite   uint16 // TLS 1.2: the one suite the client offers
		cipher  string // SSL_CIPHER; empty: Go's name of the TLS 1.3 suite
		keySize string // SSL_CIPHER_USEKEYSIZE and _ALGKEYSIZE
	}{
		{"Y TLS1.3 ecdsa", "ytls", keyECDSA, tls.VersionTLS13, 0, "", ""},
		{"Y TLS1.2 ecdsa aes256", "ytls", keyECDSA, tls.VersionTLS12,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "ECDHE-ECDSA-AES256-GCM-SHA384", "256"},
		{"Y TLS1.2 rsa aes128", "ytls", keyRSA, tls.VersionTLS12,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "ECDHE-RSA-AES128-GCM-SHA256", "128"},
		{"Y TLS1.2 rsa chacha20", "ytls", keyRSA, tls.VersionTLS12,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "ECDHE-RSA-CHACHA20-POLY1305", "256"},
		{"Y TLS1.3 ed25519", "ytls", keyEd25519, tls.VersionTLS13, 0, "", ""},
		{"y TLS1.3", "ylower", keyECDSA, tls.VersionTLS13, 0, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, serverConfig{flags: []string{"-n"}, cert: newCert(t, tc.key), role: tc.role})
			cfg := s.clientConfig()
			cfg.MinVersion, cfg.MaxVersion = tc.version, tc.version
			if tc.suite != 0 {
				cfg.CipherSuites = []uint16{tc.suite}
			}
			raw := s.dialTCP(t)
			plain := bufio.NewReader(raw)
			io.WriteString(raw, "hello "+tc.name+"\n")
			expectLine(t, plain, "GO\n")
			tc2 := s.startTLS(t, raw, cfg)
			r := bufio.NewReader(tc2)
			expectLine(t, r, fmt.Sprintf("LINE %q\n", "hello "+tc.name+"\n"))
			vars := readVars(t, r)
			echoRoundTrip(t, tc2, "inside TLS")
			if tc.role == "ylower" {
				if len(vars) != 0 {
					t.Errorf("y got a reply block: %v", vars)
				}
				return
			}
			state := tc2.ConnectionState()
			want := map[string]string{
				"SSL_PROTOCOL":          tlsProtocolName[state.Version],
				"SSL_CIPHER":            tc.cipher,
				"SSL_CIPHER_USEKEYSIZE": tc.keySize,
				"SSL_CIPHER_ALGKEYSIZE": tc.keySize,
				"SSL_SERVER_S_DN":       "/O=Itest/CN=" + serverName,
				"SSL_SERVER_S_DN_CN":    serverName,
				"SSL_SERVER_I_DN":       "/O=Itest/CN=" + serverName,
				"SSL_TLS_SNI":           serverName,
				"SSL_SERVER_CERT":       strings.TrimSpace(string(s.cert.certPEM)),
			}
			if tc.cipher == "" {
				want["SSL_CIPHER"] = tls.CipherSuiteName(state.CipherSuite)
				want["SSL_CIPHER_USEKEYSIZE"] = tls13KeySize(want["SSL_CIPHER"])
				want["SSL_CIPHER_ALGKEYSIZE"] = want["SSL_CIPHER_USEKEYSIZE"]
			}
			checkVars(t, "reply block", vars, want)
		})
	}
}

// TestControlReplyImmediate: under -N the program may still ask for the
// reply block with "Y" after the handshake, and gets the same variables
// (the worker makes the block only when it is asked for).
func TestControlReplyImmediate(t *testing.T) {
	s := startServer(t, serverConfig{role: "latey"})
	tc, _ := s.dialTLS(t, nil)
	vars := readVars(t, bufio.NewReader(tc))
	state := tc.ConnectionState()
	checkVars(t, "reply block under -N", vars, map[string]string{
		"SSL_PROTOCOL":       tlsProtocolName[state.Version],
		"SSL_CIPHER":         tls.CipherSuiteName(state.CipherSuite),
		"SSL_SERVER_S_DN_CN": serverName,
		"SSL_SERVER_CERT":    strings.TrimSpace(string(s.cert.certPEM)),
	})
}

func tls13KeySize(suite string) string {
	if strings.Contains(suite, "AES_128") {
		return "128"
	}
	return "256"
}

// readVars collects the VAR lines up to END.
func readVars(t testing.TB, r *bufio.Reader) map[string]string {
	t.Helper()
	vars := map[string]string{}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the report: %q, %v", line, err)
		}
		if line == "END\n" {
			return vars
		}
		q, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "VAR ")
		kv, err := strconv.Unquote(q)
		if !ok || err != nil {
			t.Fatalf("program reported %q", line)
		}
		name, value, _ := strings.Cut(kv, "=")
		vars[name] = value
	}
}

func checkVars(t testing.TB, what string, got, want map[string]string) {
	t.Helper()
	for name, w := range want {
		if v, ok := got[name]; !ok || strings.TrimSpace(v) != w {
			t.Errorf("%s: %s=%q (set: %v), want %q", what, name, v, ok, w)
		}
	}
}

// envCase is one program environment scenario: sslserver options and
// environment, and what the program must (not) see. In want and env,
// {port} is the server's port, {cport} the client's, {cipher} the
// negotiated suite and {dir} a fresh directory.
type envCase struct {
	name      string
	flags     []string
	host      string
	env       []string
	keyInCert bool
	tls       bool   // the program's output comes through TLS (-N)
	banner    string // expected before the program's output
	want      map[string]string
	absent    []string // names, or prefixes ending in "*"
}

func TestProgramEnvironment(t *testing.T) {
	secretsAbsent := append([]string{"CERTFILE*", "KEYFILE*"}, serverOnlyVars...)
	for _, tc := range []envCase{
		{name: "immediate defaults", tls: true,
			env: []string{"SSL_UID=65534", "SSL_GID=65534", "SSL_CHROOT={dir}", "VERIFYDEPTH=3", "MAXCONIP=20"},
			want: map[string]string{"PROTO": "SSL", "SSLLOCALIP": "127.0.0.1", "SSLLOCALPORT": "{port}",
				"SSLREMOTEIP": "127.0.0.1", "SSLREMOTEPORT": "{cport}", "TCPLOCALIP": "127.0.0.1",
				"TCPLOCALPORT": "{port}", "TCPREMOTEIP": "127.0.0.1", "TCPREMOTEPORT": "{cport}",
				"SSLCTLFD": "3", "SSLREADFD": "4", "SSLWRITEFD": "5"},
			absent: append([]string{"SSL_*", "SSLREMOTEHOST", "SSLREMOTEINFO"}, secretsAbsent...)},
		{name: "immediate -s", flags: []string{"-s"}, tls: true,
			want: map[string]string{"SSL_PROTOCOL": "TLSv1.3", "SSL_CIPHER": "{cipher}",
				"SSL_SERVER_S_DN_CN": serverName, "SSL_TLS_SNI": serverName},
			absent: secretsAbsent},
		{name: "immediate -E", flags: []string{"-E"}, tls: true,
			want:   map[string]string{"PROTO": "SSL", "SSLREMOTEIP": "127.0.0.1", "SSLREMOTEPORT": "{cport}"},
			absent: []string{"TCP*", "SSL_*"}},
		{name: "key in CERTFILE", keyInCert: true, tls: true,
			want: map[string]string{"PROTO": "SSL"}, absent: secretsAbsent},
		{name: "delayed -e", flags: []string{"-n", "-e"},
			want: map[string]string{"PROTO": "SSL", "TCPREMOTEIP": "127.0.0.1", "TCPREMOTEPORT": "{cport}",
				"SSLREMOTEPORT": "{cport}", "SSLCTLFD": "3", "SSLREADFD": "4", "SSLWRITEFD": "5"},
			absent: append([]string{"SSL_*"}, secretsAbsent...)},
		{name: "delayed banner", flags: []string{"-n", "-B", "220 banner\r\n"}, banner: "220 banner\r\n",
			want: map[string]string{"PROTO": "SSL"}},
		{name: "ipv6", host: "::1", tls: true,
			want: map[string]string{"SSLLOCALIP": "::1", "SSLREMOTEIP": "::1", "SSLREMOTEPORT": "{cport}",
				"TCPREMOTEIP": "::1", "TCP6REMOTEIP": "::1", "TCP6REMOTEPORT": "{cport}"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testEnvironment(t, tc)
		})
	}
}

func testEnvironment(t *testing.T, tc envCase) {
	if strings.Contains(tc.host, ":") {
		needIPv6(t)
	}
	dir := freshDir(t)
	env := make([]string, len(tc.env))
	for i, kv := range tc.env {
		env[i] = strings.ReplaceAll(kv, "{dir}", dir)
	}
	s := startServer(t, serverConfig{flags: tc.flags, host: tc.host, env: env, keyInCert: tc.keyInCert, role: "env"})
	var conn net.Conn = s.dialTCP(t)
	cport, cipher := localPort(conn), ""
	if tc.tls {
		tc2 := s.startTLS(t, conn, nil)
		conn, cipher = tc2, tls.CipherSuiteName(tc2.ConnectionState().CipherSuite)
	}
	out, err := io.ReadAll(conn)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("reading the environment: %v", err)
	}
	text, ok := strings.CutPrefix(string(out), tc.banner)
	if !ok {
		t.Fatalf("output %q does not start with the banner %q", out, tc.banner)
	}
	got := parseEnvDump(t, text)
	repl := strings.NewReplacer("{port}", strconv.Itoa(s.port), "{cport}", strconv.Itoa(cport), "{cipher}", cipher)
	want := map[string]string{}
	for k, v := range tc.want {
		want[k] = repl.Replace(v)
	}
	checkVars(t, "environment", got, want)
	checkAbsent(t, got, tc.absent)
	for name, v := range got {
		if strings.Contains(v, s.cert.keyPath) || strings.Contains(v, s.cert.certPath) {
			t.Errorf("the program's %s names a key or certificate file: %q", name, v)
		}
	}
}

// needIPv6 skips (fails under CI=true) where ::1 cannot be bound.
func needIPv6(t testing.TB) {
	t.Helper()
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		missing(t, "the IPv6 loopback address")
		return
	}
	l.Close()
}

func parseEnvDump(t testing.TB, text string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		kv, err := strconv.Unquote(line)
		if err != nil {
			t.Fatalf("program printed %q: %v", line, err)
		}
		name, value, _ := strings.Cut(kv, "=")
		got[name] = value
	}
	return got
}

func checkAbsent(t testing.TB, got map[string]string, absent []string) {
	t.Helper()
	for name := range got {
		for _, a := range absent {
			if p, ok := strings.CutSuffix(a, "*"); (ok && strings.HasPrefix(name, p)) || name == a {
				t.Errorf("the program's environment has %s=%q", name, got[name])
			}
		}
	}
}

// The program's descriptors as it sees them (the fds role), under -n
// before it starts TLS and under -N.
func TestProgramFDs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		tls   bool
		// fd: kind ("socket", "pipe" or "stderr"), mode, and the fd it
		// must share its file with (-1: none).
		want map[int]fdWant
	}{
		{"delayed", []string{"-n"}, false, map[int]fdWant{
			0: {"socket", "rw", -1}, 1: {"socket", "rw", 0}, 2: {"stderr", "w", -1},
			3: {"socket", "rw", -1}, 4: {"pipe", "r", -1}, 5: {"pipe", "w", -1}}},
		{"immediate", nil, true, map[int]fdWant{
			0: {"pipe", "r", -1}, 1: {"pipe", "w", -1}, 2: {"stderr", "w", -1},
			3: {"socket", "rw", -1}, 4: {"pipe", "r", 0}, 5: {"pipe", "w", 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, serverConfig{flags: tc.flags, role: "fds"})
			var conn net.Conn = s.dialTCP(t)
			if tc.tls {
				conn = s.startTLS(t, conn, nil)
			}
			out, err := io.ReadAll(conn)
			if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("reading the fd list: %v", err)
			}
			fds, env := parseFDList(t, string(out))
			checkFDMap(t, "program", fds, tc.want, s.stderrLink(t))
			for name, want := range map[string]string{"SSLCTLFD": "3", "SSLREADFD": "4", "SSLWRITEFD": "5"} {
				if env[name] != want {
					t.Errorf("$%s=%q, want %q", name, env[name], want)
				}
			}
			if fds[3].target == fds[0].target {
				t.Errorf("the control fd is the connection: %v", fds[3])
			}
		})
	}
}

// fdWant describes one expected descriptor.
type fdWant struct {
	kind   string // "stderr" (the server's fd 2), "/dev/null", or a link prefix: "socket", "unix", "tcp", "pipe"
	mode   string // r, w, rw
	sameAs int    // the fd that must share its target, -1 for none
}

// fdInfo is one open descriptor: readlink target and access mode.
type fdInfo struct {
	target, mode string
}

func parseFDList(t testing.TB, out string) (map[int]fdInfo, map[string]string) {
	t.Helper()
	fds, env := map[int]fdInfo{}, map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 4 && f[0] == "FD":
			n, _ := strconv.Atoi(f[1])
			fds[n] = fdInfo{target: f[2], mode: f[3]}
		case len(f) == 2 && f[0] == "ENV":
			k, v, _ := strings.Cut(f[1], "=")
			env[k] = v
		default:
			t.Fatalf("program printed %q", line)
		}
	}
	return fds, env
}

// checkFDMap compares a process's descriptors with want, exactly.
func checkFDMap(t testing.TB, who string, got map[int]fdInfo, want map[int]fdWant, stderr string) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("%s: open fds %v", who, got)
		}
	}()
	for fd, w := range want {
		g, ok := got[fd]
		switch {
		case !ok:
			t.Errorf("%s: fd %d is not open, want %s", who, fd, w.kind)
			continue
		case w.kind == "stderr" && g.target != stderr:
			t.Errorf("%s: fd %d is %s, want sslserver's stderr %s", who, fd, g.target, stderr)
		case w.kind == "/dev/null" && g.target != "/dev/null":
			t.Errorf("%s: fd %d is %s, want /dev/null", who, fd, g.target)
		case w.kind != "stderr" && w.kind != "/dev/null" && !strings.HasPrefix(g.target, w.kind+":["):
			t.Errorf("%s: fd %d is %s, want a %s", who, fd, g.target, w.kind)
		}
		if w.mode != "" && g.mode != w.mode {
			t.Errorf("%s: fd %d (%s) is open %q, want %q", who, fd, g.target, g.mode, w.mode)
		}
		if w.sameAs >= 0 && g.target != got[w.sameAs].target {
			t.Errorf("%s: fd %d is %s, want the same as fd %d (%s)", who, fd, g.target, w.sameAs, got[w.sameAs].target)
		}
	}
	for fd, g := range got {
		if _, ok := want[fd]; !ok {
			t.Errorf("%s: unexpected open fd %d: %s", who, fd, g.target)
		}
	}
}

// stderrLink is the readlink target of sslserver's own fd 2.
func (s *server) stderrLink(t testing.TB) string {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/2", s.pid))
	if err != nil {
		t.Fatal(err)
	}
	return l
}
