package supervisor

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	reuseport "github.com/kavu/go_reuseport"
	"golang.org/x/sys/unix"
)

// Listen binds host and port as sslserver's command line names them:
// "0" is every IPv4 address, "::" or ":0" the IPv6 any-address with IPv4
// mapped in (dual stack), a literal address binds that address, a name
// is resolved (prefer picks IPv4 or IPv6 first). The socket is built
// here rather than by net.Listen so -b sets the backlog and dual stack
// does not depend on the bindv6only sysctl.
func Listen(o *Options) (*net.TCPListener, error) {
	port, err := resolvePort(o.Port)
	if err != nil {
		return nil, err
	}
	addr, dual, err := resolveHost(o.Host, o.Prefer)
	if err != nil {
		return nil, err
	}
	if addr.Is6() && o.Interface != "" {
		addr = addr.WithZone(o.Interface)
	}
	if o.ReusePort {
		return reuseListen(netip.AddrPortFrom(addr, port), dual, o.Backlog)
	}
	return bindListen(netip.AddrPortFrom(addr, port), dual, o.Backlog)
}

// ReusePortVar set to 1 binds with SO_REUSEPORT, so that a new sslserver
// can bind the port while this one still serves, and take over.
const ReusePortVar = "REUSEPORT"

// parseReusePort reads REUSEPORT: "1" on, "" or "0" off.
func parseReusePort(v string) (bool, error) {
	switch v {
	case "", "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, fmt.Errorf("%s=%q: want 1 or 0", ReusePortVar, v)
}

// migrateSysctl makes the kernel (Linux 5.14 and later) hand the
// connections waiting in a closing listener's accept queue to another
// socket of its SO_REUSEPORT group; without it they are reset.
const migrateSysctl = "/proc/sys/net/ipv4/tcp_migrate_req"

// warnReusePort says at start what REUSEPORT=1 will not do: hand over
// the queued connections without tcp_migrate_req, or anything at all
// under socket activation, where the .socket unit makes the socket.
func warnReusePort(o *Options, activated bool, log *Log) {
	switch {
	case !o.ReusePort:
	case activated:
		log.Warning("%s=1 ignored: the socket is inherited (socket activation); set ReusePort= in the .socket unit", ReusePortVar)
	case !migrating():
		log.Warning("%s=1 but net.ipv4.tcp_migrate_req is not 1: clients waiting in the accept queue when this sslserver stops will be reset, not handed to the next one", ReusePortVar)
	}
}

func migrating() bool {
	b, err := os.ReadFile(migrateSysctl)
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// reuseListen binds through go_reuseport, which sets SO_REUSEADDR and
// SO_REUSEPORT and listens with the kernel's largest backlog; listening
// again sets -b's. go_reuseport cannot choose dual stack: an IPv6
// any-address is dual only while net.ipv6.bindv6only is 0, which is
// checked rather than assumed.
func reuseListen(ap netip.AddrPort, dual bool, backlog int) (*net.TCPListener, error) {
	network := "tcp4"
	if ap.Addr().Is6() {
		network = "tcp6"
	}
	l, err := reuseport.Listen(network, ap.String())
	if err != nil {
		return nil, fmt.Errorf("unable to bind %v with SO_REUSEPORT: %w", ap, err)
	}
	tl := l.(*net.TCPListener)
	if err := reuseSettings(tl, dual, backlog); err != nil {
		tl.Close()
		return nil, err
	}
	return tl, nil
}

func reuseSettings(l *net.TCPListener, dual bool, backlog int) error {
	rc, err := l.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if serr = unix.Listen(int(fd), backlog); serr != nil {
			serr = fmt.Errorf("unable to listen: %w", serr)
			return
		}
		if dual {
			serr = checkDualStack(int(fd))
		}
	})
	if err != nil {
		return err
	}
	return serr
}

func checkDualStack(fd int) error {
	v6only, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
	if err != nil {
		return fmt.Errorf("unable to read IPV6_V6ONLY: %w", err)
	}
	if v6only != 0 {
		return fmt.Errorf("%s=1 binds \"::\" as IPv6 only while net.ipv6.bindv6only is 1: bind 0 and :: in two sslservers, or set the sysctl to 0", ReusePortVar)
	}
	return nil
}

func resolvePort(p string) (uint16, error) {
	if p == "" {
		return 0, fmt.Errorf("empty port")
	}
	if n, err := strconv.ParseUint(p, 10, 16); err == nil {
		return uint16(n), nil
	}
	n, err := net.LookupPort("tcp", p)
	if err != nil {
		return 0, fmt.Errorf("unable to figure out port number for %q: %w", p, err)
	}
	return uint16(n), nil
}

func resolveHost(h string, prefer byte) (addr netip.Addr, dual bool, err error) {
	switch h {
	case "0", "0.0.0.0":
		return netip.IPv4Unspecified(), false, nil
	case "::", ":0":
		return netip.IPv6Unspecified(), true, nil
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap(), false, nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip", h)
	if err != nil || len(addrs) == 0 {
		return netip.Addr{}, false, fmt.Errorf("unable to figure out IP address for %q: %v", h, err)
	}
	return preferred(addrs, prefer), false, nil
}

func preferred(addrs []netip.Addr, prefer byte) netip.Addr {
	for _, a := range addrs {
		a = a.Unmap()
		if prefer == '4' && a.Is4() || prefer == '6' && a.Is6() {
			return a
		}
	}
	return addrs[0].Unmap()
}

func bindListen(ap netip.AddrPort, dual bool, backlog int) (*net.TCPListener, error) {
	family, sa, err := sockaddr(ap)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_TCP)
	if err != nil {
		return nil, fmt.Errorf("unable to create socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	defer f.Close()
	if err := prepare(fd, family, dual); err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("unable to bind %v: %w", ap, err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return nil, fmt.Errorf("unable to listen: %w", err)
	}
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("unable to listen: %w", err)
	}
	return l.(*net.TCPListener), nil
}

func prepare(fd, family int, dual bool) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fmt.Errorf("unable to set SO_REUSEADDR: %w", err)
	}
	if family != unix.AF_INET6 {
		return nil
	}
	v6only := 1
	if dual {
		v6only = 0
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
		return fmt.Errorf("unable to set IPV6_V6ONLY: %w", err)
	}
	return nil
}

func sockaddr(ap netip.AddrPort) (int, unix.Sockaddr, error) {
	a := ap.Addr()
	if a.Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}, nil
	}
	sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
	if z := a.Zone(); z != "" {
		ifi, err := net.InterfaceByName(z)
		if err != nil {
			return 0, nil, fmt.Errorf("unable to find interface %q: %w", z, err)
		}
		sa.ZoneId = uint32(ifi.Index)
	}
	return unix.AF_INET6, sa, nil
}
