package supervisor

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/env"
)

// The DNS tests use documentation addresses (192.0.2.0/24, 2001:db8::/32),
// which no /etc/hosts names, so every answer comes from fakeDNS.

const (
	dnsTypeA    = 1
	dnsTypePTR  = 12
	dnsTypeAAAA = 28
)

// dnsQuestion is what a query asked: a lower-case absolute name and a type.
type dnsQuestion struct {
	name  string
	qtype uint16
}

// fakeDNS is a DNS cache of the test's own on 127.0.0.1 (UDP), answering
// from a map and NXDOMAIN otherwise, or never when silent. It records
// every question.
type fakeDNS struct {
	pc      net.PacketConn
	silent  bool
	mu      sync.Mutex
	records map[dnsQuestion][][]byte // rdata
	asked   []dnsQuestion
}

func startFakeDNS(t *testing.T, silent bool) *fakeDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDNS{pc: pc, silent: silent, records: map[dnsQuestion][][]byte{}}
	done := make(chan struct{})
	go d.serve(done)
	t.Cleanup(func() { pc.Close(); <-done })
	return d
}

func (d *fakeDNS) addr() string { return d.pc.LocalAddr().String() }

func (d *fakeDNS) ptr(ip, name string) {
	d.add(dnsQuestion{arpaName(netip.MustParseAddr(ip)), dnsTypePTR}, wireName(name))
}

func (d *fakeDNS) a(name, ip string) {
	a := netip.MustParseAddr(ip)
	qtype := uint16(dnsTypeAAAA)
	if a.Is4() {
		qtype = dnsTypeA
	}
	d.add(dnsQuestion{strings.ToLower(name), qtype}, a.AsSlice())
}

func (d *fakeDNS) add(q dnsQuestion, rdata []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.records[q] = append(d.records[q], rdata)
}

func (d *fakeDNS) questions() []dnsQuestion {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]dnsQuestion(nil), d.asked...)
}

func (d *fakeDNS) askedFor(qtype uint16) bool {
	for _, q := range d.questions() {
		if q.qtype == qtype {
			return true
		}
	}
	return false
}

func (d *fakeDNS) serve(done chan<- struct{}) {
	defer close(done)
	buf := make([]byte, 1500)
	for {
		n, from, err := d.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp := d.answer(buf[:n]); resp != nil {
			d.pc.WriteTo(resp, from)
		}
	}
}

// answer parses a query's header and single question and builds the
// response; nil means no answer (silent, or not a query we understand).
func (d *fakeDNS) answer(query []byte) []byte {
	q, end, ok := parseDNSQuery(query)
	if !ok {
		return nil
	}
	d.mu.Lock()
	d.asked = append(d.asked, q)
	rdatas, found := d.records[q]
	d.mu.Unlock()
	if d.silent {
		return nil
	}
	rcode := byte(0)
	if !found && !d.nameExists(q.name) {
		rcode = 3 // NXDOMAIN
	}
	resp := append([]byte(nil), query[:2]...)           // id
	resp = append(resp, 0x84|query[2]&0x01, 0x80|rcode) // QR AA RD; RA rcode
	resp = binary.BigEndian.AppendUint16(resp, 1)
	resp = binary.BigEndian.AppendUint16(resp, uint16(len(rdatas)))
	resp = append(resp, 0, 0, 0, 0) // no authority, no additional
	resp = append(resp, query[12:end]...)
	for _, rd := range rdatas {
		resp = append(resp, 0xc0, 12) // the question's name
		resp = binary.BigEndian.AppendUint16(resp, q.qtype)
		resp = append(resp, 0, 1, 0, 0, 0, 60) // IN, TTL 60
		resp = binary.BigEndian.AppendUint16(resp, uint16(len(rd)))
		resp = append(resp, rd...)
	}
	return resp
}

// nameExists: a name with records of another type gets an empty answer,
// not NXDOMAIN.
func (d *fakeDNS) nameExists(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for q := range d.records {
		if q.name == name {
			return true
		}
	}
	return false
}

func parseDNSQuery(m []byte) (dnsQuestion, int, bool) {
	if len(m) < 12 || m[2]&0x80 != 0 || binary.BigEndian.Uint16(m[4:]) != 1 {
		return dnsQuestion{}, 0, false
	}
	var labels []string
	i := 12
	for i < len(m) && m[i] != 0 {
		n := int(m[i])
		if n > 63 || i+1+n > len(m) {
			return dnsQuestion{}, 0, false
		}
		labels = append(labels, strings.ToLower(string(m[i+1:i+1+n])))
		i += 1 + n
	}
	if i+5 > len(m) {
		return dnsQuestion{}, 0, false
	}
	q := dnsQuestion{strings.Join(labels, ".") + ".", binary.BigEndian.Uint16(m[i+1:])}
	return q, i + 5, true
}

