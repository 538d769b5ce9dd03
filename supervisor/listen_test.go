package supervisor

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func listenOn(t *testing.T, host, port string, backlog int) *net.TCPListener {
	t.Helper()
	ln, err := Listen(&Options{Host: host, Port: port, Backlog: backlog})
	if err != nil {
		t.Fatalf("Listen(%q, %q): %v", host, port, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func boundAddr(ln *net.TCPListener) netip.AddrPort {
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// dialVia connects to ln's port at ip and checks that ln accepts it.
func dialVia(t *testing.T, ln *net.TCPListener, ip string) error {
	t.Helper()
	port := strconv.Itoa(int(boundAddr(ln).Port()))
	c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, port), 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	ln.SetDeadline(time.Now().Add(2 * time.Second))
	a, err := ln.Accept()
	if err != nil {
		t.Fatalf("connected via %s but Accept failed: %v", ip, err)
	}
	a.Close()
	return nil
}

func sockoptInt(t *testing.T, ln *net.TCPListener, level, opt int) int {
	t.Helper()
	rc, err := ln.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), level, opt) })
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

func hasIPv6(t *testing.T) {
	t.Helper()
	c, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	c.Close()
}

func TestListenZeroIsIPv4Any(t *testing.T) {
	ln := listenOn(t, "0", "0", 20)
	a := boundAddr(ln)
	if a.Addr() != netip.IPv4Unspecified() {
		t.Fatalf("host 0 bound %v, want 0.0.0.0", a.Addr())
	}
	if a.Port() == 0 {
		t.Fatal("port 0 did not give a real port")
	}
	if err := dialVia(t, ln, "127.0.0.1"); err != nil {
		t.Fatalf("IPv4 client: %v", err)
	}
}

func TestListenDualStack(t *testing.T) {
	hasIPv6(t)
	for _, host := range []string{"::", ":0"} {
		ln := listenOn(t, host, "0", 20)
		if a := boundAddr(ln).Addr(); a != netip.IPv6Unspecified() {
			t.Errorf("host %q bound %v, want ::", host, a)
		}
		if v := sockoptInt(t, ln, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); v != 0 {
			t.Errorf("host %q: IPV6_V6ONLY is %d, want 0 whatever the sysctl says", host, v)
		}
		if err := dialVia(t, ln, "127.0.0.1"); err != nil {
			t.Errorf("host %q: IPv4 client cannot connect: %v", host, err)
		}
		if err := dialVia(t, ln, "::1"); err != nil {
			t.Errorf("host %q: IPv6 client cannot connect: %v", host, err)
		}
	}
}

func TestListenLiteralIPv6(t *testing.T) {
	hasIPv6(t)
	ln := listenOn(t, "::1", "0", 20)
	if a := boundAddr(ln).Addr(); a != netip.IPv6Loopback() {
		t.Fatalf("bound %v, want ::1", a)
	}
	if v := sockoptInt(t, ln, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); v != 1 {
		t.Errorf("a literal IPv6 address: IPV6_V6ONLY is %d, want 1", v)
	}
	if err := dialVia(t, ln, "::1"); err != nil {
		t.Fatalf("IPv6 client: %v", err)
	}
	if err := dialVia(t, ln, "127.0.0.1"); err == nil {
		t.Fatal("an IPv4 client reached a listener bound to ::1")
	}
}

func TestListenLiteralIPv4AndMapped(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::ffff:127.0.0.1"} {
		ln := listenOn(t, host, "0", 20)
		if a := boundAddr(ln).Addr(); a != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("host %q bound %v, want 127.0.0.1", host, a)
		}
		if err := dialVia(t, ln, "127.0.0.1"); err != nil {
			t.Errorf("host %q: %v", host, err)
		}
	}
}

func TestListenNameFromHostsFile(t *testing.T) {
	ln, err := Listen(&Options{Host: "localhost", Port: "0", Backlog: 20, Prefer: '4'})
	if err != nil {
		t.Skipf("localhost does not resolve here: %v", err)
	}
	defer ln.Close()
	if a := boundAddr(ln).Addr(); !a.IsLoopback() || !a.Is4() {
		t.Fatalf("localhost with -4 bound %v", a)
	}
}

func TestListenPortNames(t *testing.T) {
	if p, err := resolvePort("smtp"); err != nil || p != 25 {
		t.Errorf("resolvePort(smtp) = %d, %v; want 25", p, err)
	}
	if p, err := resolvePort("8025"); err != nil || p != 8025 {
		t.Errorf("resolvePort(8025) = %d, %v", p, err)
	}
	for _, bad := range []string{"no-such-service", "65536", "-1", "", "25x", "99999"} {
		if _, err := Listen(&Options{Host: "127.0.0.1", Port: bad, Backlog: 20}); err == nil {
			t.Errorf("Listen accepted port %q", bad)
		}
	}
}

