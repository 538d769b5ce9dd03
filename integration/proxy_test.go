package integration

// PROXY protocol: sslserver behind a real haproxy (v1 and v2), and by
// hand: the client the header names is the remote end for the program,
// the rules, MAXCONIP and the log; a trusted address must send a header,
// others are served as direct connections; health checks are quiet.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// The addresses of the PROXY tests: haproxy binds proxyFront and
// connects to sslserver from proxyAddr, the only address in PROXYFROM;
// clients come from 127.0.0.3 and up.
const (
	proxyFront = "127.0.0.2"
	proxyAddr  = "127.0.0.2"
)

// haproxyConfig is a TCP frontend on proxyFront:port that forwards, in
// turn, to the backend servers that follow it, one haproxyServer line
// each.
const haproxyConfig = `global
	maxconn 200
defaults
	mode tcp
	timeout connect 5s
	timeout client 30s
	timeout server 30s
frontend fe
	bind %s:%d
	default_backend be
backend be
	balance roundrobin
`

// haproxyServer is a backend server line: it connects from proxyAddr with
// sendProxy ("send-proxy-v2", "send-proxy") and check ("check inter
// 100ms" and the like, or "").
const haproxyServer = "\tserver s%d %s source %s %s %s\n"

// startHAProxy runs haproxy in the foreground (-db) in front of the
// servers, which it takes in turn, and returns its frontend address; it
// is killed at cleanup.
func startHAProxy(t testing.TB, sendProxy, check string, servers ...*server) string {
	t.Helper()
	bin := needTool(t, "haproxy")
	port := freePort(t, proxyFront)
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	text := fmt.Sprintf(haproxyConfig, proxyFront, port)
	for i, s := range servers {
		text += fmt.Sprintf(haproxyServer, i+1, s.addr, proxyAddr, sendProxy, check)
	}
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", cfg)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting haproxy: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	front := joinHostPort(proxyFront, port)
	waitListening(t, front, out)
	return front
}

