package acl

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const v6LoopbackKey = "0000:0000:0000:0000:0000:0000:0000:0001"

func TestParseAddressForms(t *testing.T) {
	allOnes128 := make([]byte, 128)
	for i := range allOnes128 {
		allOnes128[i] = byte(0x60 + i)
	}
	cases := []struct {
		line string
		keys []string
	}{
		{"1.2.3.4:allow", []string{"1.2.3.4"}},
		{"10.:deny", []string{"10."}},
		{"192.168.:deny", []string{"192.168."}},
		{"1.2.3.250-260:deny", []string{"1.2.3.250", "1.2.3.251", "1.2.3.252", "1.2.3.253", "1.2.3.254", "1.2.3.255"}},
		{"1.2-3.:allow", []string{"1.2.", "1.3."}},
		{"1.2.3.07-07:allow", []string{"1.2.3.7"}},
		{"10.1.2.3/8:allow", []string{"_0000e0g0"}}, // host bits beyond the prefix are dropped
		{"127./8:allow", []string{"_0bcdefgh"}},
		{"128.0.0.0/1:allow", []string{"_a"}},
		{"255.255.255.255/32:allow", []string{"_" + ipv4OneBits}},
		{"8000::/1:allow", []string{"^`"}},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128:allow", []string{"^" + string(allOnes128)}},
		{"2001:DB8::5:deny", []string{"2001:0DB8:0000:0000:0000:0000:0000:0005"}},
		{"joe@::1:allow", []string{"joe@" + v6LoopbackKey}},
		{"joe@1.2.3.4:allow", []string{"joe@1.2.3.4"}},
		{"joe@=mx.example.com:allow", []string{"joe@=mx.example.com"}},
		{"=mx.example.com:allow", []string{"=mx.example.com"}},
		{"=.example.com:allow", []string{"=.example.com"}},
		{"=:allow", []string{"="}},
		{":deny", []string{""}},
		{"1.2.3.4:deny \t\r", []string{"1.2.3.4"}},
	}
	for _, c := range cases {
		rule, ok, err := ParseRule(c.line)
		if err != nil || !ok {
			t.Errorf("ParseRule(%q): %v %v", c.line, ok, err)
			continue
		}
		if keys, err := rule.Keys(); err != nil || !slices.Equal(keys, c.keys) {
			t.Errorf("%q: keys %q %v, want %q", c.line, keys, err, c.keys)
		}
	}
}

func TestParseInstructions(t *testing.T) {
	cases := []struct {
		line string
		deny bool
		env  []Var
		data string
	}{
		{"1.2.3.4:allow", false, nil, ""},
		{"1.2.3.4:deny", true, nil, "D\x00"},
		{`1.2.3.4:allow,A="",B=/a,b/,C=|"|`, false, []Var{{"A", ""}, {"B", "a,b"}, {"C", `"`}}, "+A=\x00+B=a,b\x00+C=\"\x00"},
		{`1.2.3.4:allow,X=xax`, false, []Var{{"X", "a"}}, "+X=a\x00"},
		{`1.2.3.4:allow,X=:a:,Y=:b:`, false, []Var{{"X", "a"}, {"Y", "b"}}, "+X=a\x00+Y=b\x00"},
		{`1.2.3.4:deny,X="1"`, true, []Var{{"X", "1"}}, "D\x00+X=1\x00"},
		{`::1:allow,X="a b",X="c"`, false, []Var{{"X", "a b"}, {"X", "c"}}, "+X=a b\x00+X=c\x00"},
	}
	for _, c := range cases {
		rule, _, err := ParseRule(c.line)
		if err != nil {
			t.Errorf("ParseRule(%q): %v", c.line, err)
			continue
		}
		data, err := rule.Data()
		if err != nil || rule.Deny != c.deny || !slices.Equal(rule.Env, c.env) || string(data) != c.data {
			t.Errorf("%q: deny=%v env=%q data=%q %v; want %v %q %q", c.line, rule.Deny, rule.Env, data, err, c.deny, c.env, c.data)
		}
	}
}

