package supervisor

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func TestResolvConfServers(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(p, []byte("# c\nsearch example.org\nnameserver 192.0.2.53\nnameserver ::1\nnameserver bogus\nnameserver 192.0.2.54\nnameserver 192.0.2.55\n"), 0o644)
	want := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.53:53"), netip.MustParseAddrPort("[::1]:53"), netip.MustParseAddrPort("192.0.2.54:53")}
	if got := resolvConfServers(p); !reflect.DeepEqual(got, want) {
		t.Errorf("servers %v, want %v", got, want)
	}
	if got := resolvConfServers(filepath.Join(t.TempDir(), "none")); len(got) != 1 || got[0].String() != "127.0.0.1:53" {
		t.Errorf("no resolv.conf: %v, want 127.0.0.1:53", got)
	}
}

func TestReverseName(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":   "7.2.0.192.in-addr.arpa.",
		"2001:db8::1": "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
	} {
		if got := reverseName(netip.MustParseAddr(in)); got != want {
			t.Errorf("reverseName(%s) = %s, want %s", in, got, want)
		}
	}
}

// answer builds a reply to (id, q, typ) with the given answers.
func answer(t testing.TB, id uint16, q string, typ dnsmessage.Type, rcode dnsmessage.RCode, tc bool, rrs ...dnsmessage.Resource) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, Response: true, RCode: rcode, Truncated: tc})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(q), Type: typ, Class: dnsmessage.ClassINET})
	b.StartAnswers()
	for _, rr := range rrs {
		switch body := rr.Body.(type) {
		case *dnsmessage.PTRResource:
			b.PTRResource(rr.Header, *body)
		case *dnsmessage.CNAMEResource:
			b.CNAMEResource(rr.Header, *body)
		case *dnsmessage.AResource:
			b.AResource(rr.Header, *body)
		}
	}
	p, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func rr(name string, body dnsmessage.ResourceBody) dnsmessage.Resource {
	return dnsmessage.Resource{Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(name), Class: dnsmessage.ClassINET}, Body: body}
}

func TestParseAnswer(t *testing.T) {
	const q = "7.2.0.192.in-addr.arpa."
	qn := dnsmessage.MustNewName(q)
	ptr := func(n string) *dnsmessage.PTRResource { return &dnsmessage.PTRResource{PTR: dnsmessage.MustNewName(n)} }
	cases := []struct {
		name  string
		p     []byte
		ok    bool
		names []string
		err   bool
	}{
		{"plain", answer(t, 7, q, dnsmessage.TypePTR, 0, false, rr(q, ptr("mx.example.org."))), true, []string{"mx.example.org."}, false},
		{"RFC 2317 CNAME", answer(t, 7, q, dnsmessage.TypePTR, 0, false,
			rr(q, &dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName("7.0/25.2.0.192.in-addr.arpa.")}),
			rr("7.0/25.2.0.192.in-addr.arpa.", ptr("c.example.org."))), true, []string{"c.example.org."}, false},
		{"record for another name ignored", answer(t, 7, q, dnsmessage.TypePTR, 0, false, rr("8.2.0.192.in-addr.arpa.", ptr("x."))), true, nil, true},
		{"NXDOMAIN", answer(t, 7, q, dnsmessage.TypePTR, dnsmessage.RCodeNameError, false), true, nil, true},
		{"SERVFAIL", answer(t, 7, q, dnsmessage.TypePTR, dnsmessage.RCodeServerFailure, false), true, nil, true},
		{"truncated", answer(t, 7, q, dnsmessage.TypePTR, 0, true, rr(q, ptr("mx.example.org."))), true, nil, true},
		{"wrong id is not ours", answer(t, 8, q, dnsmessage.TypePTR, 0, false, rr(q, ptr("evil."))), false, nil, false},
		{"other question is not ours", answer(t, 7, "8.2.0.192.in-addr.arpa.", dnsmessage.TypePTR, 0, false), false, nil, false},
		{"other type is not ours", answer(t, 7, q, dnsmessage.TypeA, 0, false), false, nil, false},
		{"garbage is not ours", []byte("\x00\x07garbage"), false, nil, false},
	}
	for _, c := range cases {
		rrs, ok, err := parseAnswer(c.p, 7, qn, dnsmessage.TypePTR)
		var names []string
		for _, r := range rrs {
			names = append(names, r.(*dnsmessage.PTRResource).PTR.String())
		}
		if ok != c.ok || (err != nil) != c.err || !reflect.DeepEqual(names, c.names) {
			t.Errorf("%s: got %v %v %v, want %v %v err=%v", c.name, names, ok, err, c.names, c.ok, c.err)
		}
	}
}

