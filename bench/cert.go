package bench

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// keyType is the kind of the server's key.
type keyType int

const (
	ecdsaP256 keyType = iota
	rsa2048
)

func (k keyType) String() string {
	if k == rsa2048 {
		return "RSA-2048"
	}
	return "ECDSA P-256"
}

// certFiles is a certificate and its key, as PEM files, and the leaf's
// DER for the clients to pin.
type certFiles struct {
	Cert, Key string
	Leaf      []byte
}

// makeCert writes a self-signed certificate for localhost, valid for a
// day, into dir.
func makeCert(dir string, k keyType) (*certFiles, error) {
	priv, err := newKey(k)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"sslbench"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return nil, fmt.Errorf("making a %v certificate: %w", k, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	name := map[keyType]string{ecdsaP256: "ecdsa", rsa2048: "rsa"}[k]
	c := &certFiles{Cert: filepath.Join(dir, name+"-cert.pem"), Key: filepath.Join(dir, name+"-key.pem"), Leaf: der}
	if err := writePEM(c.Cert, "CERTIFICATE", der); err != nil {
		return nil, err
	}
	return c, writePEM(c.Key, "PRIVATE KEY", keyDER)
}

func newKey(k keyType) (crypto.Signer, error) {
	if k == rsa2048 {
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