// freePort finds a port free on ip.
func freePort(t testing.TB, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitListening waits until a socket listens on addr (IPv4), looked
// up in /proc/net/tcp: a test connection would go through to sslserver
// as a client.
func waitListening(t testing.TB, addr string, log fmt.Stringer) {
	t.Helper()
	if !waitListen(addr) {
		t.Fatalf("nothing listens on %s after %v:\n%s", addr, waitTime, log)
	}
}

// waitListen is waitListening without a test: false after waitTime.
func waitListen(addr string) bool {
	ap := netip.MustParseAddrPort(addr)
	a := ap.Addr().As4()
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", a[3], a[2], a[1], a[0], ap.Port())
	for deadline := time.Now().Add(waitTime); time.Now().Before(deadline); {
		if listensIn("/proc/net/tcp", want) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// listensIn: /proc/net/tcp has a socket in state LISTEN (0A) bound to
// local (hex address:port).
func listensIn(table, local string) bool {
	b, _ := os.ReadFile(table)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && f[1] == local && f[3] == "0A" {
			return true
		}
	}
	return false
}

// proxyServer is sslserver trusting proxyAddr.
func proxyServer(t testing.TB, cfg serverConfig) *server {
	cfg.env = append(cfg.env, "PROXYFROM=10.9.9.9, "+proxyAddr+"/32")
	return startServer(t, cfg)
}

var anyWarningLine = regexp.MustCompile(`warning`)

// TestProxyHAProxyEnvironment: through haproxy (v2 and v1), the program,
// the ok line and a -x rule see the client's own address and port; the
// proxy's is PROXYREMOTEIP; none of the server's own settings reaches
// the program; the health checks haproxy sends meanwhile cost no
// session and no warning.
func TestProxyHAProxyEnvironment(t *testing.T) {
	// haproxy's health checks: with v2 and check-send-proxy a LOCAL
	// header; v1 has none, so a v1 set-up checks with a bare connection
	// (a v1 check-send-proxy header would name the proxy as a client).
	for send, check := range map[string]string{"send-proxy-v2": "check check-send-proxy inter 100ms", "send-proxy": "check inter 100ms"} {
		t.Run(send, func(t *testing.T) {
			rules := filepath.Join(t.TempDir(), "rules.cdb")
			compileRules(t, rules, "127.0.0.3:allow,FROM=\"rule\"\n127.0.0.4:deny\n")
			s := proxyServer(t, serverConfig{flags: []string{"-x", rules}, role: "env",
				env: []string{"REUSEPORT=0", "LISTEN_FDS=1", "LISTEN_FDNAMES=x", "NOTIFY_SOCKET=", "PROXYREMOTEIP=6.6.6.6"}})
			front := startHAProxy(t, send, check, s)
			raw := dialVia(t, front, "127.0.0.3")
			tc := s.startTLS(t, raw, nil)
			pid := s.sessionPIDFrom(t, "127.0.0.3", localPort(raw))
			got := s.readEnvTLS(t, tc, pid)
			checkExact(t, got, map[string]string{"SSLREMOTEIP": "127.0.0.3", "TCPREMOTEIP": "127.0.0.3",
				"SSLREMOTEPORT": strconv.Itoa(localPort(raw)), "TCPREMOTEPORT": strconv.Itoa(localPort(raw)),
				"PROXYREMOTEIP": proxyAddr, "FROM": "rule"})
			checkAbsent(t, got, []string{"PROXYFROM", "REUSEPORT", "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID", "NOTIFY_SOCKET"})

			denied := dialVia(t, front, "127.0.0.4")
			deny := regexp.MustCompile(`^sslserver: deny 0 :127\.0\.0\.1:\d+ :127\.0\.0\.4::` + strconv.Itoa(localPort(denied)) + `$`)
			expectClosed(t, denied)
			s.waitLog(t, deny)

			time.Sleep(500 * time.Millisecond) // five health checks at least
			if w := s.log.matches(anyWarningLine); len(w) > 0 {
				t.Errorf("warnings behind haproxy: %q", w)
			}
			if n := s.countLog(regexp.MustCompile(`^sslserver: pid \d+ from `)); n != 1 {
				t.Errorf("%d sessions started, want 1 (health checks start none)", n)
			}
		})
	}
}

// TestProxyHAProxyMaxConIP: MAXCONIP=1 counts the clients behind the
// proxy one by one, not the proxy: a second client from another address
// is served while the first holds its session, a second session from
// the first client's address is refused.
func TestProxyHAProxyMaxConIP(t *testing.T) {
	s := proxyServer(t, serverConfig{env: []string{"MAXCONIP=1"}, role: "sleep"})
	front := startHAProxy(t, "send-proxy-v2", "", s)
	held := holdVia(t, s, front, "127.0.0.3")
	other := holdVia(t, s, front, "127.0.0.5")
	warn := perIPWarning("127.0.0.3", 1)
	expectClosed(t, dialVia(t, front, "127.0.0.3"))
	s.waitLog(t, warn)
	s.endHeld(t, held)
	s.endHeld(t, other)
}

// proxyV2 is a v2 PROXY header for a TCP connection from src to dst.
func proxyV2(t testing.TB, src, dst string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)),
		net.TCPAddrFromAddrPort(netip.MustParseAddrPort(dst)))
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestProxyHeaderThenEarlyBytes: a header and the client's first SMTP
// command in one write, under -n: the program reads the command, byte
// for byte, and nothing of the header.
func TestProxyHeaderThenEarlyBytes(t *testing.T) {
	s := proxyServer(t, serverConfig{flags: []string{"-n"}, program: []string{"/bin/cat"}})
	for _, hdr := range [][]byte{proxyV2(t, "192.0.2.9:4000", "198.51.100.1:25"), []byte("PROXY TCP4 192.0.2.9 198.51.100.1 4000 25\r\n")} {
		c := s.dialFrom(t, proxyAddr)
		early := "EHLO client.example\r\nMAIL FROM:<a@example.org>\r\n"
		if _, err := c.Write(append(append([]byte{}, hdr...), early...)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(early))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != early {
			t.Errorf("the program read %q (%v), want %q", got, err, early)
		}
		c.CloseWrite()
		if rest, _ := io.ReadAll(c); len(rest) != 0 {
			t.Errorf("the program read more: %q", rest)
		}
		s.waitLog(t, regexp.MustCompile(`^sslserver: ok \d+ \S+ :192\.0\.2\.9::4000$`))
	}
}

