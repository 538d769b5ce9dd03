package env

import (
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// crowdedName has every attribute kind mod_ssl exports, each more often
// than TLS numbers.
func crowdedName() pkix.Name {
	var n pkix.Name
	for oid := range modsslAttributes {
		var id asn1.ObjectIdentifier
		for _, part := range strings.Split(oid, ".") {
			var v int
			fmt.Sscan(part, &v)
			id = append(id, v)
		}
		for i := 0; i < maxIndex+3; i++ {
			n.ExtraNames = append(n.ExtraNames, pkix.AttributeTypeAndValue{Type: id, Value: fmt.Sprintf("v%d", i)})
		}
	}
	return n
}

// crowdedTLS is a session whose client certificate, and its issuer, have
// more of everything than TLS reports.
func crowdedTLS(t *testing.T) (cs *tls.ConnectionState, server, client *x509.Certificate) {
	t.Helper()
	ca := newCA(t, crowdedName(), ecKey(t, elliptic.P256()))
	tmpl := &x509.Certificate{Subject: crowdedName()}
	for i := 0; i < maxIndex+5; i++ {
		tmpl.DNSNames = append(tmpl.DNSNames, fmt.Sprintf("h%d.example.org", i))
		tmpl.EmailAddresses = append(tmpl.EmailAddresses, fmt.Sprintf("u%d@example.org", i))
	}
	client = makeCert(t, tmpl, ecKey(t, elliptic.P256()), ca)
	server = makeCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "mx.example.org"}}, ecKey(t, elliptic.P256()), ca)
	cs = &tls.ConnectionState{Version: tls.VersionTLS12, CipherSuite: tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		ServerName: "mx.example.org", PeerCertificates: []*x509.Certificate{client}}
	return cs, server, client
}

// TestTLSStaysWithinCheckTLS: what TLS makes, on both sides and for a
// client certificate crowded with names, is what CheckTLS lets through;
// and every name CheckTLS knows of a fixed kind is one TLS makes.
func TestTLSStaysWithinCheckTLS(t *testing.T) {
	cs, server, client := crowdedTLS(t)
	serverView := TLS(cs, server, true, "SUCCESS")
	clientCS := *cs
	clientCS.PeerCertificates = []*x509.Certificate{server}
	clientView := TLS(&clientCS, client, false, "FAILED:x")
	for name, c := range map[string]struct {
		vars   []Var
		server bool
	}{"server": {serverView, true}, "client": {clientView, false}} {
		if err := CheckTLS(c.vars, c.server); err != nil {
			t.Errorf("%s view: CheckTLS refused what TLS made: %v", name, err)
		}
		if CheckTLS(c.vars, !c.server) == nil {
			t.Errorf("%s view passes as the other side's, verify name and all", name)
		}
	}
	got := varMap(t, serverView)
	last := fmt.Sprint(maxIndex - 1)
	for _, name := range []string{"SSL_CLIENT_SAN_DNS_" + last, "SSL_CLIENT_SAN_Email_" + last, "SSL_CLIENT_S_DN_CN_" + last, "SSL_CLIENT_I_DN_O_" + last} {
		if got[name] == "" {
			t.Errorf("%s is missing", name)
		}
	}
	beyond := fmt.Sprint(maxIndex)
	for _, name := range []string{"SSL_CLIENT_SAN_DNS_" + beyond, "SSL_CLIENT_S_DN_CN_" + beyond} {
		if _, ok := got[name]; ok {
			t.Errorf("%s is set, beyond the bound", name)
		}
	}
	assertEveryFixedNameMade(t, serverView, clientView)
}

func assertEveryFixedNameMade(t *testing.T, views ...[]Var) {
	t.Helper()
	made := map[string]bool{}
	for _, vars := range views {
		for _, v := range vars {
			made[v.Name] = true
		}
	}
	want := append(slices.Clone(sessionNames), verifyName(true), verifyName(false))
	for _, f := range certFields {
		want = append(want, "SSL_SERVER_"+f, "SSL_CLIENT_"+f)
	}
	for _, name := range want {
		if !made[name] {
			t.Errorf("CheckTLS allows %s, which TLS never made here", name)
		}
	}
}

