package supervisor

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

func TestParseProxyFrom(t *testing.T) {
	tr, err := parseProxyFrom("192.0.2.7, 10.0.0.0/8,2001:db8::/32,::ffff:172.16.0.0/108,::1")
	if err != nil {
		t.Fatal(err)
	}
	for a, want := range map[string]bool{
		"192.0.2.7": true, "::ffff:192.0.2.7": true, "192.0.2.8": false, "10.200.1.1": true,
		"2001:db8:1::5": true, "2001:db9::1": false, "172.16.5.5": true, "172.32.0.1": false, "::1": true, "127.0.0.1": false,
	} {
		if got := tr.trusts(netip.MustParseAddr(a)); got != want {
			t.Errorf("trusts(%s) = %v, want %v", a, got, want)
		}
	}
	for _, bad := range []string{",", "10.0.0.1,", "10.0.0.0/33", "example.net", "fe80::1%eth0", "10.0.0.1 10.0.0.2"} {
		if _, err := parseProxyFrom(bad); err == nil || !strings.Contains(err.Error(), "PROXYFROM") {
			t.Errorf("parseProxyFrom(%q) = %v, want an error naming PROXYFROM", bad, err)
		}
	}
	if tr, err := parseProxyFrom(""); err != nil || tr.trusts(netip.MustParseAddr("127.0.0.1")) {
		t.Errorf("empty PROXYFROM trusts someone: %v %v", tr, err)
	}
}

func v2Header(t testing.TB, src, dst string) []byte {
	h := proxyproto.HeaderProxyFromAddrs(2, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)), net.TCPAddrFromAddrPort(netip.MustParseAddrPort(dst)))
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestProxyHeaderLen: the framing says how many bytes to wait for and
// refuses what cannot start a header or would be too long.
func TestProxyHeaderLen(t *testing.T) {
	v1 := "PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n"
	v2 := v2Header(t, "192.0.2.7:40000", "198.51.100.1:25")
	long := append(append([]byte{}, v2[:14]...), 0x04, 0x00)
	for _, c := range []struct {
		in   string
		want int
		err  error
	}{
		{"", 0, nil}, {"PRO", 0, nil}, {"PROXY TCP4 192.0.2.7", 0, nil}, {v1, len(v1), nil},
		{v1 + "EHLO x\r\n", len(v1), nil}, {string(v2[:15]), 0, nil}, {string(v2), len(v2), nil},
		{string(v2) + "\x16\x03\x01", len(v2), nil}, {string(v2[:len(v2)-1]), 0, nil},
		{"EHLO x\r\n", 0, errNoProxyHeader}, {"\x16\x03\x01\x02\x00", 0, errNoProxyHeader},
		{"PROXY " + strings.Repeat("x", 120), 0, errProxyTooLong}, {string(long), 0, errProxyTooLong},
	} {
		n, err := proxyHeaderLen([]byte(c.in))
		if n != c.want || !errors.Is(err, c.err) {
			t.Errorf("proxyHeaderLen(%q) = %d, %v; want %d, %v", c.in, n, err, c.want, c.err)
		}
	}
}

func TestParseProxyHeader(t *testing.T) {
	local := v2Header(t, "192.0.2.7:40000", "198.51.100.1:25")
	local[12] = 0x20 // version 2, LOCAL
	for _, c := range []struct {
		in    string
		local bool
		want  string
		bad   bool
	}{
		{in: "PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n", want: "192.0.2.7:40000"},
		{in: "PROXY TCP6 2001:db8::7 2001:db8::1 40000 25\r\n", want: "[2001:db8::7]:40000"},
		{in: string(v2Header(t, "[::ffff:192.0.2.9]:1", "[::ffff:198.51.100.1]:25")), want: "192.0.2.9:1"},
		{in: string(v2Header(t, "[2001:db8::7]:40000", "[2001:db8::1]:25")), want: "[2001:db8::7]:40000"},
		{in: "PROXY UNKNOWN\r\n", local: true},
		{in: string(local), local: true},
		{in: "PROXY TCP4 192.0.2.777 198.51.100.1 40000 25\r\n", bad: true},
		{in: "PROXY TCP4 192.0.2.7 198.51.100.1 40000 25 x\r\n", bad: true},
		{in: "PROXY TCP4 192.0.2.7 198.51.100.1 70000 25\r\n", bad: true},
		{in: "PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\n", bad: true},
	} {
		h, err := parseProxyHeader([]byte(c.in))
		switch {
		case c.bad && err == nil:
			t.Errorf("parseProxyHeader(%q) = %+v, want an error", c.in, h)
		case c.bad:
		case err != nil:
			t.Errorf("parseProxyHeader(%q): %v", c.in, err)
		case h.local != c.local || !c.local && h.client.String() != c.want:
			t.Errorf("parseProxyHeader(%q) = %+v, want client %s local %v", c.in, h, c.want, c.local)
		}
	}
}

// tcpPair is a connected loopback pair: the server side as sslserver
// accepts it, and the client.
func tcpPair(t *testing.T) (srv *net.TCPConn, cli net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); cli.Close() })
	return c.(*net.TCPConn), cli
}