func TestListenBadHosts(t *testing.T) {
	for _, bad := range []string{"not a host name", "256.1.1.1x", "::1%no-such-interface-x"} {
		if ln, err := Listen(&Options{Host: bad, Port: "0", Backlog: 20}); err == nil {
			ln.Close()
			t.Errorf("Listen accepted host %q", bad)
		}
	}
}

func TestListenBadInterface(t *testing.T) {
	hasIPv6(t)
	if ln, err := Listen(&Options{Host: "::1", Port: "0", Backlog: 20, Interface: "no-such-if0"}); err == nil {
		ln.Close()
		t.Fatal("Listen accepted a missing interface")
	}
}

func TestListenPortInUse(t *testing.T) {
	ln := listenOn(t, "127.0.0.1", "0", 20)
	port := strconv.Itoa(int(boundAddr(ln).Port()))
	if ln2, err := Listen(&Options{Host: "127.0.0.1", Port: port, Backlog: 20}); err == nil {
		ln2.Close()
		t.Fatal("two listeners bound the same port")
	}
}

func TestListenerIsCloseOnExec(t *testing.T) {
	if !closeOnExec(listenOn(t, "127.0.0.1", "0", 20)) {
		t.Fatal("the listening socket would leak into every program")
	}
}

func closeOnExec(ln *net.TCPListener) bool {
	rc, _ := ln.SyscallConn()
	var flags int
	rc.Control(func(fd uintptr) { flags, _ = unix.FcntlInt(fd, unix.F_GETFD, 0) })
	return flags&unix.FD_CLOEXEC != 0
}

// TestListenBacklog: with nobody accepting, the kernel completes about
// backlog+1 handshakes and then drops SYNs, so -b is visible from the
// client side.
func TestListenBacklog(t *testing.T) {
	small := queued(t, 2, 6)
	large := queued(t, 20, 6)
	if small < 2 || small > 3 {
		t.Errorf("-b 2 let %d connections queue, want 2 or 3", small)
	}
	if large != 6 {
		t.Errorf("-b 20 let %d of 6 connections queue", large)
	}
}

// queued counts how many of tries connections complete against a
// listener that never accepts.
func queued(t *testing.T, backlog, tries int) int {
	return queuedOn(t, listenOn(t, "127.0.0.1", "0", backlog), tries)
}

func queuedOn(t *testing.T, ln *net.TCPListener, tries int) int {
	addr := ln.Addr().String()
	n := 0
	for i := 0; i < tries; i++ {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			break
		}
		defer c.Close()
		n++
	}
	return n
}

func listenReuse(t *testing.T, host, port string, backlog int) *net.TCPListener {
	t.Helper()
	ln, err := Listen(&Options{Host: host, Port: port, Backlog: backlog, ReusePort: true})
	if err != nil {
		t.Fatalf("Listen(%q, %q) with REUSEPORT: %v", host, port, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// TestListenReusePort: with REUSEPORT a second listener binds the port
// of the first (through go_reuseport), one without cannot; -b still sets
// the backlog (go_reuseport listens with the largest); the socket is
// close-on-exec, and "::" is dual stack.
func TestListenReusePort(t *testing.T) {
	a := listenReuse(t, "127.0.0.1", "0", 2)
	port := strconv.Itoa(int(boundAddr(a).Port()))
	b := listenReuse(t, "127.0.0.1", port, 2)
	if v := sockoptInt(t, b, unix.SOL_SOCKET, unix.SO_REUSEPORT); v != 1 {
		t.Errorf("SO_REUSEPORT is %d", v)
	}
	if ln, err := Listen(&Options{Host: "127.0.0.1", Port: port, Backlog: 20}); err == nil {
		ln.Close()
		t.Error("a listener without REUSEPORT bound a REUSEPORT port")
	}
	b.Close()
	if n := queuedOn(t, a, 6); n < 2 || n > 3 {
		t.Errorf("-b 2 with REUSEPORT let %d connections queue, want 2 or 3", n)
	}
	if !closeOnExec(a) {
		t.Error("the REUSEPORT socket would leak into every program")
	}
	hasIPv6(t)
	d := listenReuse(t, "::", "0", 20)
	if err := dialVia(t, d, "127.0.0.1"); err != nil {
		t.Errorf("REUSEPORT on \"::\": IPv4 client cannot connect: %v", err)
	}
}

func TestParseReusePort(t *testing.T) {
	for v, want := range map[string]bool{"": false, "0": false, "1": true} {
		if got, err := parseReusePort(v); got != want || err != nil {
			t.Errorf("parseReusePort(%q) = %v, %v", v, got, err)
		}
	}
	for _, v := range []string{"yes", "true", " 1", "2"} {
		if _, err := parseReusePort(v); err == nil || !strings.Contains(err.Error(), "REUSEPORT") {
			t.Errorf("parseReusePort(%q) = %v, want an error naming REUSEPORT", v, err)
		}
	}
}
