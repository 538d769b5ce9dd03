package keys

import (
	"bytes"
	"crypto"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"hash"
)

// The ASN.1 of PKCS#8 encryption with PBES2 (RFC 8018).

type encryptedPrivateKeyInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Data      []byte
}

type pbes2Params struct {
	KDF    pkix.AlgorithmIdentifier
	Cipher pkix.AlgorithmIdentifier
}

// pbkdf2Params leaves out the salt's "otherSource" choice, which nothing
// writes; it fails to decode as an OCTET STRING.
type pbkdf2Params struct {
	Salt       []byte
	Iterations int
	KeyLength  int                      `asn1:"optional"`
	PRF        pkix.AlgorithmIdentifier `asn1:"optional"`
}

var (
	oidPBES2    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}
	oidHMACSHA1 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
)

// prfs are PBKDF2's pseudo-random functions; hmacWithSHA1 is the default
// when the PRF is absent.
var prfs = []struct {
	oid  asn1.ObjectIdentifier
	hash func() hash.Hash
}{
	{oidHMACSHA1, sha1.New},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}, sha256.New224},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}, sha256.New},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}, sha512.New384},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}, sha512.New},
}

// pbes2 is what decrypting one PBES2-encrypted key needs besides the
// passphrase.
type pbes2 struct {
	cipher     cbcCipher
	iv         []byte
	prf        func() hash.Hash
	salt       []byte
	iterations int
	data       []byte
}

// decodePKCS8Encrypted decrypts an "ENCRYPTED PRIVATE KEY" and parses the
// PKCS#8 inside. An unsupported scheme is reported before a missing
// passphrase, since a passphrase would not help.
func (d keyDecoder) decodePKCS8Encrypted(der []byte) (crypto.Signer, error) {
	e, err := d.parsePBES2(der)
	if err != nil {
		return nil, err
	}
	if d.passphrase == nil {
		return nil, ErrNeedPassphrase
	}
	plain, err := e.decrypt(d.passphrase)
	if err != nil {
		return nil, err
	}
	defer Wipe(plain)
	s, err := parsePKCS8(plain)
	if err != nil {
		return nil, fmt.Errorf("%w (or a damaged key): %w", ErrWrongPassphrase, err)
	}
	return s, nil
}

func (d keyDecoder) parsePBES2(der []byte) (pbes2, error) {
	var info encryptedPrivateKeyInfo
	if err := unmarshalDER(der, &info); err != nil {
		return pbes2{}, fmt.Errorf("EncryptedPrivateKeyInfo: %w", err)
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return pbes2{}, fmt.Errorf("%w encryption scheme %s (only PBES2 is supported)", ErrUnsupported, info.Algorithm.Algorithm)
	}
	var p pbes2Params
	if err := unmarshalDER(info.Algorithm.Parameters.FullBytes, &p); err != nil {
		return pbes2{}, fmt.Errorf("PBES2 parameters: %w", err)
	}
	e := pbes2{data: info.Data}
	var err error
	if e.cipher, e.iv, err = pbes2Cipher(p.Cipher); err != nil {
		return pbes2{}, err
	}
	if err := d.parseKDF(p.KDF, &e); err != nil {
		return pbes2{}, err
	}
	return e, nil
}

// decrypt derives the key with PBKDF2 and decrypts. crypto/pbkdf2 takes
// the passphrase as a string: that copy cannot be wiped.
func (e pbes2) decrypt(passphrase []byte) ([]byte, error) {
	key, err := pbkdf2.Key(e.prf, string(passphrase), e.salt, e.iterations, e.cipher.keyLen)
	if err != nil {
		return nil, fmt.Errorf("PBKDF2: %w", err)
	}
	defer Wipe(key)
	return decryptCBC(e.cipher, key, e.iv, e.data)
}

// pbes2Cipher finds the cipher and its IV, whose parameter is an OCTET
// STRING for every CBC cipher PBES2 defines.
func pbes2Cipher(alg pkix.AlgorithmIdentifier) (cbcCipher, []byte, error) {
	for _, c := range cbcCiphers {
		if !alg.Algorithm.Equal(c.oid) {
			continue
		}
		var iv []byte
		if err := unmarshalDER(alg.Parameters.FullBytes, &iv); err != nil || len(iv) != c.ivLen {
			return cbcCipher{}, nil, fmt.Errorf("%w: bad %s IV", ErrMalformedPEM, c.name)
		}
		return c, iv, nil
	}
	return cbcCipher{}, nil, fmt.Errorf("%w PBES2 cipher %s", ErrUnsupported, alg.Algorithm)
}

// parseKDF checks the key derivation function and fills in its part of e.
func (d keyDecoder) parseKDF(kdf pkix.AlgorithmIdentifier, e *pbes2) error {
	if kdf.Algorithm.Equal(oidScrypt) {
		return fmt.Errorf("%w key derivation scrypt (use openssl pkcs8 -topk8 -v2 aes-256-cbc)", ErrUnsupported)
	}
	if !kdf.Algorithm.Equal(oidPBKDF2) {
		return fmt.Errorf("%w key derivation %s", ErrUnsupported, kdf.Algorithm)
	}
	var p pbkdf2Params
	if err := unmarshalDER(kdf.Parameters.FullBytes, &p); err != nil {
		return fmt.Errorf("PBKDF2 parameters: %w", err)
	}
	if p.Iterations < 1 || p.Iterations > d.maxIterations {
		return fmt.Errorf("%w PBKDF2 iteration count %d (at most %d)", ErrUnsupported, p.Iterations, d.maxIterations)
	}
	if p.KeyLength != 0 && p.KeyLength != e.cipher.keyLen {
		return fmt.Errorf("%w: PBKDF2 key length %d for a %d-byte cipher key", ErrMalformedPEM, p.KeyLength, e.cipher.keyLen)
	}
	prf, err := prfHash(p.PRF)
	if err != nil {
		return err
	}
	e.prf, e.salt, e.iterations = prf, p.Salt, p.Iterations
	return nil
}

// prfHash is the hash of an HMAC PRF; its parameters must be absent or
// NULL.
func prfHash(prf pkix.AlgorithmIdentifier) (func() hash.Hash, error) {
	if len(prf.Algorithm) == 0 {
		return sha1.New, nil
	}
	raw := prf.Parameters.FullBytes
	if len(raw) != 0 && !bytes.Equal(raw, asn1.NullBytes) {
		return nil, fmt.Errorf("%w: parameters for PBKDF2 PRF %s", ErrMalformedPEM, prf.Algorithm)
	}
	for _, p := range prfs {
		if prf.Algorithm.Equal(p.oid) {
			return p.hash, nil
		}
	}
	return nil, fmt.Errorf("%w PBKDF2 PRF %s", ErrUnsupported, prf.Algorithm)
}

// unmarshalDER decodes der into v and refuses trailing bytes.
func unmarshalDER(der []byte, v any) error {
	rest, err := asn1.Unmarshal(der, v)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d trailing bytes after DER", len(rest))
	}
	return nil
}
