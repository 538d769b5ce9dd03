package supervisor

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
	"golang.org/x/sys/unix"
)

// ProxyFromVar names the proxies whose connections begin with a PROXY
// protocol header: addresses and CIDR prefixes, comma-separated.
const ProxyFromVar = "PROXYFROM"

// Sizes of a PROXY header: a v1 line is at most 107 bytes with its CRLF;
// a v2 header is 16 bytes and the length its bytes 14-15 give. TLVs
// (AWS's VPC endpoint id, haproxy's unique id) fit well within
// maxProxyHeader; a longer header is refused rather than buffered.
const (
	maxProxyV1     = 107
	proxyV2Fixed   = 16
	maxProxyHeader = 1024
)

// Errors of the header's framing, before go-proxyproto parses it.
var (
	errNoProxyHeader   = errors.New("no PROXY header")
	errProxyTooLong    = errors.New("PROXY header too long")
	errProxyNoAddress  = errors.New("PROXY header without a TCP address")
	errProxyIncomplete = errors.New("PROXY header incomplete")
)

// proxyTrust is PROXYFROM parsed: the prefixes whose connections must
// start with a header. Empty: no PROXY protocol at all.
type proxyTrust []netip.Prefix

// parseProxyFrom reads PROXYFROM: "192.0.2.7,10.0.0.0/8,2001:db8::/32".
// An empty element or an address that does not parse is an error, so a
// typo never silently trusts nobody (or everybody).
func parseProxyFrom(v string) (proxyTrust, error) {
	if v == "" {
		return nil, nil
	}
	var t proxyTrust
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		p, err := parseTrusted(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an address or CIDR prefix", ProxyFromVar, s)
		}
		t = append(t, p)
	}
	return t, nil
}

func parseTrusted(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Zone() != "" {
			return netip.Prefix{}, errors.New("bad prefix")
		}
		return netip.PrefixFrom(p.Addr().Unmap(), unmappedBits(p)).Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, errors.New("bad address")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// unmappedBits turns ::ffff:10.0.0.0/104 into the /8 it means for the
// unmapped IPv4 addresses connections are compared as.
func unmappedBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(p.Bits()-96, 0)
	}
	return p.Bits()
}

// trusts reports whether a connection from a must start with a header.
func (t proxyTrust) trusts(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// proxyHeaderLen frames the header at the start of b: its length once b
// holds all of it, 0 while more bytes are needed, or an error when b
// cannot start a header or the header would exceed maxProxyHeader.
func proxyHeaderLen(b []byte) (int, error) {
	if !couldStart(b, proxyproto.SIGV1) && !couldStart(b, proxyproto.SIGV2) {
		return 0, errNoProxyHeader
	}
	if bytes.HasPrefix(b, proxyproto.SIGV1) {
		return proxyV1Len(b)
	}
	if len(b) < proxyV2Fixed {
		return 0, nil
	}
	n := proxyV2Fixed + int(binary.BigEndian.Uint16(b[14:16]))
	if n > maxProxyHeader {
		return 0, fmt.Errorf("%w: %d bytes", errProxyTooLong, n)
	}
	if len(b) < n {
		return 0, nil
	}
	return n, nil
}

// couldStart: b is a prefix of sig, or sig a prefix of b.
func couldStart(b, sig []byte) bool {
	n := min(len(b), len(sig))
	return bytes.Equal(b[:n], sig[:n])
}

func proxyV1Len(b []byte) (int, error) {
	if i := bytes.Index(b[:min(len(b), maxProxyV1)], []byte("\r\n")); i >= 0 {
		return i + 2, nil
	}
	if len(b) >= maxProxyV1 {
		return 0, fmt.Errorf("%w: no CRLF in %d bytes", errProxyTooLong, maxProxyV1)
	}
	return 0, nil
}

// proxyHeader is what sslserver takes from a header.
type proxyHeader struct {
	local  bool           // LOCAL (or v1 UNKNOWN): the proxy's own connection, a health check
	client netip.AddrPort // the client the proxy serves
}

// parseProxyHeader parses exactly one framed header (proxyHeaderLen's
// bytes) with go-proxyproto and refuses any byte it leaves over. A
// PROXY command must carry a TCP source address, IPv4 or IPv6.
func parseProxyHeader(b []byte) (proxyHeader, error) {
	r := bytes.NewReader(b)
	br := bufio.NewReaderSize(r, max(len(b), 16))
	h, err := proxyproto.Read(br)
	if err != nil {
		return proxyHeader{}, err
	}
	if br.Buffered() != 0 || r.Len() != 0 {
		return proxyHeader{}, fmt.Errorf("%d bytes after the PROXY header", br.Buffered()+r.Len())
	}
	if h.Command.IsLocal() {
		return proxyHeader{local: true}, nil
	}
	src, ok := h.SourceAddr.(*net.TCPAddr)
	if !ok || !h.TransportProtocol.IsStream() || h.TransportProtocol.IsUnix() {
		return proxyHeader{}, errProxyNoAddress
	}
	a, ok := netip.AddrFromSlice(src.IP)
	if !ok {
		return proxyHeader{}, errProxyNoAddress
	}
	return proxyHeader{client: netip.AddrPortFrom(a.Unmap(), uint16(src.Port))}, nil
}

// peekFunc returns what the socket has received so far without
// consuming it; a waiting read honours the connection's deadline.
type peekFunc func(buf []byte) (int, error)

// readProxyHeader takes the header off a connection from a trusted proxy
// and nothing more: it peeks until the header is complete (or the
// deadline passes, or the bytes cannot be a header), parses the peeked
// bytes, and only then reads exactly the header's length, so what the
// client sent after it is left on the socket for the worker or the
// program. A sender must send the header at once, so the loop rarely
// runs twice; between peeks it sleeps rather than spin on bytes already
// there.
func readProxyHeader(c io.Reader, peek peekFunc, deadline time.Time) (proxyHeader, error) {
	buf := make([]byte, maxProxyHeader)
	got, err := peek(buf)
	if err != nil || got == 0 {
		return proxyHeader{}, errNoBytes(err)
	}
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		n, err := proxyHeaderLen(buf[:got])
		if err != nil {
			return proxyHeader{}, err
		}
		if n > 0 {
			return consumeProxyHeader(c, buf[:n])
		}
		if time.Now().Add(wait).After(deadline) {
			return proxyHeader{}, fmt.Errorf("%w: %d bytes", errProxyIncomplete, got)
		}
		time.Sleep(wait)
		if got, err = peek(buf); err != nil {
			return proxyHeader{}, err
		}
		if got == 0 {
			return proxyHeader{}, errProxyIncomplete
		}
	}
}