func TestParseErrors(t *testing.T) {
	bad := []string{
		"1.2.3.4",                   // no colon
		"1.2.3.4:permit",            // unknown instruction
		"1.2.3.4:allowx",            // junk after the instruction
		"1.2.3.4:allow,X",           // no '='
		`1.2.3.4:allow,="a"`,        // empty name
		"1.2.3.4:allow,X=",          // no value
		`1.2.3.4:allow,X="abc`,      // unterminated
		`1.2.3.4:allow,X="a"b`,      // junk after the value
		`1.2.3.4:allow,X="a",`,      // trailing comma
		"1.2.3:allow",               // neither address nor prefix
		"01.2.3.4:allow",            // never equals a remote IP
		"1.2.3.256:allow",           // octet too large
		"1.2.3.4.5.:allow",          // too many octets
		"10.0.0.0/0:allow",          // zero prefix
		"10.0.0.0/33:allow",         // prefix too long
		"10.0.0.0/8x:allow",         // bad prefix
		"1.2.3.4.5/8:allow",         // too many octets
		"::/0:allow",                // zero prefix
		"::/129:allow",              // prefix too long
		"gg::/16:allow",             // bad network
		"1.2.3.9-5:allow",           // empty range
		"1.2.3.4-:allow",            // no upper bound
		"1.2.3.300-400:allow",       // range wholly above 255
		"1.2-3.4.5.6:allow",         // range gives non-addresses
		"gg::1:allow",               // bad IPv6
		"fe80::1%eth0:allow",        // zone
		"::ffff:1.2.3.4:allow",      // mapped: IPv4 peers are looked up as IPv4
		"@1.2.3.4:allow",            // empty info
		"joe@10.:allow",             // info@ with a prefix
		"joe@10.0.0.0/8:allow",      // info@ with CIDR
		"joe@=:allow",               // info@ without host
		"a=b@1.2.3.4:allow",         // '=' in info
		"1.2.3.4=:allow",            // stray '='
		"localhost:allow",           // host without '='
		" 1.2.3.4:allow",            // leading blank
		"1.2.3.4:allow\x00",         // NUL
		"1.2.3.4:allow,X=\"a\x00\"", // NUL in value
	}
	for _, line := range bad {
		src := "# comment\n\n" + line + "\n5.6.7.8:allow\n"
		_, err := ParseRules(strings.NewReader(src))
		var perr *ParseError
		if !errors.As(err, &perr) {
			t.Errorf("%q: got %v, want a *ParseError", line, err)
			continue
		}
		if perr.Line != 3 || perr.Text != trimLine(line) || !strings.Contains(err.Error(), "line 3") {
			t.Errorf("%q: error %q names line %d, text %q", line, err, perr.Line, perr.Text)
		}
	}
}

func TestParseRulesSkipsCommentsAndBlankLines(t *testing.T) {
	src := "# head\n\n   \n\t\n1.2.3.4:deny\n#x:allow\n=:allow" // no final newline
	rules, err := ParseRules(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2 || rules[0].Line != 5 || rules[1].Line != 7 || rules[1].Address != "=" {
		t.Errorf("got %+v", rules)
	}
}

func TestParseRulesLongLine(t *testing.T) {
	src := "1.2.3.4:allow,X=\"" + strings.Repeat("a", MaxLineLength) + "\"\n"
	_, err := ParseRules(strings.NewReader(src))
	var perr *ParseError
	if !errors.As(err, &perr) || perr.Line != 1 || !errors.Is(err, errLineTooLong) {
		t.Errorf("got %v", err)
	}
}

func TestRuleStringParsesBack(t *testing.T) {
	rules := []Rule{
		{Address: "1.2.3.4", Deny: true},
		{Address: "2001:db8::/32", Env: []Var{{"A", `"/'|`}, {"B", ""}, {"C", "x,y:z"}}},
		{Address: "", Env: []Var{{"D", "1"}}},
	}
	for _, r := range rules {
		back, ok, err := ParseRule(r.String())
		if err != nil || !ok || back.Address != r.Address || back.Deny != r.Deny || !slices.Equal(back.Env, r.Env) {
			t.Errorf("%q parsed back as %+v %v", r.String(), back, err)
		}
	}
}

func TestCompileRejectsBadHandMadeRules(t *testing.T) {
	for _, r := range []Rule{
		{Address: "nonsense"},
		{Address: "1.2.3.4", Env: []Var{{"A=B", "c"}}},
		{Address: "1.2.3.4", Env: []Var{{"", "c"}}},
		{Address: "1.2.3.4", Env: []Var{{"A", "c\x00"}}},
	} {
		if _, err := Compile([]Rule{r}); err == nil {
			t.Errorf("Compile(%+v) succeeded", r)
		}
	}
}