// TestProxyUntrustedIsDirect: a client outside PROXYFROM that sends a
// PROXY header is a direct client: its remote address is its own and
// the header's bytes reach the program as data.
func TestProxyUntrustedIsDirect(t *testing.T) {
	s := proxyServer(t, serverConfig{flags: []string{"-n"}, program: []string{"/bin/cat"}})
	c := s.dialFrom(t, "127.0.0.3")
	hdr := "PROXY TCP4 192.0.2.9 198.51.100.1 4000 25\r\n"
	c.Write([]byte(hdr))
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != hdr {
		t.Errorf("the program read %q (%v), want the header as data", got, err)
	}
	s.waitLog(t, regexp.MustCompile(`^sslserver: ok \d+ \S+ :127\.0\.0\.3::`+strconv.Itoa(localPort(c))+`$`))
	if n := s.countLog(regexp.MustCompile(`192\.0\.2\.9`)); n != 0 {
		t.Errorf("the untrusted header's address reached the log")
	}
}

// proxyDropCases: what a trusted proxy may send, and what becomes of it.
// A warning names the proxy; health checks (LOCAL, v1 UNKNOWN, a close
// before the first byte) are quiet.
var proxyDropCases = []struct {
	name string
	send func(t testing.TB, c net.Conn) []byte // nil: send nothing
	stay bool                                  // keep the connection open (-T ends it)
	warn string                                // "" for none
}{
	{"TLS without a header", func(testing.TB, net.Conn) []byte { return []byte("\x16\x03\x01\x00\x05hello") }, false, "bad PROXY header: no PROXY header"},
	{"SMTP without a header", func(testing.TB, net.Conn) []byte { return []byte("EHLO x\r\n") }, false, "bad PROXY header: no PROXY header"},
	{"malformed v1", func(testing.TB, net.Conn) []byte { return []byte("PROXY TCP4 1.2.3.999 1.2.3.4 1 2\r\n") }, false, "bad PROXY header: "},
	{"v1 line too long", func(testing.TB, net.Conn) []byte { return []byte("PROXY TCP4 " + strings.Repeat("1", 120)) }, false, "bad PROXY header: PROXY header too long"},
	{"v2 too long", func(t testing.TB, _ net.Conn) []byte {
		b := proxyV2(t, "1.2.3.4:1", "1.2.3.5:2")
		b[14], b[15] = 0xff, 0xff
		return b
	}, false, "bad PROXY header: PROXY header too long"},
	{"nothing until -T", nil, true, "no PROXY header within 2s"},
	{"half a header until -T", func(t testing.TB, _ net.Conn) []byte { return proxyV2(t, "1.2.3.4:1", "1.2.3.5:2")[:20] }, true, "bad PROXY header: PROXY header incomplete"},
	{"v2 LOCAL", func(t testing.TB, _ net.Conn) []byte {
		b := proxyV2(t, "1.2.3.4:1", "1.2.3.5:2")
		b[12] = 0x20
		return b
	}, false, ""},
	{"v1 UNKNOWN", func(testing.TB, net.Conn) []byte { return []byte("PROXY UNKNOWN\r\n") }, false, ""},
	{"v1 naming its own connection", func(_ testing.TB, c net.Conn) []byte {
		l, r := c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr)
		return fmt.Appendf(nil, "PROXY TCP4 %s %s %d %d\r\n", l.IP, r.IP, l.Port, r.Port)
	}, false, ""},
	{"closed at once", nil, false, ""},
}

