package supervisor

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"

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
