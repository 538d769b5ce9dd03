package acl

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLookupKeysIPv4(t *testing.T) {
	keys, err := LookupKeys(Query{IP: netip.MustParseAddr("192.0.2.7"), Host: "a.b.example", Info: "joe"})
	if err != nil {
		t.Fatal(err)
	}
	head := []string{"joe@192.0.2.7", "joe@=a.b.example", "192.0.2.7", "=a.b.example", "192.0.2.", "192.0.", "192."}
	tail := []string{"=.b.example", "=.example", "=", ""}
	if len(keys) != len(head)+32+len(tail) || !slices.Equal(keys[:len(head)], head) || !slices.Equal(keys[len(keys)-len(tail):], tail) {
		t.Fatalf("keys %q", keys)
	}
	checkCIDRRun(t, keys[len(head):len(head)+32], '_', 32)
	if keys[len(head)+31] != "_a" { // 192 starts with a 1 bit
		t.Errorf("/1 key %q", keys[len(head)+31])
	}
}

// checkCIDRRun checks n keys from /n down to /1, each a prefix of the last.
func checkCIDRRun(t *testing.T, run []string, mark byte, n int) {
	t.Helper()
	for i, k := range run {
		if len(k) != 1+n-i || k[0] != mark || !strings.HasPrefix(run[0], k) {
			t.Fatalf("CIDR key %d is %q", i, k)
		}
	}
}

func TestLookupKeysIPv6(t *testing.T) {
	keys, err := LookupKeys(Query{IP: netip.MustParseAddr("::1")})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1+128+1 || keys[0] != v6LoopbackKey || keys[len(keys)-1] != "" {
		t.Fatalf("keys %q", keys)
	}
	checkCIDRRun(t, keys[1:129], '^', 128)
}

func TestLookupKeysUnmapsAndDropsZone(t *testing.T) {
	plain, _ := LookupKeys(Query{IP: netip.MustParseAddr("192.0.2.7"), Host: "h"})
	mapped, _ := LookupKeys(Query{IP: netip.MustParseAddr("::ffff:192.0.2.7"), Host: "h"})
	if !slices.Equal(plain, mapped) {
		t.Errorf("mapped keys %q, want %q", mapped, plain)
	}
	zoned, _ := LookupKeys(Query{IP: netip.MustParseAddr("fe80::1%eth0")})
	if zoned[0] != "FE80:0000:0000:0000:0000:0000:0000:0001" {
		t.Errorf("zoned address key %q", zoned[0])
	}
	if _, err := LookupKeys(Query{}); err == nil {
		t.Error("no error for a query without IP")
	}
}

// compileToFile compiles rule source into a cdb in dir.
func compileToFile(t *testing.T, dir, src string) string {
	t.Helper()
	rules, err := ParseRules(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	records, err := Compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "rules.cdb")
	writeCDB(t, path, records)
	return path
}

// Each step of the lookup order must win over every later one: with the
// rules from step i on, a client matching all of them hits step i.
func TestLookupPrecedence(t *testing.T) {
	steps := map[string][]string{
		"10.1.2.3": {
			`joe@10.1.2.3:allow,S="info@ip"`,
			`joe@=h.example.com:allow,S="info@=host"`,
			`10.1.2.3:allow,S="ip"`,
			`=h.example.com:allow,S="=host"`,
			`10.1.2.:allow,S="10.1.2."`,
			`10.1.:allow,S="10.1."`,
			`10.1.2.0/24:allow,S="/24"`,
			`10.1.2.0/23:allow,S="/23"`,
			`10.0.0.0/8:allow,S="/8"`,
			`=.example.com:allow,S="=.example.com"`,
			`=.com:allow,S="=.com"`,
			`=:allow,S="="`,
			`:allow,S="default"`,
		},
		"2001:db8::1": {
			`joe@2001:db8::1:allow,S="info@ip"`,
			`joe@=h.example.com:allow,S="info@=host"`,
			`2001:db8:0::1:allow,S="ip"`,
			`=h.example.com:allow,S="=host"`,
			`2001:db8::/127:allow,S="/127"`,
			`2001:db8::/32:allow,S="/32"`,
			`2000::/3:allow,S="/3"`,
			`=.com:allow,S="=.com"`,
			`=:allow,S="="`,
			`:allow,S="default"`,
		},
	}
	for ip, rules := range steps {
		q := Query{IP: netip.MustParseAddr(ip), Host: "h.example.com", Info: "joe"}
		for i := range rules {
			path := compileToFile(t, t.TempDir(), strings.Join(rules[i:], "\n"))
			v, err := Check(path, q)
			want, _, _ := ParseRule(rules[i])
			if err != nil || !v.Matched || !slices.Equal(v.Env, want.Env) {
				t.Errorf("%s with rules from %q on: got %+v %v", ip, rules[i], v, err)
			}
		}
	}
}

