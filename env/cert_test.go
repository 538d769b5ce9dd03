package env

import (
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// unusualSubject has what OpenSSL and mod_ssl must both survive: UTF-8, a
// slash, a newline, a NUL, a BMPString, a T61String with a Latin-1 byte, a
// multi-valued RDN, an attribute type OpenSSL has no name for, a
// backslash, and repeated OUs.
func unusualSubject(t *testing.T) []byte {
	return rawName(t,
		[]attr{{oidC, asn1.TagPrintableString, "DE"}},
		[]attr{{oidO, asn1.TagUTF8String, "Bäcker & Söhne/Zweig+Co"}},
		[]attr{{oidOU, asn1.TagUTF8String, "line1\nline2"}},
		[]attr{{oidOU, asn1.TagUTF8String, "nul\x00byte"}},
		[]attr{{asn1.ObjectIdentifier{2, 5, 4, 7}, asn1.TagT61String, "M\xfcnchen"}},
		[]attr{{oidStreet, asn1.TagUTF8String, "Hauptstraße 1"}},
		[]attr{{oidCN, asn1.TagBMPString, bmp("Jürgen")}},
		[]attr{{oidSerial, asn1.TagPrintableString, "12345"}, {oidUID, asn1.TagUTF8String, "u1"}},
		[]attr{{oidDC, asn1.TagIA5String, "example"}},
		[]attr{{oidUnknown, asn1.TagUTF8String, `odd\value`}},
		[]attr{{oidEmail, asn1.TagIA5String, "a.b@example.org"}},
	)
}

// testCerts are certificates of every kind the variables must describe.
func testCerts(t *testing.T) map[string]*x509.Certificate {
	rsaRoot := newCA(t, pkix.Name{Country: []string{"DE"}, Organization: []string{"Example CA"}, CommonName: "Example Root"}, rsaKey(t))
	ecRoot := newCA(t, pkix.Name{CommonName: "EC Root"}, ecKey(t, elliptic.P256()))
	highBit, _ := new(big.Int).SetString("80f00d0000000000000000000000000001", 16)
	return map[string]*x509.Certificate{
		"rsa root":   rsaRoot.cert,
		"ecdsa root": ecRoot.cert,
		"ecdsa leaf by rsa, high-bit serial, two-digit day, year 2051": makeCert(t, &x509.Certificate{
			SerialNumber: highBit,
			Subject: pkix.Name{
				CommonName: "client.example.net", OrganizationalUnit: []string{"Mail", "Relay"},
				ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidEmail, Value: "postmaster@example.net"}},
			},
			NotBefore: time.Date(2026, 1, 12, 3, 4, 5, 0, time.UTC),
			NotAfter:  time.Date(2051, 12, 31, 23, 59, 59, 0, time.UTC),
		}, ecKey(t, elliptic.P384()), rsaRoot),
		"ed25519 leaf by ecdsa, unusual subject, serial 1, one-digit day": makeCert(t, &x509.Certificate{
			SerialNumber: big.NewInt(1),
			RawSubject:   unusualSubject(t),
			NotBefore:    time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC),
			NotAfter:     time.Date(2027, 3, 2, 0, 0, 0, 0, time.UTC),
		}, edKey(t), ecRoot),
		"rsa-pss leaf, serial with a zero byte": makeCert(t, &x509.Certificate{
			SerialNumber:       big.NewInt(0x100),
			Subject:            pkix.Name{CommonName: "pss.example.org"},
			SignatureAlgorithm: x509.SHA384WithRSAPSS,
		}, rsaKey(t), rsaRoot),
	}
}

func TestCertificateVariablesMatchOpenSSL(t *testing.T) {
	openssl := requireOpenSSL(t)
	for name, c := range testCerts(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := varMap(t, certVarList(c))
			want := opensslView(t, openssl, c)
			for _, check := range []struct{ variable, openssl string }{
				{"SSL_CLIENT_S_DN", "subject"},
				{"SSL_CLIENT_I_DN", "issuer"},
				{"SSL_CLIENT_M_SERIAL", "serial"},
				{"SSL_CLIENT_V_START", "notBefore"},
				{"SSL_CLIENT_V_END", "notAfter"},
				{"SSL_CLIENT_A_SIG", "Signature Algorithm"},
				{"SSL_CLIENT_A_KEY", "Public Key Algorithm"},
			} {
				if got[check.variable] != want[check.openssl] {
					t.Errorf("%s = %q, openssl %s = %q", check.variable, got[check.variable], check.openssl, want[check.openssl])
				}
			}
			checkCertBasics(t, got, c)
		})
	}
}

// checkCertBasics checks what needs no openssl: version and the PEM copy.
func checkCertBasics(t *testing.T, got map[string]string, c *x509.Certificate) {
	t.Helper()
	if got["SSL_CLIENT_M_VERSION"] != "3" {
		t.Errorf("SSL_CLIENT_M_VERSION = %q, want 3", got["SSL_CLIENT_M_VERSION"])
	}
	block, rest := pem.Decode([]byte(got["SSL_CLIENT_CERT"]))
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 || string(block.Bytes) != string(c.Raw) {
		t.Errorf("SSL_CLIENT_CERT is not the certificate's PEM: %q", got["SSL_CLIENT_CERT"])
	}
}

