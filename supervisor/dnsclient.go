package supervisor

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsWaits is how long each round of a lookup waits for an answer, as
// djbdns's resolver does: a round asks every server in turn, and a lost
// datagram is asked again after 1 s, not after one long timeout. The
// caller's deadline (dnsTimeout) ends the schedule early.
var dnsWaits = []time.Duration{1 * time.Second, 3 * time.Second, 11 * time.Second, 45 * time.Second}

// maxDNSReply is the largest UDP answer we read; we send no EDNS, so a
// server keeps to 512 bytes, and anything cut short (TC) is refused.
const maxDNSReply = 4096

// errNoName is an answer that names nothing: NXDOMAIN, no records, or a
// truncated reply.
var errNoName = errors.New("no such name")

// dnsClient asks DNS and nothing else, as djb's tools do: /etc/hosts is
// not read, so a client gets the name its DNS gives it. It asks the
// cache in $DNSCACHEIP, else the nameservers of /etc/resolv.conf (at most
// three), else 127.0.0.1. The wire format is golang.org/x/net's
// dnsmessage, whose parser is strict and fuzzed.
type dnsClient struct {
	servers []netip.AddrPort
	err     error           // a malformed DNSCACHEIP: every lookup fails
	waits   []time.Duration // the rounds' waits; nil: dnsWaits
}

// newResolver returns the DNS client for getenv's DNSCACHEIP.
func newResolver(getenv func(string) string) resolver {
	if v := getenv(dnsCacheVar); v != "" {
		addr, err := parseDNSCache(v)
		return &dnsClient{servers: []netip.AddrPort{addr}, err: err}
	}
	return &dnsClient{servers: resolvConfServers("/etc/resolv.conf")}
}

// resolvConfServers reads the nameserver lines of path.
func resolvConfServers(path string) []netip.AddrPort {
	var servers []netip.AddrPort
	f, err := os.Open(path)
	if err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() && len(servers) < 3 {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 2 && fields[0] == "nameserver" {
				if a, err := netip.ParseAddr(fields[1]); err == nil {
					servers = append(servers, netip.AddrPortFrom(a.Unmap().WithZone(""), 53))
				}
			}
		}
	}
	if len(servers) == 0 {
		servers = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:53")}
	}
	return servers
}

// LookupAddr returns the PTR names of addr.
func (c *dnsClient) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	rrs, err := c.lookup(ctx, reverseName(ip.Unmap()), dnsmessage.TypePTR)
	var names []string
	for _, rr := range rrs {
		if ptr, ok := rr.(*dnsmessage.PTRResource); ok {
			names = append(names, ptr.PTR.String())
		}
	}
	return names, err
}

// LookupNetIP returns host's addresses: A for "ip4", AAAA for "ip6".
func (c *dnsClient) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	typ := dnsmessage.TypeAAAA
	if network == "ip4" {
		typ = dnsmessage.TypeA
	}
	if !strings.HasSuffix(host, ".") {
		host += "."
	}
	rrs, err := c.lookup(ctx, host, typ)
	var addrs []netip.Addr
	for _, rr := range rrs {
		switch r := rr.(type) {
		case *dnsmessage.AResource:
			addrs = append(addrs, netip.AddrFrom4(r.A))
		case *dnsmessage.AAAAResource:
			addrs = append(addrs, netip.AddrFrom16(r.AAAA))
		}
	}
	return addrs, err
}

// reverseName is ip's name under in-addr.arpa or ip6.arpa.
func reverseName(ip netip.Addr) string {
	var b strings.Builder
	if ip.Is4() {
		a := ip.As4()
		fmt.Fprintf(&b, "%d.%d.%d.%d.in-addr.arpa.", a[3], a[2], a[1], a[0])
		return b.String()
	}
	a := ip.As16()
	const hex = "0123456789abcdef"
	for i := len(a) - 1; i >= 0; i-- {
		b.WriteByte(hex[a[i]&0xf])
		b.WriteByte('.')
		b.WriteByte(hex[a[i]>>4])
		b.WriteByte('.')
	}
	b.WriteString("ip6.arpa.")
	return b.String()
}

// lookup asks each server in turn, in rounds of growing waits, until one
// answers.
func (c *dnsClient) lookup(ctx context.Context, name string, typ dnsmessage.Type) ([]dnsmessage.ResourceBody, error) {
	if c.err != nil {
		return nil, c.err
	}
	q, err := dnsmessage.NewName(name)
	if err != nil {
		return nil, err
	}
	waits := c.waits
	if waits == nil {
		waits = dnsWaits
	}
	err = errNoName
	for _, wait := range waits {
		for _, s := range c.servers {
			rrs, qerr := exchange(ctx, s, q, typ, wait)
			if qerr == nil || errors.Is(qerr, errNoName) {
				return rrs, qerr
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			err = qerr
		}
	}
	return nil, err
}

// exchange sends one query over UDP and reads its answer, waiting at
// most wait.
func exchange(ctx context.Context, server netip.AddrPort, q dnsmessage.Name, typ dnsmessage.Type, wait time.Duration) ([]dnsmessage.ResourceBody, error) {
	var idb [2]byte
	rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	msg, err := buildQuery(id, q, typ)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", server.String())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	deadline := time.Now().Add(wait)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	if _, err := conn.Write(msg); err != nil {
		return nil, err
	}
	return readAnswer(conn, id, q, typ)
}

func buildQuery(id uint16, q dnsmessage.Name, typ dnsmessage.Type) ([]byte, error) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(dnsmessage.Question{Name: q, Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		return nil, err
	}
	return b.Finish()
}

// readAnswer reads datagrams until one answers our question (others,
// such as a forged or late reply, are ignored) or the deadline passes.
func readAnswer(conn net.Conn, id uint16, q dnsmessage.Name, typ dnsmessage.Type) ([]dnsmessage.ResourceBody, error) {
	buf := make([]byte, maxDNSReply)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil, err
		}
		rrs, ok, err := parseAnswer(buf[:n], id, q, typ)
		if ok {
			return rrs, err
		}
	}
}

// parseAnswer checks that p answers question q with id; ok is false for
// a datagram that is not our answer. It follows CNAMEs within the answer
// (RFC 2317 delegations use them for PTR).
func parseAnswer(p []byte, id uint16, q dnsmessage.Name, typ dnsmessage.Type) (rrs []dnsmessage.ResourceBody, ok bool, err error) {
	var m dnsmessage.Message
	if m.Unpack(p) != nil || m.ID != id || !m.Response || len(m.Questions) != 1 ||
		!sameName(m.Questions[0].Name, q) || m.Questions[0].Type != typ {
		return nil, false, nil
	}
	switch {
	case m.Truncated, m.RCode == dnsmessage.RCodeNameError:
		return nil, true, errNoName
	case m.RCode != dnsmessage.RCodeSuccess:
		return nil, true, fmt.Errorf("DNS server answered %v", m.RCode)
	}
	cur := q
	for _, a := range m.Answers {
		if !sameName(a.Header.Name, cur) {
			continue
		}
		if cn, isCNAME := a.Body.(*dnsmessage.CNAMEResource); isCNAME {
			cur = cn.CNAME
			continue
		}
		if a.Header.Type == typ {
			rrs = append(rrs, a.Body)
		}
	}
	if len(rrs) == 0 {
		return nil, true, errNoName
	}
	return rrs, true, nil
}

func sameName(a, b dnsmessage.Name) bool { return strings.EqualFold(a.String(), b.String()) }
