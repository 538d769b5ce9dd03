package acl

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
)

// FuzzParseRules: parsing never panics, fails only with a *ParseError,
// and whatever parses prints back to itself and compiles to a cdb that
// reads back as the records compiled.
func FuzzParseRules(f *testing.F) {
	if src, err := os.ReadFile(vectorFile(f, "rules.txt")); err == nil {
		f.Add(string(src))
	}
	f.Add("1.2.3.37-53:deny\n=.example.com:allow,X=/a,b/\n")
	f.Fuzz(func(t *testing.T, src string) {
		rules, err := ParseRules(strings.NewReader(src))
		var perr *ParseError
		if err != nil && !errors.As(err, &perr) {
			t.Fatalf("error %v is not a *ParseError", err)
		}
		for _, r := range rules {
			checkRuleRoundTrip(t, r)
		}
		records, err := Compile(rules)
		if err != nil {
			t.Fatalf("parsed rules do not compile: %v", err)
		}
		checkCDBRoundTrip(t, records)
	})
}

func checkRuleRoundTrip(t *testing.T, r Rule) {
	back, ok, err := ParseRule(r.String())
	if err != nil || !ok || back.Address != r.Address || back.Deny != r.Deny || !slices.Equal(back.Env, r.Env) {
		t.Fatalf("rule %+v printed as %q parses back as %+v %v", r, r.String(), back, err)
	}
}

func checkCDBRoundTrip(t *testing.T, records []Record) {
	b, err := MakeCDB(records)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCDB(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	first := map[string][]byte{}
	for _, r := range records {
		DisplayKey(string(r.Key))
		if _, seen := first[string(r.Key)]; !seen {
			first[string(r.Key)] = r.Data
		}
	}
	for k, want := range first {
		if got, found, err := c.Get([]byte(k)); err != nil || !found || !bytes.Equal(got, want) {
			t.Fatalf("Get(%q) = %q %v %v, want %q", k, got, found, err, want)
		}
	}
}

// FuzzCDBReader: any bytes give a reader, or an error wrapping
// ErrMalformed; never a panic, and never an endless probe.
func FuzzCDBReader(f *testing.F) {
	if b, err := os.ReadFile(vectorFile(f, "rules.fehcom.cdb")); err == nil {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return // big inputs only make each run slower, not new
		}
		c, err := NewCDB(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			mustBeMalformed(t, err)
			return
		}
		for _, k := range []string{"", "=", "1.2.3.4", string(b[cdbHeaderSize:min(len(b), cdbHeaderSize+16)])} {
			_, _, err := c.Get([]byte(k))
			mustBeMalformed(t, err)
		}
		for _, q := range []Query{
			{IP: netip.MustParseAddr("1.2.3.4"), Host: "a.example.com", Info: "joe"},
			{IP: netip.MustParseAddr("2001:db8::1"), Host: "a.example.com"},
		} {
			_, err := c.Lookup(q)
			mustBeMalformed(t, err)
		}
		mustBeMalformed(t, c.ForEach(func(k, d []byte) error {
			DisplayKey(string(k)) // must not panic on foreign keys
			return nil
		}))
	})
}

func mustBeMalformed(t *testing.T, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, ErrMalformed) {
		t.Fatalf("error %v does not wrap ErrMalformed", err)
	}
}