// wireName encodes name as DNS labels, byte for byte, so a test can put
// anything into a label.
func wireName(name string) []byte {
	var b []byte
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func arpaName(a netip.Addr) string {
	b := a.AsSlice()
	var parts []string
	for i := len(b) - 1; i >= 0; i-- {
		if a.Is4() {
			parts = append(parts, fmt.Sprint(b[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%x.%x", b[i]&0xf, b[i]>>4))
		}
	}
	if a.Is4() {
		return strings.Join(parts, ".") + ".in-addr.arpa."
	}
	return strings.Join(parts, ".") + ".ip6.arpa."
}

// useDNS makes identify ask d (through DNSCACHEIP, as in production) and
// returns the identity, whose DNS timeout a test may shorten.
func useDNS(t *testing.T, d *fakeDNS) *identity {
	t.Helper()
	id := newIdentity(func(k string) string {
		if k == dnsCacheVar {
			return d.addr()
		}
		return ""
	})
	identities.Store(id)
	t.Cleanup(func() { identities.Store(nil) })
	return id
}

// testServer is a Server with the options of args (flags only) and a
// log in buf.
func testServer(t *testing.T, buf *bytes.Buffer, flags ...string) *Server {
	t.Helper()
	opt, err := ParseArgs(append(flags, "0", "0", "true"))
	if err != nil {
		t.Fatal(err)
	}
	return &Server{opt: opt, log: NewLog(buf, "sslserver", Errors, false)}
}

func endpointsOf(local, remote string) env.Endpoints {
	l, r := netip.MustParseAddrPort(local), netip.MustParseAddrPort(remote)
	return env.Endpoints{LocalIP: l.Addr(), LocalPort: l.Port(), RemoteIP: r.Addr(), RemotePort: r.Port()}
}

func identifyWith(s *Server, ep env.Endpoints) env.Endpoints {
	s.identify(context.Background(), &ep)
	return ep
}

func TestIdentityPTR(t *testing.T) {
	d := startFakeDNS(t, false)
	useDNS(t, d)
	d.ptr("192.0.2.7", "Client.Example.NET.")
	d.ptr("192.0.2.1", "mx.example.org.")
	var log bytes.Buffer
	got := identifyWith(testServer(t, &log), endpointsOf("192.0.2.1:465", "192.0.2.7:50123"))
	if got.RemoteHost != "client.example.net" || got.LocalHost != "mx.example.org" || got.RemoteInfo != "" {
		t.Errorf("got local %q remote %q info %q, want mx.example.org, client.example.net and none", got.LocalHost, got.RemoteHost, got.RemoteInfo)
	}
	if d.askedFor(dnsTypeA) || d.askedFor(dnsTypeAAAA) {
		t.Errorf("without -p no forward lookup is made; asked %v", d.questions())
	}
	if log.Len() != 0 {
		t.Errorf("unexpected log: %q", log.String())
	}
}

func TestIdentityPTRNotFound(t *testing.T) {
	d := startFakeDNS(t, false)
	useDNS(t, d)
	got := identifyWith(testServer(t, new(bytes.Buffer)), endpointsOf("192.0.2.1:465", "192.0.2.8:50123"))
	if got.RemoteHost != "" || got.LocalHost != "" {
		t.Errorf("got local %q remote %q, want both unset", got.LocalHost, got.RemoteHost)
	}
	want := []dnsQuestion{{"8.2.0.192.in-addr.arpa.", dnsTypePTR}, {"1.2.0.192.in-addr.arpa.", dnsTypePTR}}
	for _, q := range want {
		if !contains(d.questions(), q) {
			t.Errorf("DNS was not asked %v; asked %v", q, d.questions())
		}
	}
}

func contains(qs []dnsQuestion, q dnsQuestion) bool {
	for _, x := range qs {
		if x == q {
			return true
		}
	}
	return false
}

func TestIdentityParanoid(t *testing.T) {
	cases := []struct {
		name, remote string
		setup        func(d *fakeDNS)
		want         string
		forward      uint16 // the type of the forward question
	}{
		{"match", "192.0.2.7", func(d *fakeDNS) {
			d.ptr("192.0.2.7", "client.example.net.")
			d.a("client.example.net.", "192.0.2.99")
			d.a("client.example.net.", "192.0.2.7")
		}, "client.example.net", dnsTypeA},
		{"mismatch", "192.0.2.7", func(d *fakeDNS) {
			d.ptr("192.0.2.7", "victim.example.com.")
			d.a("victim.example.com.", "198.51.100.1")
		}, "", dnsTypeA},
		{"no forward name", "192.0.2.7", func(d *fakeDNS) {
			d.ptr("192.0.2.7", "nowhere.example.net.")
		}, "", dnsTypeA},
		{"only the other family", "192.0.2.7", func(d *fakeDNS) {
			d.ptr("192.0.2.7", "six.example.net.")
			d.a("six.example.net.", "2001:db8::7")
		}, "", dnsTypeA},
		{"IPv6", "2001:db8::7", func(d *fakeDNS) {
			d.ptr("2001:db8::7", "six.example.net.")
			d.a("six.example.net.", "2001:db8::7")
		}, "six.example.net", dnsTypeAAAA},
		{"IPv4-mapped peer is IPv4", "::ffff:192.0.2.7", func(d *fakeDNS) {
			d.ptr("192.0.2.7", "client.example.net.")
			d.a("client.example.net.", "192.0.2.7")
		}, "client.example.net", dnsTypeA},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := startFakeDNS(t, false)
			useDNS(t, d)
			c.setup(d)
			ep := endpointsOf("[::ffff:192.0.2.1]:465", netip.AddrPortFrom(netip.MustParseAddr(c.remote), 50123).String())
			got := identifyWith(testServer(t, new(bytes.Buffer), "-p", "-l", "mx"), ep)
			if got.RemoteHost != c.want {
				t.Errorf("RemoteHost = %q, want %q (asked %v)", got.RemoteHost, c.want, d.questions())
			}
			if !d.askedFor(c.forward) {
				t.Errorf("no forward question of type %d; asked %v", c.forward, d.questions())
			}
		})
	}
}

func TestIdentityHostilePTR(t *testing.T) {
	for what, name := range map[string]string{
		"newline": "evil\nname.example.", "space": "evil name.example.", "colon": "evil:name.example.",
		"NUL": "evil\x00.example.", "escape": "evil\x1b[31m.example.", "non-ASCII": "évil.example.",
		"looks like an IP": "192.0.2.66.", "too long": strings.Repeat("a.", 130),
	} {
		t.Run(what, func(t *testing.T) {
			d := startFakeDNS(t, false)
			// An answer too long to parse is no answer: the lookup waits
			// for another until its bound.
			useDNS(t, d).dnsTimeout = time.Second
			d.ptr("192.0.2.7", name)
			d.a(name, "192.0.2.7")
			for _, flag := range []string{"-P", "-p"} {
				got := identifyWith(testServer(t, new(bytes.Buffer), flag, "-l0"), endpointsOf("192.0.2.1:465", "192.0.2.7:50123"))
				if got.RemoteHost != "" {
					t.Errorf("%s: RemoteHost = %q, want unset", flag, got.RemoteHost)
				}
			}
			if !d.askedFor(dnsTypePTR) {
				t.Errorf("DNS was never asked; asked %v", d.questions())
			}
		})
	}
}

// A silent DNS server costs the DNS bound, and each question that ran out
// of time is logged once at -v: the remote name and the local one.
func TestIdentityDNSTimeout(t *testing.T) {
	d := startFakeDNS(t, true)
	id := useDNS(t, d)
	id.dnsTimeout = 300 * time.Millisecond
	var log bytes.Buffer
	s := testServer(t, &log, "-p")
	s.log = NewLog(&log, "sslserver", Verbose, false)
	start := time.Now()
	got := identifyWith(s, endpointsOf("192.0.2.1:465", "192.0.2.7:50123"))
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("identify took %v against a DNS server that never answers; the bound is %v", took, id.dnsTimeout)
	}
	if got.RemoteHost != "" || got.LocalHost != "" {
		t.Errorf("got local %q remote %q, want both unset", got.LocalHost, got.RemoteHost)
	}
	if !d.askedFor(dnsTypePTR) {
		t.Error("the silent server was never asked")
	}
	want := "sslserver: DNS lookup for local address 192.0.2.1 timed out after 300ms\n" +
		"sslserver: DNS lookup for 192.0.2.7 timed out after 300ms\n"
	if log.String() != want {
		t.Errorf("log = %q, want %q", log.String(), want)
	}
}

// A session that ends while its lookups wait is no timeout: nothing is
// logged.
func TestIdentitySessionCancel(t *testing.T) {
	d := startFakeDNS(t, true)
	useDNS(t, d) // dnsTimeout stays 10 s: only the session's context can end this early
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	ep := endpointsOf("192.0.2.1:465", "192.0.2.7:50123")
	start := time.Now()
	var log bytes.Buffer
	s := testServer(t, &log, "-r")
	s.log = NewLog(&log, "sslserver", Verbose, false)
	s.identify(ctx, &ep)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("identify took %v after its context ended", took)
	}
	if log.Len() != 0 {
		t.Errorf("a lookup cut short by the session was logged: %q", log.String())
	}
}

