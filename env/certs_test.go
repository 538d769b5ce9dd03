package env

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Certificates for the tests are made here, fresh on every run.

func rsaKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("rsa key: %v", err)
	}
	return k
}

func ecKey(t *testing.T, curve elliptic.Curve) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatalf("ecdsa key: %v", err)
	}
	return k
}

func edKey(t *testing.T) crypto.Signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("ed25519 key: %v", err)
	}
	return k
}

// issuer is a CA that signs the next certificate; nil means self-signed.
type issuer struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// makeCert signs tmpl for key's public half. Unset fields get sane values.
func makeCert(t *testing.T, tmpl *x509.Certificate, key crypto.Signer, by *issuer) *x509.Certificate {
	t.Helper()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	}
	parent, signer := tmpl, key
	if by != nil {
		parent, signer = by.cert, by.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		t.Fatalf("create certificate %q: %v", tmpl.Subject.CommonName, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	return c
}

func newCA(t *testing.T, name pkix.Name, key crypto.Signer) *issuer {
	t.Helper()
	tmpl := &x509.Certificate{
		Subject:               name,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	return &issuer{makeCert(t, tmpl, key, nil), key}
}

// attr is one attribute for rawName: its type, ASN.1 string tag and bytes.
type attr struct {
	oid   asn1.ObjectIdentifier
	tag   int
	value string
}

// rawName encodes a name exactly as given, one RDN per slice, so tests can
// use string types and bytes that pkix.Name would never produce.
func rawName(t *testing.T, rdns ...[]attr) []byte {
	t.Helper()
	seq := make([]attributeSET, len(rdns))
	for i, rdn := range rdns {
		for _, a := range rdn {
			v := asn1.RawValue{Class: asn1.ClassUniversal, Tag: a.tag, Bytes: []byte(a.value)}
			seq[i] = append(seq[i], rawAttribute{Type: a.oid, Value: v})
		}
	}
	der, err := asn1.Marshal(seq)
	if err != nil {
		t.Fatalf("marshal name: %v", err)
	}
	return der
}

// bmp encodes s (ASCII and Latin-1 here) as a BMPString's UTF-16BE bytes.
func bmp(s string) string {
	var b []byte
	for _, r := range s {
		b = append(b, byte(r>>8), byte(r))
	}
	return string(b)
}

var (
	oidCN      = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidSerial  = asn1.ObjectIdentifier{2, 5, 4, 5}
	oidC       = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidStreet  = asn1.ObjectIdentifier{2, 5, 4, 9}
	oidO       = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOU      = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidEmail   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
	oidUID     = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}
	oidDC      = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
	oidUnknown = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 7}
)

// requireOpenSSL returns the openssl binary's path. Without it the test is
// skipped, except under CI=true where the cross-check must run.
func requireOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("openssl is required under CI=true: %v", err)
	}
	t.Skipf("openssl not installed: %v", err)
	return ""
}