func FuzzParseAnswer(f *testing.F) {
	const q = "7.2.0.192.in-addr.arpa."
	f.Add(answer(f, 7, q, dnsmessage.TypePTR, 0, false, rr(q, &dnsmessage.PTRResource{PTR: dnsmessage.MustNewName("mx.example.org.")})))
	f.Add([]byte{0, 7, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0})
	qn := dnsmessage.MustNewName(q)
	f.Fuzz(func(t *testing.T, p []byte) {
		rrs, ok, err := parseAnswer(p, 7, qn, dnsmessage.TypePTR)
		if !ok && (rrs != nil || err != nil) {
			t.Fatalf("a datagram that is not ours gave %v %v", rrs, err)
		}
		if err == nil && ok && len(rrs) == 0 {
			t.Fatal("an answer with no records and no error")
		}
	})
}

// lossyDNS answers every PTR question with one name, but drops the first
// drop queries it gets, as a lossy network would. It notes when each
// query arrived.
type lossyDNS struct {
	pc      net.PacketConn
	drop    int
	mu      sync.Mutex
	arrived []time.Time
}

func startLossyDNS(t *testing.T, drop int) *lossyDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &lossyDNS{pc: pc, drop: drop}
	done := make(chan struct{})
	go d.serve(t, done)
	t.Cleanup(func() { pc.Close(); <-done })
	return d
}

func (d *lossyDNS) serve(t *testing.T, done chan<- struct{}) {
	defer close(done)
	buf := make([]byte, 512)
	for {
		n, from, err := d.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		d.mu.Lock()
		d.arrived = append(d.arrived, time.Now())
		dropped := len(d.arrived) <= d.drop
		d.mu.Unlock()
		if !dropped {
			d.pc.WriteTo(ptrReply(t, buf[:n]), from)
		}
	}
}

// ptrReply answers query with the PTR name mx.example.org.
func ptrReply(t *testing.T, query []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		t.Error(err)
		return nil
	}
	q, err := p.Question()
	if err != nil {
		t.Error(err)
		return nil
	}
	return answer(t, h.ID, q.Name.String(), q.Type, 0, false,
		rr(q.Name.String(), &dnsmessage.PTRResource{PTR: dnsmessage.MustNewName("mx.example.org.")}))
}

func (d *lossyDNS) times() []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Time(nil), d.arrived...)
}

func (d *lossyDNS) client() *dnsClient {
	return &dnsClient{servers: []netip.AddrPort{netip.MustParseAddrPort(d.pc.LocalAddr().String())}}
}

// A lost datagram costs about a second, not a long timeout: with the
// production schedule, the answer to the second query arrives after
// dnsWaits[0].
func TestDNSLostQueryAskedAgainAfterOneSecond(t *testing.T) {
	d := startLossyDNS(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), dnsTimeout)
	defer cancel()
	start := time.Now()
	names, err := d.client().LookupAddr(ctx, "192.0.2.7")
	took := time.Since(start)
	if err != nil || len(names) != 1 || names[0] != "mx.example.org." {
		t.Fatalf("got %v, %v; want mx.example.org.", names, err)
	}
	if took < dnsWaits[0] || took > dnsWaits[0]+dnsWaits[1] {
		t.Errorf("the answer came after %v, want about %v (one lost datagram)", took, dnsWaits[0])
	}
	if n := len(d.times()); n != 2 {
		t.Errorf("the server got %d queries, want 2", n)
	}
}

// The rounds wait in turn as long as the schedule says (shortened here
// twentyfold), each round asking again.
func TestDNSRetrySchedule(t *testing.T) {
	waits := []time.Duration{50 * time.Millisecond, 150 * time.Millisecond, 550 * time.Millisecond, 2250 * time.Millisecond}
	d := startLossyDNS(t, 3)
	c := d.client()
	c.waits = waits
	names, err := c.LookupAddr(context.Background(), "192.0.2.7")
	if err != nil || len(names) != 1 {
		t.Fatalf("got %v, %v; want one name after three lost queries", names, err)
	}
	at := d.times()
	if len(at) != 4 {
		t.Fatalf("the server got %d queries, want 4", len(at))
	}
	for i := 1; i < len(at); i++ {
		gap, want := at[i].Sub(at[i-1]), waits[i-1]
		if gap < want-10*time.Millisecond || gap > want+400*time.Millisecond {
			t.Errorf("query %d came %v after the one before, want about %v", i+1, gap, want)
		}
	}
}

// The schedule ends with the caller's deadline: a silent server costs
// the deadline, not the sum of the waits.
func TestDNSScheduleEndsAtDeadline(t *testing.T) {
	d := startLossyDNS(t, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := d.client().LookupAddr(ctx, "192.0.2.7"); err == nil {
		t.Fatal("a silent server gave an answer")
	}
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Errorf("the lookup took %v with a deadline of 1.5 s", took)
	}
	if n := len(d.times()); n != 2 {
		t.Errorf("the server got %d queries within 1.5 s, want 2 (at 0 and 1 s)", n)
	}
}