func TestIdentityNoLookups(t *testing.T) {
	d := startFakeDNS(t, false)
	useDNS(t, d)
	d.ptr("192.0.2.7", "client.example.net.")
	d.ptr("192.0.2.1", "mx.example.org.")
	cases := []struct {
		flags     []string
		wantLocal string
	}{
		{[]string{"-H", "-R", "-l", "smtp.example.org"}, "smtp.example.org"},
		{[]string{"-H", "-p", "-l", "0"}, ""},
	}
	for _, c := range cases {
		got := identifyWith(testServer(t, new(bytes.Buffer), c.flags...), endpointsOf("192.0.2.1:465", "192.0.2.7:50123"))
		if got.LocalHost != c.wantLocal || got.RemoteHost != "" || got.RemoteInfo != "" {
			t.Errorf("%v: got local %q remote %q info %q, want local %q only", c.flags, got.LocalHost, got.RemoteHost, got.RemoteInfo, c.wantLocal)
		}
	}
	if q := d.questions(); len(q) != 0 {
		t.Errorf("DNS was asked %v", q)
	}
}

func TestIdentityLocalNameCached(t *testing.T) {
	d := startFakeDNS(t, false)
	useDNS(t, d)
	d.ptr("192.0.2.1", "mx.example.org.")
	s := testServer(t, new(bytes.Buffer), "-H")
	for _, remote := range []string{"192.0.2.7:1", "192.0.2.8:2", "[::ffff:192.0.2.9]:3"} {
		if got := identifyWith(s, endpointsOf("[::ffff:192.0.2.1]:465", remote)); got.LocalHost != "mx.example.org" {
			t.Errorf("LocalHost = %q, want mx.example.org", got.LocalHost)
		}
	}
	if q := d.questions(); len(q) != 1 {
		t.Errorf("want one PTR question for the local address, got %v", q)
	}
	identifyWith(s, endpointsOf("192.0.2.2:465", "192.0.2.7:1"))
	if q := d.questions(); len(q) != 2 {
		t.Errorf("another local address must be asked for; got %v", q)
	}
}

