package integration

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

type keyKind string

const (
	keyECDSA   keyKind = "ecdsa-p256"
	keyRSA     keyKind = "rsa-2048"
	keyEd25519 keyKind = "ed25519"
)

// serverName is the name in every test certificate; clients verify it
// without any DNS lookup.
const serverName = "mx.example.org"

// testCert is a self-signed server certificate and its key, written as
// PEM files in a test's temporary directory.
type testCert struct {
	kind     keyKind
	certPath string
	keyPath  string
	certPEM  []byte
	certDER  []byte
	keyPEM   []byte
	keyDER   []byte            // PKCS #8, as in keyPEM
	secrets  map[string][]byte // byte strings only the private key holds
	pool     *x509.CertPool
}

// Keys are slow to make (RSA) and only the files need to be per test, so
// each kind is generated once per run.
var keyCache sync.Map // keyKind -> crypto.Signer

func signerFor(t testing.TB, kind keyKind) crypto.Signer {
	t.Helper()
	if k, ok := keyCache.Load(kind); ok {
		return k.(crypto.Signer)
	}
	var k crypto.Signer
	var err error
	switch kind {
	case keyECDSA:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case keyRSA:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case keyEd25519:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatalf("generating %s key: %v", kind, err)
	}
	actual, _ := keyCache.LoadOrStore(kind, k)
	return actual.(crypto.Signer)
}

// newCert makes a certificate for serverName, 127.0.0.1 and ::1 and writes
// cert.pem and key.pem (mode 0600) into a fresh temporary directory.
func newCert(t testing.TB, kind keyKind) *testCert {
	t.Helper()
	key := signerFor(t, kind)
	tmpl := certTemplate(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("creating certificate: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshaling key: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	c := &testCert{
		kind:    kind,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		certDER: der,
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		keyDER:  keyDER,
		secrets: secretsOf(key),
		pool:    x509.NewCertPool(),
	}
	c.pool.AddCert(leaf)
	dir := t.TempDir()
	c.certPath = writeFile(t, filepath.Join(dir, "cert.pem"), c.certPEM, 0o644)
	c.keyPath = writeFile(t, filepath.Join(dir, "key.pem"), c.keyPEM, 0o600)
	return c
}

func certTemplate(t testing.TB) *x509.Certificate {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Itest"}, CommonName: serverName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		DNSNames:              []string{serverName, "localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
}

// combinedPath writes the certificate and the key into one file, for
// CERTFILE with KEYFILE empty.
func (c *testCert) combinedPath(t testing.TB) string {
	return writeFile(t, filepath.Join(t.TempDir(), "both.pem"), slices.Concat(c.certPEM, c.keyPEM), 0o600)
}

func writeFile(t testing.TB, path string, data []byte, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// secretsOf lists the secret numbers of key in the byte orders they take
// in a Go process: big-endian (crypto/internal bigmod and ecdsa keep them
// so, ed25519 keeps the seed) and little-endian (math/big words on amd64).
func secretsOf(key crypto.Signer) map[string][]byte {
	s := map[string][]byte{}
	add := func(name string, n *big.Int) {
		s[name] = n.Bytes()
		s[name+"-le"] = reversed(n.Bytes())
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		d, _ := k.Bytes()
		add("d", new(big.Int).SetBytes(d))
	case *rsa.PrivateKey:
		add("d", k.D)
		add("p", k.Primes[0])
		add("q", k.Primes[1])
	case ed25519.PrivateKey:
		s["seed"] = bytes.Clone(k.Seed())
	}
	return s
}

func reversed(p []byte) []byte {
	r := bytes.Clone(p)
	slices.Reverse(r)
	return r
}
