package supervisor

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// dnsCacheVar names the DNS cache to ask, as in djb's tools. We also
// accept IP:port (and [IPv6]:port) so tests can run a cache of their own
// on a high port.
const dnsCacheVar = "DNSCACHEIP"

// dnsTimeout bounds each connection's DNS work, the remote name with its
// paranoid check in one budget and the local name in another (they run
// at the same time). It is fixed, not -t, because -t is IDENT's timeout
// in ucspi-tcp. A session holds its -c slot while its lookups run, so
// with a dead resolver this bound is what each connection costs: 10 s
// (rounds of 1, 3 and the 6 s left) asks three times, where one lost
// datagram already costs a second only, and keeps the -c 40 default
// admitting 4 clients a second even then.
const dnsTimeout = 10 * time.Second

// maxNameLen is the longest name in presentation form, without the
// root's dot.
const maxNameLen = 253

// resolver is what identify asks of DNS; dnsClient has it.
type resolver interface {
	LookupAddr(ctx context.Context, addr string) ([]string, error)
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// parseDNSCache reads DNSCACHEIP: an IP address (port 53), or IP:port.
func parseDNSCache(v string) (netip.AddrPort, error) {
	s := strings.TrimSpace(v)
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a.Unmap(), 53), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("%s=%q is not an IP address or IP:port", dnsCacheVar, v)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// remoteName is ip's name from its PTR record, "" when there is none or
// it is unusable. With paranoid, the name is kept only when its own
// addresses include ip, so a client cannot claim a name by controlling
// its reverse zone alone.
func remoteName(ctx context.Context, r resolver, ip netip.Addr, paranoid bool) string {
	name := ptrName(ctx, r, ip)
	if name == "" || !paranoid || forwardMatches(ctx, r, name, ip) {
		return name
	}
	return ""
}

// ptrName takes the first PTR name, as tcpserver does. An answer with
// any malformed name is refused as a whole.
func ptrName(ctx context.Context, r resolver, ip netip.Addr) string {
	names, err := r.LookupAddr(ctx, plainAddr(ip).String())
	if err != nil || len(names) == 0 {
		return ""
	}
	name, ok := cleanName(names[0])
	if !ok {
		return ""
	}
	return name
}

// forwardMatches asks for name's addresses of ip's family (A for IPv4,
// AAAA for IPv6). The name is made absolute so no search domain applies.
func forwardMatches(ctx context.Context, r resolver, name string, ip netip.Addr) bool {
	ip = plainAddr(ip)
	network := "ip6"
	if ip.Is4() {
		network = "ip4"
	}
	addrs, err := r.LookupNetIP(ctx, network, name+".")
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if plainAddr(a) == ip {
			return true
		}
	}
	return false
}

// plainAddr is a with an IPv4-mapped address as IPv4 and without a zone:
// the form DNS knows.
func plainAddr(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

// cleanName lower-cases a name from DNS and drops the root's dot. Names
// come from whoever runs the client's reverse zone, so anything but
// letters, digits, '.', '-' and '_' is refused: no space, colon (the log
// line's separator) or control character can reach a log line, a rule
// lookup or the environment. A name that reads as an IP address is
// refused too, so it cannot pass for one in the logs.
func cleanName(n string) (string, bool) {
	n = strings.ToLower(strings.TrimSuffix(n, "."))
	if n == "" || len(n) > maxNameLen || n[0] == '.' || strings.Contains(n, "..") {
		return "", false
	}
	for i := 0; i < len(n); i++ {
		if !nameByte(n[i]) {
			return "", false
		}
	}
	if _, err := netip.ParseAddr(n); err == nil {
		return "", false
	}
	return n, true
}

func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_'
}

// Local names are cached: a server answers on few addresses, and asking
// DNS the same question for every connection only adds load and delay.
// Entries expire so that a changed PTR is seen, a failure sooner.
const (
	localNameTTL  = 10 * time.Minute
	localMissTTL  = time.Minute
	maxLocalNames = 256 // a bound for hosts with very many addresses
)

type cachedName struct {
	name    string
	expires time.Time
}

// nameCache maps local addresses to their names.
type nameCache struct {
	mu      sync.Mutex
	entries map[netip.Addr]cachedName
}

func (c *nameCache) get(ip netip.Addr, now time.Time) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[ip]
	if !ok || now.After(e.expires) {
		return "", false
	}
	return e.name, true
}

func (c *nameCache) put(ip netip.Addr, name string, now time.Time) {
	ttl := localNameTTL
	if name == "" {
		ttl = localMissTTL
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxLocalNames {
		c.entries = make(map[netip.Addr]cachedName)
	}
	c.entries[ip] = cachedName{name: name, expires: now.Add(ttl)}
}