func TestIdentityNameCacheExpires(t *testing.T) {
	var c nameCache
	ip, now := netip.MustParseAddr("192.0.2.1"), time.Now()
	c.put(ip, "mx.example.org", now)
	if n, ok := c.get(ip, now.Add(localNameTTL-time.Second)); !ok || n != "mx.example.org" {
		t.Errorf("fresh entry: got %q, %v", n, ok)
	}
	if _, ok := c.get(ip, now.Add(localNameTTL+time.Second)); ok {
		t.Error("an entry older than localNameTTL was returned")
	}
	c.put(ip, "", now)
	if _, ok := c.get(ip, now.Add(localMissTTL+time.Second)); ok {
		t.Error("a miss older than localMissTTL was returned")
	}
	for i := range maxLocalNames + 1 {
		c.put(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), "x", now)
	}
	if len(c.entries) > maxLocalNames {
		t.Errorf("cache holds %d entries, bound is %d", len(c.entries), maxLocalNames)
	}
}

func TestIdentityBadDNSCache(t *testing.T) {
	id := newIdentity(func(k string) string {
		if k == dnsCacheVar {
			return "dns.example.net"
		}
		return ""
	})
	identities.Store(id)
	t.Cleanup(func() { identities.Store(nil) })
	var log bytes.Buffer
	s := testServer(t, &log)
	for range 2 {
		got := identifyWith(s, endpointsOf("192.0.2.1:465", "192.0.2.7:50123"))
		if got.RemoteHost != "" || got.LocalHost != "" {
			t.Errorf("got local %q remote %q from a resolver that cannot ask anyone", got.LocalHost, got.RemoteHost)
		}
	}
	want := `sslserver: warning: no DNS lookups: DNSCACHEIP="dns.example.net" is not an IP address or IP:port` + "\n"
	if log.String() != want {
		t.Errorf("log = %q, want once %q", log.String(), want)
	}
	_, err := id.res.LookupAddr(context.Background(), "192.0.2.7")
	if err == nil || !strings.Contains(err.Error(), "DNSCACHEIP") {
		t.Errorf("lookup error = %v, want one naming DNSCACHEIP", err)
	}
}
