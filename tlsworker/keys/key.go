package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
)

// maxIterations bounds PBKDF2's iteration count, so a key file cannot
// stall the key holder for minutes. OpenSSL writes 2048; password
// managers' current advice is near a million.
const maxIterations = 10_000_000

// ParseKey finds the one private key in keyPEM, which may also hold
// certificates (KEYFILE empty: the key is in CERTFILE), and returns it as
// an *rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey.
//
// passphrase is nil when none was given; an encrypted key then fails with
// ErrNeedPassphrase. A wrong passphrase fails with ErrWrongPassphrase. A
// passphrase given for a key that is not encrypted is ignored, as OpenSSL
// ignores it. ParseKey wipes the DER it decodes and decrypts; keyPEM and
// passphrase are the caller's to Wipe.
func ParseKey(keyPEM []byte, passphrase []byte) (crypto.Signer, error) {
	d := keyDecoder{passphrase: passphrase, maxIterations: maxIterations}
	return d.parse(keyPEM)
}

// keyDecoder holds what decoding one key needs besides the PEM. The fuzz
// test uses a lower iteration bound than ParseKey.
type keyDecoder struct {
	passphrase    []byte
	maxIterations int
}

func (d keyDecoder) parse(keyPEM []byte) (crypto.Signer, error) {
	blocks, err := pemBlocks(keyPEM)
	defer wipeBlocks(blocks)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	b, err := findKeyBlock(blocks)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	s, err := d.decodeBlock(b)
	if err != nil {
		return nil, fmt.Errorf("keys: %q PEM block: %w", b.Type, err)
	}
	return s, nil
}

// findKeyBlock is the only block whose type names a private key. Two keys
// in one file would leave it to chance which one is used.
func findKeyBlock(blocks []*pem.Block) (*pem.Block, error) {
	var key *pem.Block
	for _, b := range blocks {
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue // certificates, "EC PARAMETERS", ...
		}
		if key != nil {
			return nil, fmt.Errorf("more than one private key: %q and %q", key.Type, b.Type)
		}
		key = b
	}
	if key == nil {
		return nil, ErrNoKey
	}
	return key, nil
}

func (d keyDecoder) decodeBlock(b *pem.Block) (crypto.Signer, error) {
	switch b.Type {
	case "RSA PRIVATE KEY", "EC PRIVATE KEY":
		return d.decodeLegacy(b)
	case "PRIVATE KEY":
		if len(b.Headers) != 0 {
			return nil, fmt.Errorf("%w: PEM headers in a PKCS#8 key", ErrMalformedPEM)
		}
		return parsePKCS8(b.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		if len(b.Headers) != 0 {
			return nil, fmt.Errorf("%w: PEM headers in a PKCS#8 key", ErrMalformedPEM)
		}
		return d.decodePKCS8Encrypted(b.Bytes)
	}
	return nil, fmt.Errorf("%w key format", ErrUnsupported)
}

// decodeLegacy reads the formats OpenSSL calls "traditional": PKCS#1 and
// SEC1, optionally with Proc-Type/DEK-Info encryption.
func (d keyDecoder) decodeLegacy(b *pem.Block) (crypto.Signer, error) {
	dek, err := parseLegacyHeaders(b.Headers)
	if err != nil {
		return nil, err
	}
	if dek == nil {
		return parseTraditional(b.Type, b.Bytes)
	}
	if d.passphrase == nil {
		return nil, ErrNeedPassphrase
	}
	der, err := dek.decrypt(b.Bytes, d.passphrase)
	if err != nil {
		return nil, err
	}
	defer Wipe(der)
	s, err := parseTraditional(b.Type, der)
	if err != nil {
		return nil, fmt.Errorf("%w (or a damaged key): %w", ErrWrongPassphrase, err)
	}
	return s, nil
}

func parseTraditional(pemType string, der []byte) (crypto.Signer, error) {
	if pemType == "RSA PRIVATE KEY" {
		k, err := x509.ParsePKCS1PrivateKey(der)
		if err != nil {
			return nil, err
		}
		return k, nil
	}
	k, err := x509.ParseECPrivateKey(der)
	if err != nil {
		return nil, err
	}
	return k, nil
}

func parsePKCS8(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("%w key type %T: it cannot sign", ErrUnsupported, k)
}

// describeKey names a public key's algorithm and size for error messages.
func describeKey(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d-bit", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

func wipeBlocks(blocks []*pem.Block) {
	for _, b := range blocks {
		Wipe(b.Bytes)
	}
}
