package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dnsTimeout bounds each DNS question: the host's addresses, and the
// -h and local name lookups.
const dnsTimeout = 26 * time.Second

// parsePort reads a port number or a service name from /etc/services.
func parsePort(p string) (uint16, error) {
	if n, err := strconv.ParseUint(p, 10, 16); err == nil {
		if n == 0 {
			return 0, fmt.Errorf("port %q is not a port a server listens on", p)
		}
		return uint16(n), nil
	}
	n, err := net.LookupPort("tcp", p)
	if err != nil || n <= 0 || n > 65535 {
		return 0, fmt.Errorf("unknown port %q", p)
	}
	return uint16(n), nil
}

// resolveHost returns the addresses to try, in order: a literal address
// as it is ("0" is 0.0.0.0, as in tcpclient), a name's addresses as the
// resolver orders them. family '4' or '6' keeps only that family.
func resolveHost(ctx context.Context, host string, family byte) ([]netip.Addr, error) {
	if host == "0" {
		host = "0.0.0.0"
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		ctx, cancel := context.WithTimeout(ctx, dnsTimeout)
		defer cancel()
		if addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host); err != nil {
			return nil, fmt.Errorf("unable to find IP address for %q: %w", host, err)
		}
	}
	kept := ofFamily(addrs, family)
	if len(kept) == 0 {
		return nil, fmt.Errorf("no IPv%c address for %q", family, host)
	}
	return kept, nil
}

func ofFamily(addrs []netip.Addr, family byte) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if family == 0 || family == '4' && a.Is4() || family == '6' && a.Is6() {
			out = append(out, a)
		}
	}
	return out
}

// dialFunc connects to one address within timeout.
type dialFunc func(remote netip.AddrPort, timeout time.Duration) (*net.TCPConn, error)

// connectAll tries the addresses as tcpclient's -T x+y does: each in turn
// with timeout[0], then those that timed out again with timeout[1] (no
// second pass when it is 0). It returns the first connection made, or the
// last error; each failure is logged at -v.
func connectAll(addrs []netip.Addr, port uint16, timeout [2]time.Duration, dial dialFunc, log *logger) (*net.TCPConn, error) {
	err := errors.New("no address to connect to")
	for pass, t := range timeout {
		if t <= 0 || len(addrs) == 0 {
			break
		}
		var timedOut []netip.Addr
		for _, a := range addrs {
			ap := netip.AddrPortFrom(a, port)
			c, e := dial(ap, t)
			if e == nil {
				return c, nil
			}
			err = fmt.Errorf("unable to connect to %s port %d: %s", a, port, describeDialError(e, t))
			log.Info("%v (pass %d)", err, pass+1)
			if isTimeout(e) {
				timedOut = append(timedOut, a)
			}
		}
		addrs = timedOut
	}
	return nil, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// describeDialError gives the reason alone ("connection refused", "timed
// out after 2s"), without Go's "dial tcp a:p:" prefix.
func describeDialError(err error, t time.Duration) string {
	var errno syscall.Errno
	switch {
	case isTimeout(err):
		return "timed out after " + t.String()
	case errors.As(err, &errno):
		return errno.Error()
	}
	return err.Error()
}

// netDialer makes real connections from the -i/-p local address.
type netDialer struct {
	local *net.TCPAddr
}

func (d netDialer) dial(remote netip.AddrPort, timeout time.Duration) (*net.TCPConn, error) {
	nd := net.Dialer{Timeout: timeout}
	if d.local != nil {
		nd.LocalAddr = d.local // never a typed nil in the interface
	}
	c, err := nd.Dial("tcp", remote.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// localAddr reads -i and -p.
func localAddr(ip, port string) (*net.TCPAddr, error) {
	if ip == "" && port == "" {
		return nil, nil
	}
	la := &net.TCPAddr{}
	if ip != "" {
		a, err := netip.ParseAddr(strings.TrimSpace(ip))
		if err != nil {
			return nil, fmt.Errorf("local address %q is not an IP address", ip)
		}
		la = net.TCPAddrFromAddrPort(netip.AddrPortFrom(a.Unmap(), 0))
	}
	if port != "" {
		p, err := parsePort(port)
		if err != nil {
			return nil, err
		}
		la.Port = int(p)
	}
	return la, nil
}

// connFile takes over c and returns its socket as a blocking file: under
// -y the program reads and writes it directly, as tcpclient's programs
// do, and the TLS process must find it as the program left it.
func connFile(c *net.TCPConn, noDelay bool) (*os.File, error) {
	defer c.Close()
	if err := c.SetNoDelay(noDelay); err != nil {
		return nil, fmt.Errorf("TCP_NODELAY: %w", err)
	}
	f, err := c.File()
	if err != nil {
		return nil, err
	}
	if err := setBlocking(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// setBlocking clears O_NONBLOCK, which Go sets on every socket it makes
// and which the copy from File shares.
func setBlocking(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetNonblock(int(fd), false) }); err != nil {
		return err
	}
	return serr
}
