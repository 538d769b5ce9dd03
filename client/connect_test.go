package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/internal/testutil"
)

// dialLog is a dialFunc that records its calls and answers from a script:
// per address, the errors of successive attempts (nil: connected).
type dialLog struct {
	script map[netip.Addr][]error
	calls  []string
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var errTimeout net.Error = timeoutErr{}

func (d *dialLog) dial(ap netip.AddrPort, timeout time.Duration) (*net.TCPConn, error) {
	d.calls = append(d.calls, fmt.Sprintf("%s/%v", ap, timeout))
	errs := d.script[ap.Addr()]
	if len(errs) == 0 {
		return nil, errors.New("unscripted")
	}
	err := errs[0]
	d.script[ap.Addr()] = errs[1:]
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
	}
	return &net.TCPConn{}, nil
}

var (
	addrA = netip.MustParseAddr("192.0.2.1")
	addrB = netip.MustParseAddr("2001:db8::2")
	addrC = netip.MustParseAddr("192.0.2.3")
)

func TestConnectAllPasses(t *testing.T) {
	refused := syscall.ECONNREFUSED
	cases := []struct {
		name    string
		script  map[netip.Addr][]error
		timeout [2]time.Duration
		calls   []string
		ok      bool
		errText string
	}{
		{
			name:    "first address answers",
			script:  map[netip.Addr][]error{addrA: {nil}},
			timeout: [2]time.Duration{2 * time.Second, 58 * time.Second},
			calls:   []string{"192.0.2.1:25/2s"}, ok: true,
		},
		{
			name:    "refused then the next one",
			script:  map[netip.Addr][]error{addrA: {refused}, addrB: {nil}},
			timeout: [2]time.Duration{2 * time.Second, 58 * time.Second},
			calls:   []string{"192.0.2.1:25/2s", "[2001:db8::2]:25/2s"}, ok: true,
		},
		{
			name:    "only timed-out addresses get the second pass, in order",
			script:  map[netip.Addr][]error{addrA: {errTimeout, nil}, addrB: {refused}, addrC: {errTimeout}},
			timeout: [2]time.Duration{2 * time.Second, 58 * time.Second},
			calls:   []string{"192.0.2.1:25/2s", "[2001:db8::2]:25/2s", "192.0.2.3:25/2s", "192.0.2.1:25/58s"}, ok: true,
		},
		{
			name:    "all fail: the last error is reported",
			script:  map[netip.Addr][]error{addrA: {errTimeout, errTimeout}, addrB: {refused}, addrC: {refused}},
			timeout: [2]time.Duration{time.Second, 3 * time.Second},
			calls:   []string{"192.0.2.1:25/1s", "[2001:db8::2]:25/1s", "192.0.2.3:25/1s", "192.0.2.1:25/3s"},
			errText: "unable to connect to 192.0.2.1 port 25: timed out after 3s",
		},
		{
			name:    "-T x alone: no second pass",
			script:  map[netip.Addr][]error{addrA: {errTimeout, nil}, addrB: {errTimeout, nil}, addrC: {refused}},
			timeout: [2]time.Duration{time.Second, 0},
			calls:   []string{"192.0.2.1:25/1s", "[2001:db8::2]:25/1s", "192.0.2.3:25/1s"},
			errText: "unable to connect to 192.0.2.3 port 25: connection refused",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &dialLog{script: tc.script}
			var logged bytes.Buffer
			c, err := connectAll([]netip.Addr{addrA, addrB, addrC}, 25, tc.timeout, d.dial, newLogger(&logged, Verbose))
			if strings.Join(d.calls, " ") != strings.Join(tc.calls, " ") {
				t.Errorf("attempts %q, want %q", d.calls, tc.calls)
			}
			if tc.ok != (err == nil && c != nil) {
				t.Fatalf("connected %v (%v), want %v", c != nil, err, tc.ok)
			}
			if !tc.ok && (err == nil || err.Error() != tc.errText) {
				t.Errorf("error %v, want %q", err, tc.errText)
			}
			if n := strings.Count(logged.String(), "\n"); n != len(tc.calls)-boolInt(tc.ok) {
				t.Errorf("logged %d lines at -v for %d attempts:\n%s", n, len(tc.calls), logged.String())
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A real timeout: a listener whose accept queue is full drops the SYN.
func TestNetDialerTimesOut(t *testing.T) {
	ap := testutil.FullQueue(t)
	d := netDialer{}
	start := time.Now()
	_, err := d.dial(ap, 300*time.Millisecond)
	if !isTimeout(err) {
		t.Fatalf("dial to a full accept queue: %v, want a timeout", err)
	}
	if el := time.Since(start); el < 250*time.Millisecond || el > 3*time.Second {
		t.Errorf("timed out after %v, want about 300ms", el)
	}
	if got := describeDialError(err, 300*time.Millisecond); got != "timed out after 300ms" {
		t.Errorf("described as %q", got)
	}
}

func TestNetDialerRefusedAndLocalAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	local, err := localAddr("127.0.0.1", "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := netDialer{local: local}.dial(ap, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.LocalAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.1" {
		t.Errorf("local address %s, want 127.0.0.1", got)
	}
	f, err := connFile(c, true)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fl, _ := fcntlFlags(f); fl&syscall.O_NONBLOCK != 0 {
		t.Error("the connection's file is non-blocking: a -y program would see EAGAIN")
	}
	ln.Close()
	_, err = netDialer{}.dial(ap, time.Second)
	if got := describeDialError(err, time.Second); got != "connection refused" {
		t.Errorf("dial to a closed port: %q (%v), want connection refused", got, err)
	}
}

func fcntlFlags(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var fl int
	var ferr error
	rc.Control(func(fd uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		fl, ferr = int(r), nil
		if e != 0 {
			ferr = e
		}
	})
	return fl, ferr
}

func TestLocalAddr(t *testing.T) {
	if a, err := localAddr("", ""); a != nil || err != nil {
		t.Errorf("no -i -p: %v, %v; want nil, nil", a, err)
	}
	a, err := localAddr("::1", "1025")
	if err != nil || a.IP.String() != "::1" || a.Port != 1025 {
		t.Errorf("-i ::1 -p 1025: %v, %v", a, err)
	}
	for _, bad := range [][2]string{{"mx.example.org", ""}, {"", "x y"}, {"1.2.3", ""}} {
		if a, err := localAddr(bad[0], bad[1]); err == nil {
			t.Errorf("localAddr(%q, %q) = %v", bad[0], bad[1], a)
		}
	}
}

func TestResolveHostLiterals(t *testing.T) {
	cases := []struct {
		host   string
		family byte
		want   string
	}{
		{"192.0.2.1", 0, "[192.0.2.1]"},
		{"::ffff:192.0.2.1", 0, "[192.0.2.1]"},
		{"2001:db8::1", '6', "[2001:db8::1]"},
		{"0", 0, "[0.0.0.0]"},
		{"localhost", '4', "[127.0.0.1]"}, // /etc/hosts, no DNS
	}
	for _, c := range cases {
		got, err := resolveHost(context.Background(), c.host, c.family)
		if err != nil || fmt.Sprint(got) != c.want {
			t.Errorf("resolveHost(%q, %q) = %v, %v; want %s", c.host, c.family, got, err, c.want)
		}
	}
	if got, err := resolveHost(context.Background(), "192.0.2.1", '6'); err == nil {
		t.Errorf("an IPv4 literal under -6 gave %v", got)
	}
}

func TestPeerNames(t *testing.T) {
	cases := []struct {
		host        string
		nameCheck   bool
		sni, verify string
	}{
		{"MX.Example.org.", true, "mx.example.org", "mx.example.org"},
		{"mx.example.org", false, "mx.example.org", ""},
		{"192.0.2.1", true, "", "192.0.2.1"},
		{"fe80::1%eth0", true, "", "fe80::1"},
		{"::ffff:192.0.2.1", true, "", "192.0.2.1"},
		{"0", true, "", "0.0.0.0"},
	}
	for _, c := range cases {
		sni, verify := peerNames(c.host, c.nameCheck)
		if sni != c.sni || verify != c.verify {
			t.Errorf("peerNames(%q, %v) = %q, %q; want %q, %q", c.host, c.nameCheck, sni, verify, c.sni, c.verify)
		}
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"Mail.Example.ORG.":      "mail.example.org",
		"a_b-c.example":          "a_b-c.example",
		"bad name.example":       "",
		"evil\n.example":         "",
		"192.0.2.1":              "",
		".example":               "",
		"a..example":             "",
		"":                       "",
		strings.Repeat("a", 254): "",
	} {
		if got := cleanName(in); got != want {
			t.Errorf("cleanName(%q) = %q, want %q", in, got, want)
		}
	}
}
