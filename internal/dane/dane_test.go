package dane

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"testing"
	"time"
)

// selfSigned makes a certificate for key's public half.
func selfSigned(t *testing.T, key crypto.Signer, serial int64) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "mx.example.org"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// want computes the record another way: the public key marshalled
// afresh, not the bytes the certificate holds.
func want(t *testing.T, usage int, pub any) string {
	t.Helper()
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d 1 1 %x", usage, sha256.Sum256(spki))
}

func TestRecordIsTheSHA256OfThePublicKey(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []crypto.Signer{ec, rs, ed} {
		cert := selfSigned(t, key, 1)
		if got, w := Record(EE, cert), want(t, 3, key.Public()); got != w {
			t.Errorf("%T: Record(EE) = %q, want %q", key, got, w)
		}
		if got, w := Record(TA, cert), want(t, 2, key.Public()); got != w {
			t.Errorf("%T: Record(TA) = %q, want %q", key, got, w)
		}
	}
}

// A renewal that keeps the key keeps the record; a new key changes it.
func TestRecordFollowsTheKeyNotTheCertificate(t *testing.T) {
	k1, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, renewed, rekeyed := selfSigned(t, k1, 1), selfSigned(t, k1, 2), selfSigned(t, k2, 3)
	if a.Equal(renewed) {
		t.Fatal("the renewed certificate is the same certificate")
	}
	if Record(EE, a) != Record(EE, renewed) {
		t.Errorf("same key, records differ: %s, %s", Record(EE, a), Record(EE, renewed))
	}
	if Record(EE, a) == Record(EE, rekeyed) {
		t.Errorf("new key, same record %s", Record(EE, a))
	}
}
