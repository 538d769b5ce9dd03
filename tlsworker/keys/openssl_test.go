package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// needOpenSSL skips a test when the openssl CLI is missing, except under
// CI=true, where a missing openssl must not pass unnoticed.
func needOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("openssl CLI needed: %v", err)
		}
		t.Skipf("openssl CLI not found: %v", err)
	}
}

// openssl runs the openssl CLI in dir and fails the test if it fails.
func openssl(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl %q: %v\n%s", args, err, out)
	}
}

// readTestFile reads dir/name.
func readTestFile(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// selfSigned makes dir/out, a self-signed certificate for dir/key.
func selfSigned(t *testing.T, dir, key, pass, out string) {
	t.Helper()
	openssl(t, dir, "req", "-x509", "-new", "-key", key, "-passin", "pass:"+pass,
		"-subj", "/CN=keys-test "+out, "-days", "1", "-out", out)
}

// newEd25519 makes dir/name, a fresh unencrypted Ed25519 key.
func newEd25519(t *testing.T, dir, name string) {
	t.Helper()
	openssl(t, dir, "genpkey", "-algorithm", "ed25519", "-out", name)
}

// leafOf parses the certificate in dir/name without this package.
func leafOf(t *testing.T, dir, name string) *x509.Certificate {
	t.Helper()
	leaf, err := x509.ParseCertificate(certDER(t, readTestFile(t, dir, name)))
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// certDER is the DER of the first certificate in certPEM.
func certDER(t *testing.T, certPEM []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("no certificate in %q", certPEM)
	}
	return b.Bytes
}

// checkSigns signs a message with s and verifies it with the leaf's
// public key, so the parsed key is proven to be the certified one.
func checkSigns(t *testing.T, s crypto.Signer, leaf *x509.Certificate) {
	t.Helper()
	msg := []byte("ucspi-tls keys test message")
	digest := sha256.Sum256(msg)
	var sig []byte
	var alg x509.SignatureAlgorithm
	var err error
	switch s.(type) {
	case ed25519.PrivateKey:
		sig, err = s.Sign(rand.Reader, msg, crypto.Hash(0))
		alg = x509.PureEd25519
	case *rsa.PrivateKey:
		sig, err = s.Sign(rand.Reader, digest[:], crypto.SHA256)
		alg = x509.SHA256WithRSA
	case *ecdsa.PrivateKey:
		sig, err = s.Sign(rand.Reader, digest[:], crypto.SHA256)
		alg = x509.ECDSAWithSHA256
	default:
		t.Fatalf("unexpected signer type %T", s)
	}
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	if err := leaf.CheckSignature(alg, msg, sig); err != nil {
		t.Fatalf("signature does not verify with the certificate's key: %v", err)
	}
}

// kind names a signer's algorithm independently of describeKey.
func kind(s crypto.Signer) string {
	switch k := s.(type) {
	case *rsa.PrivateKey:
		return fmt.Sprintf("rsa%d", k.N.BitLen())
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return "p256"
		case elliptic.P384():
			return "p384"
		}
		return "ecdsa?"
	case ed25519.PrivateKey:
		return "ed25519"
	}
	return fmt.Sprintf("%T", s)
}