// TestProxyTrustedDrops: every connection of proxyDropCases is closed
// without a session; the server then serves a good proxied client.
func TestProxyTrustedDrops(t *testing.T) {
	s := proxyServer(t, serverConfig{flags: []string{"-n", "-T", "2"}, program: []string{"/bin/cat"}})
	idle := regexp.MustCompile(`^sslserver: status: 0/\d+$`)
	for i, tc := range proxyDropCases {
		c := s.dialFrom(t, proxyAddr)
		if tc.send != nil {
			c.Write(tc.send(t, c))
		}
		if !tc.stay && tc.send == nil {
			c.Close()
		} else {
			expectClosed(t, c)
		}
		if tc.warn != "" {
			s.waitLog(t, regexp.MustCompile(`^sslserver: warning: dropping connection from `+regexp.QuoteMeta(proxyAddr)+`, `+regexp.QuoteMeta(tc.warn)))
		}
		s.waitCount(t, idle, i+2) // the session ended
	}
	c := s.dialFrom(t, proxyAddr)
	c.Write(append(proxyV2(t, "192.0.2.9:4000", "198.51.100.1:25"), "hi\n"...))
	if got, err := bufio.NewReader(c).ReadString('\n'); got != "hi\n" {
		t.Errorf("after the drops, a good client read %q, %v", got, err)
	}
	s.waitLog(t, pidLines("192.0.2.9"))
	warnings := s.log.matches(anyWarningLine)
	if want := 7; len(warnings) != want {
		t.Errorf("%d warnings, want %d (none for health checks): %q", len(warnings), want, warnings)
	}
	if n := s.countLog(regexp.MustCompile(`^sslserver: pid `)); n != 1 {
		t.Errorf("%d sessions started, want 1", n)
	}
}

// lockedBuffer collects a process's output from its copying goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// TestProxyStallDoesNotBlock: a trusted connection that sends nothing
// holds its own -c slot until -T, not the accept loop: a client behind
// it is served at once.
func TestProxyStallDoesNotBlock(t *testing.T) {
	s := proxyServer(t, serverConfig{flags: []string{"-n", "-T", "20"}, program: []string{"/bin/cat"}})
	stalled := s.dialFrom(t, proxyAddr)
	s.waitLog(t, regexp.MustCompile(`^sslserver: status: 1/\d+$`))
	start := time.Now()
	c := s.dialFrom(t, "127.0.0.3")
	c.Write([]byte("hi\n"))
	if got, err := bufio.NewReader(c).ReadString('\n'); got != "hi\n" || time.Since(start) > 5*time.Second {
		t.Errorf("beside a stalled proxy connection, a client read %q (%v) after %v", got, err, time.Since(start))
	}
	stalled.Close()
}

// TestProxyLookupsSeeTheClient: the PTR lookup (-h) asks for the client
// the header names, never for the proxy, and its answer is the client's
// SSLREMOTEHOST and the ok line's host.
func TestProxyLookupsSeeTheClient(t *testing.T) {
	dns := startDNS(t)
	dns.ptr("192.0.2.9", "client.example.net")
	s := proxyServer(t, serverConfig{flags: []string{"-n", "-h"}, env: []string{dns.cacheVar()}, role: "env"})
	c := s.dialFrom(t, proxyAddr)
	c.Write(proxyV2(t, "192.0.2.9:4000", "198.51.100.1:25"))
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the environment: %v", err)
	}
	got := parseEnvDump(t, string(out))
	checkExact(t, got, map[string]string{"SSLREMOTEHOST": "client.example.net", "SSLREMOTEIP": "192.0.2.9", "PROXYREMOTEIP": proxyAddr})
	s.waitLog(t, regexp.MustCompile(`^sslserver: ok \d+ \S+ client\.example\.net:192\.0\.2\.9::4000$`))
	if q := (dnsQ{arpa(netip.MustParseAddr(proxyAddr)), typePTR}); dns.wasAsked(q) {
		t.Errorf("the DNS server was asked %v, the proxy's name", q)
	}
}