func certVarList(c *x509.Certificate) []Var {
	var l varList
	certVars(&l, "SSL_CLIENT_", c)
	return l
}

// opensslView asks openssl how it prints c: names in the compat (one-line)
// form, serial, dates, and the algorithm names of the text dump.
func opensslView(t *testing.T, openssl string, c *x509.Certificate) map[string]string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	view := make(map[string]string)
	out := runOpenSSL(t, openssl, "x509", "-in", file, "-noout", "-subject", "-issuer",
		"-nameopt", "compat", "-serial", "-startdate", "-enddate")
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		k, v, _ := strings.Cut(line, "=")
		view[k] = v
	}
	for _, line := range strings.Split(runOpenSSL(t, openssl, "x509", "-in", file, "-noout", "-text"), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if ok && strings.HasSuffix(k, "Algorithm") && view[k] == "" {
			view[k] = v
		}
	}
	return view
}

func runOpenSSL(t *testing.T, openssl string, args ...string) string {
	t.Helper()
	out, err := exec.Command(openssl, args...).Output()
	if err != nil {
		t.Fatalf("openssl %q: %v", args, err)
	}
	return string(out)
}

func TestAttributeVariables(t *testing.T) {
	ca := newCA(t, pkix.Name{CommonName: "Root"}, ecKey(t, elliptic.P256()))
	c := makeCert(t, &x509.Certificate{RawSubject: unusualSubject(t)}, ecKey(t, elliptic.P256()), ca)
	got := varMap(t, certVarList(c))
	want := map[string]string{
		"SSL_CLIENT_S_DN_C":     "DE",
		"SSL_CLIENT_S_DN_O":     "Bäcker & Söhne/Zweig+Co",
		"SSL_CLIENT_S_DN_OU":    `line1\x0Aline2`,
		"SSL_CLIENT_S_DN_OU_1":  `nul\x00byte`,
		"SSL_CLIENT_S_DN_L":     "München", // crypto/x509 reads a T61String as Latin-1
		"SSL_CLIENT_S_DN_CN":    "Jürgen",
		"SSL_CLIENT_S_DN_UID":   "u1",
		"SSL_CLIENT_S_DN_Email": "a.b@example.org",
		"SSL_CLIENT_I_DN_CN":    "Root",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if strings.HasPrefix(k, "SSL_CLIENT_S_DN_") && want[k] == "" {
			t.Errorf("unexpected %s=%q (street, DC, serialNumber and unknown types are not mod_ssl attributes)", k, got[k])
		}
	}
}

func TestSubjectAlternativeNames(t *testing.T) {
	ca := newCA(t, pkix.Name{CommonName: "Root"}, ecKey(t, elliptic.P256()))
	c := makeCert(t, &x509.Certificate{
		Subject:        pkix.Name{CommonName: "mx.example.org"},
		DNSNames:       []string{"mx.example.org", "smtp.example.org"},
		EmailAddresses: []string{"postmaster@example.org"},
	}, ecKey(t, elliptic.P256()), ca)
	got := varMap(t, certVarList(c))
	want := map[string]string{
		"SSL_CLIENT_SAN_DNS_0":   "mx.example.org",
		"SSL_CLIENT_SAN_DNS_1":   "smtp.example.org",
		"SSL_CLIENT_SAN_Email_0": "postmaster@example.org",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestSerialHex(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{{0, "00"}, {1, "01"}, {255, "FF"}, {256, "0100"}, {-5, "-05"}, {0x1234abcd, "1234ABCD"}} {
		if got := serialHex(big.NewInt(tc.n)); got != tc.want {
			t.Errorf("serialHex(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// TestOnelineFallback renders the decoded name when the DER cannot be read
// again, with the same escaping.
func TestOnelineFallback(t *testing.T) {
	name := pkix.Name{Names: []pkix.AttributeTypeAndValue{
		{Type: oidC, Value: "DE"}, {Type: oidCN, Value: "a\nb/c"}, {Type: oidUnknown, Value: "x"},
	}}
	got := oneline([]byte{0x30, 0x80}, name)
	if want := `/C=DE/CN=a\x0Ab\/c/1.3.6.1.4.1.99999.7=x`; got != want {
		t.Errorf("oneline fallback = %q, want %q", got, want)
	}
}

func TestTextValue(t *testing.T) {
	for in, want := range map[string]string{
		"plain":       "plain",
		"Jürgen":      "Jürgen",
		"tab\there":   `tab\x09here`,
		"del\x7f":     `del\x7F`,
		"bad\xffutf8": `bad\xFFutf8`,
		`back\slash`:  `back\slash`,
	} {
		if got := textValue(in); got != want {
			t.Errorf("textValue(%q) = %q, want %q", in, got, want)
		}
	}
}