// errNoBytes: a connection closed (or timed out) before its first byte.
// A plain TCP health check connects and closes (or resets) like that,
// so io.EOF tells the caller to close quietly.
func errNoBytes(err error) error {
	if err == nil || errors.Is(err, unix.ECONNRESET) {
		return io.EOF
	}
	return err
}

// consumeProxyHeader parses the peeked header and reads its bytes off
// the connection; they are already received, so the read does not wait.
func consumeProxyHeader(c io.Reader, peeked []byte) (proxyHeader, error) {
	h, err := parseProxyHeader(peeked)
	if err != nil {
		return proxyHeader{}, err
	}
	read := make([]byte, len(peeked))
	if _, err := io.ReadFull(c, read); err != nil {
		return proxyHeader{}, err
	}
	if !bytes.Equal(read, peeked) {
		return proxyHeader{}, errors.New("PROXY header changed between peek and read")
	}
	return h, nil
}

// peekConn peeks at a TCP connection's received bytes with MSG_PEEK,
// waiting (under the read deadline) when there are none yet.
func peekConn(c *net.TCPConn) peekFunc {
	return func(buf []byte) (int, error) {
		rc, err := c.SyscallConn()
		if err != nil {
			return 0, err
		}
		var n int
		var perr error
		err = rc.Read(func(fd uintptr) bool {
			n, _, perr = unix.Recvfrom(int(fd), buf, unix.MSG_PEEK)
			return perr != unix.EAGAIN
		})
		if err != nil {
			return 0, err
		}
		return n, perr
	}
}

// takeProxyHeader reads the PROXY header of a connection from a trusted
// proxy, within -T, before anything else looks at the connection, and
// makes the client it names the session's remote end; the proxy's
// address becomes PROXYREMOTEIP. Connections from other addresses are
// direct: their bytes are never parsed as a header. False drops the
// connection: quietly for a health check (LOCAL, v1 UNKNOWN, a header
// that names the proxy's own connection, or a close before the first
// byte), with a warning for a missing or malformed header.
func (ss *session) takeProxyHeader() bool {
	s := ss.srv
	if !s.proxies.trusts(ss.ep.RemoteIP) {
		return true
	}
	deadline := time.Now().Add(s.opt.Handshake)
	ss.conn.SetReadDeadline(deadline)
	h, err := readProxyHeader(ss.conn, peekConn(ss.conn), deadline)
	ss.conn.SetReadDeadline(time.Time{})
	switch {
	case errors.Is(err, io.EOF):
		return false
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.log.Warning("dropping connection from %s, no PROXY header within %v", ss.ep.RemoteIP, s.opt.Handshake)
		return false
	case err != nil:
		s.log.Warning("dropping connection from %s, bad PROXY header: %v", ss.ep.RemoteIP, err)
		return false
	case h.local, h.client == netip.AddrPortFrom(ss.ep.RemoteIP, ss.ep.RemotePort):
		// A header naming the very connection it came on is the proxy's
		// own: v1 has no LOCAL, so haproxy's v1 health checks look so.
		return false
	}
	ss.ep.ProxyIP = ss.ep.RemoteIP
	ss.ep.RemoteIP, ss.ep.RemotePort = h.client.Addr(), h.client.Port()
	return true
}
