package tlsworker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
)

// issued is a certificate and the key that can sign under it.
type issued struct {
	der  []byte
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func issue(t *testing.T, cn string, parent *issued, ca bool, eku x509.ExtKeyUsage) *issued {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: ca, BasicConstraintsValid: true}
	if ca {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	} else {
		tmpl.KeyUsage, tmpl.ExtKeyUsage = x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{eku}
	}
	signerCert, signerKey := tmpl, key
	if parent != nil {
		signerCert, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &issued{der: der, cert: c, key: key}
}

// TestClientVerifier: a chain to a trusted CA verifies within the
// depth; no certificate, another CA, a server-only certificate and a
// chain deeper than VERIFYDEPTH each fail with their reason.
func TestClientVerifier(t *testing.T) {
	root := issue(t, "root", nil, true, 0)
	inter := issue(t, "intermediate", root, true, 0)
	direct := issue(t, "direct", root, false, x509.ExtKeyUsageClientAuth)
	deep := issue(t, "deep", inter, false, x509.ExtKeyUsageClientAuth)
	serverOnly := issue(t, "server", root, false, x509.ExtKeyUsageServerAuth)
	stranger := issue(t, "stranger", issue(t, "other root", nil, true, 0), false, x509.ExtKeyUsageClientAuth)
	v, err := newClientVerifier(&protocol.WorkerConfig{ClientCert: protocol.ClientCertRequire, ClientCAs: [][]byte{root.der}, VerifyDepth: 1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := v.verify([][]byte{direct.der}, now); err != nil {
		t.Errorf("a client certificate signed by the CA: %v", err)
	}
	for name, tc := range map[string]struct {
		chain [][]byte
		want  string
	}{
		"none":         {nil, "no client certificate"},
		"another CA":   {[][]byte{stranger.der}, "unknown authority"},
		"server usage": {[][]byte{serverOnly.der}, "incompatible key usage"},
		"too deep":     {[][]byte{deep.der, inter.der}, "chain longer than VERIFYDEPTH 1"},
		"garbage":      {[][]byte{[]byte("not DER")}, "malformed certificate"},
	} {
		if err := v.verify(tc.chain, now); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tc.want)
		}
	}
	v.depth = 2
	if err := v.verify([][]byte{deep.der, inter.der}, now); err != nil {
		t.Errorf("depth 2 with one intermediate: %v", err)
	}
}
