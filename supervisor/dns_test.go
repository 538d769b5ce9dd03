package supervisor

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestResolverDNSCacheIP(t *testing.T) {
	good := map[string]string{
		"10.0.0.1":          "10.0.0.1:53",
		" 10.0.0.1\n":       "10.0.0.1:53",
		"127.0.0.1:5353":    "127.0.0.1:5353",
		"::1":               "[::1]:53",
		"[::1]:5353":        "[::1]:5353",
		"::ffff:10.0.0.1":   "10.0.0.1:53",
		"[fe80::1%lo]:5353": "[fe80::1%lo]:5353",
	}
	for in, want := range good {
		got, err := parseDNSCache(in)
		if err != nil || got != netip.MustParseAddrPort(want) {
			t.Errorf("parseDNSCache(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"dnscache.example.net", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1 10.0.0.2", "10.0.0.1:", ":53", "-"} {
		if got, err := parseDNSCache(in); err == nil || !strings.Contains(err.Error(), "DNSCACHEIP") {
			t.Errorf("parseDNSCache(%q) = %v, %v; want an error naming DNSCACHEIP", in, got, err)
		}
	}
}

func TestResolverUnsetUsesResolvConf(t *testing.T) {
	r, ok := newResolver(func(string) string { return "" }).(*dnsClient)
	if !ok || r.err != nil || !reflect.DeepEqual(r.servers, resolvConfServers("/etc/resolv.conf")) {
		t.Errorf("without DNSCACHEIP the client must ask /etc/resolv.conf's servers; got %+v", r)
	}
}

func TestDNSCleanName(t *testing.T) {
	good := map[string]string{
		"Client.Example.NET.": "client.example.net",
		"mx-1.example.org":    "mx-1.example.org",
		"_srv.example.":       "_srv.example",
		"localhost.":          "localhost",
		"1.2.3.4.5.":          "1.2.3.4.5",
		"2001-db8--1.example": "2001-db8--1.example",
	}
	for in, want := range good {
		if got, ok := cleanName(in); !ok || got != want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{
		"", ".", "..", "a..b.", ".a.", "evil name.", "evil\nname.", "evil:name.", "evil\x00.",
		"évil.example.", "a/b.", "192.0.2.7.", "192.0.2.7", "::1", "2001:db8::1.",
		strings.Repeat("a", maxNameLen+1) + ".",
	} {
		if got, ok := cleanName(in); ok {
			t.Errorf("cleanName(%q) = %q, want refused", in, got)
		}
	}
}