func TestLookupWithoutHostOrInfoSkipsThoseSteps(t *testing.T) {
	path := compileToFile(t, t.TempDir(), "joe@1.2.3.4:deny\n=:deny\n=h:deny\n:allow,D=\"1\"\n")
	v, err := Check(path, Query{IP: netip.MustParseAddr("1.2.3.4")})
	if err != nil || v.Deny || v.Key != "" || !v.Matched {
		t.Errorf("got %+v %v, want the default rule", v, err)
	}
}

func TestLookupNoRule(t *testing.T) {
	path := compileToFile(t, t.TempDir(), "1.2.3.4:deny\n")
	v, err := Check(path, Query{IP: netip.MustParseAddr("1.2.3.5")})
	if err != nil || v.Matched || v.Deny {
		t.Errorf("got %+v %v, want no match", v, err)
	}
	if v.String() != "default:\nallow connection\n" {
		t.Errorf("String() = %q", v.String())
	}
}

func TestCheckMappedClient(t *testing.T) {
	v, err := Check(vectorFile(t, "rules.fehcom.cdb"), Query{IP: netip.MustParseAddr("::ffff:18.23.0.32")})
	if err != nil || !v.Deny || v.Key != "18.23.0.32" {
		t.Errorf("got %+v %v", v, err)
	}
}

// Check opens the cdb per call, so an atomic rename takes effect at once.
func TestCheckSeesReplacedFile(t *testing.T) {
	dir := t.TempDir()
	q := Query{IP: netip.MustParseAddr("1.2.3.4")}
	path := compileToFile(t, dir, "1.2.3.4:deny\n")
	if v, err := Check(path, q); err != nil || !v.Deny {
		t.Fatalf("before: %+v %v", v, err)
	}
	newDir := t.TempDir()
	if err := os.Rename(compileToFile(t, newDir, "1.2.3.4:allow\n"), path); err != nil {
		t.Fatal(err)
	}
	if v, err := Check(path, q); err != nil || v.Deny || !v.Matched {
		t.Errorf("after: %+v %v", v, err)
	}
}

func TestCheckErrors(t *testing.T) {
	dir := t.TempDir()
	q := Query{IP: netip.MustParseAddr("1.2.3.4")}
	if _, err := Check(filepath.Join(dir, "missing.cdb"), q); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	short := filepath.Join(dir, "short.cdb")
	if err := os.WriteFile(short, []byte("not a cdb"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Check(short, q); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), short) {
		t.Errorf("short file: %v", err)
	}
	bad := filepath.Join(dir, "bad.cdb")
	writeCDB(t, bad, []Record{{Key: []byte("1.2.3.4"), Data: []byte("?\x00")}})
	if _, err := Check(bad, q); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad data: %v", err)
	}
}

func TestVerdictString(t *testing.T) {
	cases := map[string]Verdict{
		"rule 1.2.3.4:\ndeny connection\n": {Matched: true, Key: "1.2.3.4", Deny: true},
		"rule =h:\nset environment variable A=b\nset environment variable C=\nallow connection\n": {
			Matched: true, Key: "=h", Env: []Var{{"A", "b"}, {"C", ""}},
		},
		"default:\nset environment variable D=1\nallow connection\n": {Matched: true, Env: []Var{{"D", "1"}}},
	}
	for want, v := range cases {
		if v.String() != want {
			t.Errorf("%+v: %q, want %q", v, v.String(), want)
		}
	}
}

func TestDisplayKey(t *testing.T) {
	for _, c := range []struct{ line, want string }{
		{"10.0.0.0/8:allow", "10./8"},
		{"10.64.0.0/10:allow", "10.64./10"},
		{"1.2.3.4/32:allow", "1.2.3.4/32"},
		{"fe80::/10:allow", "fe80::/10"},
		{"::1:allow", v6LoopbackKey},
		{"=h:allow", "=h"},
		{":allow", "default"},
	} {
		r, _, err := ParseRule(c.line)
		if err != nil {
			t.Fatal(err)
		}
		keys, _ := r.Keys()
		if got := DisplayKey(keys[0]); got != c.want {
			t.Errorf("%q: DisplayKey(%q) = %q, want %q", c.line, keys[0], got, c.want)
		}
	}
}
