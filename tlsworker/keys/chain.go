package keys

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
)

// Chain is a certificate chain, leaf first, as DER.
type Chain [][]byte

// ParseChain parses every "CERTIFICATE" PEM block in certPEM (CERTFILE,
// leaf first) and then appends those of chainPEM (CERTCHAINFILE; nil when
// there is none). Other PEM blocks, such as the private key when KEYFILE
// is empty, are skipped. certPEM must hold at least one certificate, and a
// non-nil chainPEM too. A certificate already in the chain is not added
// again, so CERTFILE may be a full chain that CERTCHAINFILE repeats.
func ParseChain(certPEM, chainPEM []byte) (Chain, error) {
	c, err := appendCertificates(nil, certPEM)
	if err != nil {
		return nil, fmt.Errorf("keys: certificate file: %w", err)
	}
	if chainPEM == nil {
		return c, nil
	}
	c, err = appendCertificates(c, chainPEM)
	if err != nil {
		return nil, fmt.Errorf("keys: certificate chain file: %w", err)
	}
	return c, nil
}

// appendCertificates appends the certificates of data to c; data must
// hold at least one.
func appendCertificates(c Chain, data []byte) (Chain, error) {
	blocks, err := pemBlocks(data)
	if err != nil {
		return nil, err
	}
	found := 0
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", i+1, err)
		}
		found++
		if !c.contains(b.Bytes) {
			c = append(c, b.Bytes)
		}
	}
	if found == 0 {
		return nil, ErrNoCertificate
	}
	return c, nil
}

func (c Chain) contains(der []byte) bool {
	for _, have := range c {
		if bytes.Equal(have, der) {
			return true
		}
	}
	return false
}

// Leaf parses the chain's first certificate.
func (c Chain) Leaf() (*x509.Certificate, error) {
	if len(c) == 0 {
		return nil, fmt.Errorf("keys: %w", ErrNoCertificate)
	}
	leaf, err := x509.ParseCertificate(c[0])
	if err != nil {
		return nil, fmt.Errorf("keys: leaf certificate: %w", err)
	}
	return leaf, nil
}

// TLSCertificate is the chain with s as its key, ready for tls.Config.
// s may be a local key or one that asks the key holder to sign.
func (c Chain) TLSCertificate(s crypto.Signer) (tls.Certificate, error) {
	leaf, err := c.Leaf()
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := matchLeaf(leaf, s); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: c, PrivateKey: s, Leaf: leaf}, nil
}

// Match checks that the signer's public key is the one in the chain's
// leaf certificate.
func Match(c Chain, s crypto.Signer) error {
	leaf, err := c.Leaf()
	if err != nil {
		return err
	}
	return matchLeaf(leaf, s)
}

func matchLeaf(leaf *x509.Certificate, s crypto.Signer) error {
	pub, ok := s.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return fmt.Errorf("keys: %w: key is %s, certificate %q has %s", ErrMismatch,
			describeKey(s.Public()), leaf.Subject.String(), describeKey(leaf.PublicKey))
	}
	return nil
}