// TestReadProxyHeaderTakesNoMore: the header is consumed, and not a byte
// more, whether it came with the client's first bytes in one segment or
// in pieces; a header that never completes fails at the deadline, and a
// connection closed before its first byte reads as io.EOF.
func TestReadProxyHeaderTakesNoMore(t *testing.T) {
	hdr := v2Header(t, "192.0.2.7:40000", "198.51.100.1:25")
	for _, pieces := range [][]string{
		{string(hdr) + "EHLO x\r\n"},
		{string(hdr[:5]), string(hdr[5:]) + "EHLO x\r\n"},
		{"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\nEHLO x\r\n"},
		{"PROXY TCP4 ", "192.0.2.7 198.51.100.1 40000 25\r\n", "EHLO x\r\n"},
	} {
		srv, cli := tcpPair(t)
		go writePieces(cli, pieces)
		deadline := time.Now().Add(5 * time.Second)
		srv.SetReadDeadline(deadline)
		h, err := readProxyHeader(srv, peekConn(srv), deadline)
		if err != nil || h.client.String() != "192.0.2.7:40000" {
			t.Fatalf("%q: %+v, %v", pieces, h, err)
		}
		rest := make([]byte, 8)
		if _, err := io.ReadFull(srv, rest); err != nil || string(rest) != "EHLO x\r\n" {
			t.Errorf("%q: after the header %q, %v; want the client's bytes", pieces, rest, err)
		}
	}
	srv, cli := tcpPair(t)
	cli.Write(hdr[:10])
	deadline := time.Now().Add(300 * time.Millisecond)
	srv.SetReadDeadline(deadline)
	if _, err := readProxyHeader(srv, peekConn(srv), deadline); !errors.Is(err, errProxyIncomplete) {
		t.Errorf("a partial header: %v, want errProxyIncomplete", err)
	}
	srv, cli = tcpPair(t)
	srv.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := readProxyHeader(srv, peekConn(srv), time.Now().Add(300*time.Millisecond)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("no byte at all: %v, want a deadline error", err)
	}
	cli.Close()
	srv.SetReadDeadline(time.Time{})
	if _, err := readProxyHeader(srv, peekConn(srv), time.Now().Add(time.Second)); !errors.Is(err, io.EOF) {
		t.Errorf("closed before the first byte: %v, want io.EOF", err)
	}
}

// TestReadProxyHeaderPeeksOnce: a header that came whole, as haproxy
// and the NLB send it, costs one peek: what the first one saw is framed,
// not peeked again.
func TestReadProxyHeaderPeeksOnce(t *testing.T) {
	r := bytes.NewReader([]byte("PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\nEHLO x\r\n"))
	peeks, peek := 0, bytesPeek(r)
	counting := func(buf []byte) (int, error) { peeks++; return peek(buf) }
	if h, err := readProxyHeader(r, counting, time.Now().Add(time.Second)); err != nil || h.client.String() != "192.0.2.7:40000" {
		t.Fatalf("%+v, %v", h, err)
	}
	if peeks != 1 {
		t.Errorf("%d peeks for a header that came whole, want 1", peeks)
	}
}

func writePieces(c net.Conn, pieces []string) {
	for _, p := range pieces {
		c.Write([]byte(p))
		time.Sleep(20 * time.Millisecond)
	}
}

// bytesPeek peeks at a bytes.Reader's unread bytes, as MSG_PEEK does.
func bytesPeek(r *bytes.Reader) peekFunc {
	return func(buf []byte) (int, error) {
		n, err := r.ReadAt(buf, r.Size()-int64(r.Len()))
		if err == io.EOF {
			err = nil
		}
		return n, err
	}
}

// FuzzProxyHeader runs our framing and parsing of PROXY headers over
// any bytes: no panic; an accepted header leaves every byte after it
// unread; the client it names, written back as a v2 header, parses to
// the same client.
func FuzzProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\nEHLO x\r\n"))
	f.Add([]byte("PROXY TCP6 2001:db8::7 2001:db8::1 40000 25\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(append(v2Header(f, "192.0.2.7:40000", "198.51.100.1:25"), "\x16\x03\x01"...))
	f.Add(v2Header(f, "[2001:db8::7]:40000", "[2001:db8::1]:25"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		h, err := readProxyHeader(r, bytesPeek(r), time.Now())
		if err != nil {
			return
		}
		n := len(b) - r.Len()
		if n > maxProxyHeader || n > maxProxyV1 && b[0] == 'P' {
			t.Fatalf("accepted a %d-byte header", n)
		}
		if m, err := proxyHeaderLen(b); err != nil || m != n {
			t.Fatalf("consumed %d bytes, framing says %d, %v", n, m, err)
		}
		if h.local {
			return
		}
		again, err := parseProxyHeader(v2Header(t, h.client.String(), "192.0.2.1:25"))
		if err != nil || again.client != h.client {
			t.Fatalf("client %v written back parses as %v, %v", h.client, again.client, err)
		}
	})
}
