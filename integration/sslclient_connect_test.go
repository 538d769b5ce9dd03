package integration

// sslclient's command line and connection: usage errors, a refused
// connection, and -T x+y against an address that does not answer.

import (
	"net"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/internal/testutil"
)

func TestSslclientUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{},
		{"127.0.0.1", "443"},
		{"-j", "127.0.0.1", "443", "true"},
		{"-r", "127.0.0.1", "443", "true"},
		{"-T", "x+1", "127.0.0.1", "443", "true"},
		{"-T", "0", "127.0.0.1", "443", "true"},
		{"-w", "forever", "127.0.0.1", "443", "true"},
		{"127.0.0.1", "0", "true"},
		{"127.0.0.1", "no-such-service-here", "true"},
		{"-p", "no-such-service-here", "127.0.0.1", "443", "true"},
		{"-i"},
	} {
		res := runClient(t, clientRun{program: args})
		lines := sslclientLines(res.stderr)
		if res.code != 100 || len(lines) != 2 || !regexp.MustCompile(`^sslclient: usage: \S`).MatchString(lines[0]) ||
			lines[1] != `sslclient: try "sslclient --help"` || res.stdout != "" {
			t.Errorf("sslclient %q: exit %d, said %q; want 100, one usage line and the pointer to --help", args, res.code, lines)
		}
	}
}

func TestSslclientConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	res := runClient(t, clientRun{args: []string{"-RHl0", "127.0.0.1", port}, role: "env"})
	expectFatal(t, res, `^sslclient: fatal: unable to connect to 127\.0\.0\.1 port `+port+`: connection refused$`)
}

// A listener whose accept queue is full drops new SYNs, so connecting
// times out: -T 1+1 tries once for a second, then again for a second,
// and gives up with 111.
func TestSslclientConnectTimeout(t *testing.T) {
	t.Parallel()
	port := strconv.Itoa(int(testutil.FullQueue(t).Port()))
	res := runClient(t, clientRun{args: []string{"-v", "-T", "1+1", "-RHl0", "127.0.0.1", port}, role: "env"})
	if res.code != 111 {
		t.Errorf("exit %d, want 111", res.code)
	}
	want := []string{
		`^sslclient: unable to connect to 127\.0\.0\.1 port ` + port + `: timed out after 1s \(pass 1\)$`,
		`^sslclient: unable to connect to 127\.0\.0\.1 port ` + port + `: timed out after 1s \(pass 2\)$`,
		`^sslclient: fatal: unable to connect to 127\.0\.0\.1 port ` + port + `: timed out after 1s$`,
	}
	lines := sslclientLines(res.stderr)
	if len(lines) != len(want) {
		t.Fatalf("sslclient said %q", lines)
	}
	for i, re := range want {
		if !regexp.MustCompile(re).MatchString(lines[i]) {
			t.Errorf("line %q, want %q", lines[i], re)
		}
	}
	if res.elapsed < 1900*time.Millisecond || res.elapsed > 8*time.Second {
		t.Errorf("gave up after %v, want about 2s", res.elapsed)
	}
}

// A server that accepts but never answers the handshake: -T x+y bounds
// the handshake too, and the program never runs.
func TestSslclientHandshakeTimeout(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go holdConnections(ln)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	res := runClient(t, clientRun{args: []string{"-T", "1+1", "-RHl0", "127.0.0.1", port}, role: "env"})
	expectFatal(t, res, `^sslclient: fatal: TLS handshake with 127\.0\.0\.1:`+port+` failed: not done within 2 seconds$`)
	if res.stdout != "" || res.elapsed < 1900*time.Millisecond || res.elapsed > 8*time.Second {
		t.Errorf("program output %q, gave up after %v; want none and about 2s", res.stdout, res.elapsed)
	}
}

// holdConnections accepts and keeps every connection open, silent,
// until the listener closes.
func holdConnections(ln net.Listener) {
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		held = append(held, c)
	}
}
