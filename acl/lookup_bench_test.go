package acl_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucspi-tls/sslserver/acl"
)

// benchRules is a rules source the size of a busy mail server's
// tcp.smtp: a thousand single hosts, some networks, names and domains,
// and a default.
func benchRules() string {
	var b strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&b, "10.%d.%d.%d:allow,RELAYCLIENT=\"\"\n", i/250, i%250, i%7+1)
	}
	for i := range 50 {
		fmt.Fprintf(&b, "192.0.%d.0/24:deny\n", i)
		fmt.Fprintf(&b, "=mx%d.example.org:allow,NAME=\"mx%d\"\n", i, i)
		fmt.Fprintf(&b, "=.dom%d.example:allow,DOMAIN=\"%d\"\n", i, i)
	}
	b.WriteString("2001:db8::/32:allow,DOC=\"yes\"\n127.:allow,RELAYCLIENT=\"\"\n:allow,DEFAULT=\"1\"\n")
	return b.String()
}

func benchCDB(b *testing.B) []byte {
	b.Helper()
	rules, err := acl.ParseRules(strings.NewReader(benchRules()))
	if err != nil {
		b.Fatal(err)
	}
	records, err := acl.Compile(rules)
	if err != nil {
		b.Fatal(err)
	}
	data, err := acl.MakeCDB(records)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// benchQueries: a hit on the first key, a hit half-way down (CIDR), and
// misses that try every key before the default, for IPv4 with a name and
// IDENT info (the longest IPv4 list) and for IPv6 (128 CIDR keys).
var benchQueries = []struct {
	name string
	q    acl.Query
	key  string
}{
	{"exact-ip", acl.Query{IP: netip.MustParseAddr("10.0.5.6")}, "10.0.5.6"},
	{"cidr", acl.Query{IP: netip.MustParseAddr("192.0.7.9")}, "_"},
	{"ipv4-default", acl.Query{IP: netip.MustParseAddr("198.51.100.7"), Host: "a.b.other.example", Info: "joe"}, ""},
	{"ipv6-default", acl.Query{IP: netip.MustParseAddr("2001:db9::1")}, ""},
}

func BenchmarkLookupKeys(b *testing.B) {
	for _, c := range benchQueries {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := acl.LookupKeys(c.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLookup: the cdb in memory, so this is the lookup alone.
func BenchmarkLookup(b *testing.B) {
	data := benchCDB(b)
	db, err := acl.NewCDB(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range benchQueries {
		b.Run(c.name, func(b *testing.B) {
			checkVerdict(b, db, c.q, c.key)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := db.Lookup(c.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func checkVerdict(b *testing.B, db *acl.CDB, q acl.Query, key string) {
	b.Helper()
	v, err := db.Lookup(q)
	if err != nil || !v.Matched || !strings.HasPrefix(v.Key, key) || (key == "" && v.Key != "") {
		b.Fatalf("lookup of %v: %+v, %v; want a match on %q", q, v, err, key)
	}
}

// BenchmarkCheck is what sslserver -x does per connection: open the cdb
// file (so that a replaced one takes effect), look up, close.
func BenchmarkCheck(b *testing.B) {
	path := filepath.Join(b.TempDir(), "rules.cdb")
	if err := os.WriteFile(path, benchCDB(b), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, c := range benchQueries {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := acl.Check(path, c.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