// TestTLSLeavesOversizedValuesUnset: a subject name beyond MaxTLSValue is
// left out, so the report still passes.
func TestTLSLeavesOversizedValuesUnset(t *testing.T) {
	long := strings.Repeat("\x01", MaxTLSValue/4+1) // each byte becomes \x01
	c := makeCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "x", Organization: []string{long}}}, ecKey(t, elliptic.P256()), nil)
	cs := &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256, PeerCertificates: []*x509.Certificate{c}}
	vars := TLS(cs, c, true, "NONE")
	if err := CheckTLS(vars, true); err != nil {
		t.Fatal(err)
	}
	got := varMap(t, vars)
	if _, ok := got["SSL_CLIENT_S_DN"]; ok {
		t.Error("SSL_CLIENT_S_DN is set beyond its bound")
	}
	if got["SSL_CLIENT_S_DN_CN"] != "x" {
		t.Errorf("SSL_CLIENT_S_DN_CN = %q", got["SSL_CLIENT_S_DN_CN"])
	}
}

// TestCheckTLSRefuses plays a hostile worker's report, one bad variable
// in an otherwise good one: each is refused, naming the variable.
func TestCheckTLSRefuses(t *testing.T) {
	cs, server, _ := crowdedTLS(t)
	cs.PeerCertificates = nil // the SSL_CLIENT_* variables below are the only ones
	good := TLS(cs, server, true, "NONE")
	pem := varMap(t, good)["SSL_SERVER_CERT"]
	cases := []struct {
		name, value, why string
	}{
		{"SSL_CERT_FILE", "/tmp/evil.pem", "not a name"},
		{"SSL_CERT_DIR", "/tmp", "not a name"},
		{"LD_PRELOAD", "/tmp/x.so", "not a name"},
		{"SSL_PROTOCOL=TLSv1.3", "x", "not a name"},
		{"SSL_CIPHER\x00LD_PRELOAD", "x", "not a name"},
		{"SSL_SERVER_VERIFY", "SUCCESS", "not a name"},
		{"SSL_CLIENT_SAN_DNS_" + fmt.Sprint(maxIndex), "x", "not a name"},
		{"SSL_CLIENT_SAN_DNS_01", "x", "not a name"},
		{"SSL_CLIENT_S_DN_CN_0", "x", "not a name"},
		{"SSL_CLIENT_S_DN_XY", "x", "not a name"},
		{"", "x", "not a name"},
		{strings.Repeat("SSL_", 1000), "x", "not a name"},
		{"SSL_PROTOCOL", "TLSv1.3", "twice"},
		{"SSL_CLIENT_S_DN", strings.Repeat("a", MaxTLSValue+1), "more than"},
		{"SSL_CLIENT_CERT", pem + strings.Repeat("A", MaxCertValue), "more than"},
		{"SSL_CLIENT_S_DN", "/CN=a\nLD_PRELOAD=/x", "newline"},
		{"SSL_CLIENT_S_DN", "/CN=a\x00b", "NUL"},
		{"SSL_CLIENT_CERT", "not a certificate", "PEM"},
		{"SSL_CLIENT_CERT", pem + pem, "PEM"},
	}
	for _, c := range cases {
		vars := append(slices.Clone(good), Var{Name: c.name, Value: c.value})
		err := CheckTLS(vars, true)
		if err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%q=%.20q: %v, want %q", c.name, c.value, err, c.why)
			continue
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("%q", clip(c.name))) || len(err.Error()) > 200 {
			t.Errorf("%q: the error %q does not name it, short", c.name, err)
		}
	}
	many := make([]Var, MaxTLSVars+1)
	for i := range many {
		many[i] = Var{Name: "SSL_CLIENT_SAN_DNS_0", Value: "x"}
	}
	if err := CheckTLS(many, true); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("%d variables: %v", len(many), err)
	}
}

// TestMaxTLSVarsFitsTLS: the most variables TLS can make, counted from
// its tables, is within MaxTLSVars.
func TestMaxTLSVarsFitsTLS(t *testing.T) {
	dn := 1 + len(modsslAttributes)*maxIndex // S_DN and its attributes
	cert := len(certFields) - 2 + 2*dn + 2*maxIndex
	most := len(sessionNames) + 1 + 2*cert
	if most > MaxTLSVars || most != 924 {
		t.Fatalf("TLS makes up to %d variables; MaxTLSVars is %d and its comment says 924", most, MaxTLSVars)
	}
}
