package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/md5"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"strings"
)

// cbcCipher is a block cipher in CBC mode as OpenSSL's legacy PEM
// encryption names it and as PBES2 identifies it.
type cbcCipher struct {
	name     string
	oid      asn1.ObjectIdentifier
	keyLen   int
	ivLen    int
	newBlock func(key []byte) (cipher.Block, error)
}

var cbcCiphers = []cbcCipher{
	{"DES-CBC", asn1.ObjectIdentifier{1, 3, 14, 3, 2, 7}, 8, des.BlockSize, des.NewCipher},
	{"DES-EDE3-CBC", asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}, 24, des.BlockSize, des.NewTripleDESCipher},
	{"AES-128-CBC", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}, 16, aes.BlockSize, aes.NewCipher},
	{"AES-192-CBC", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}, 24, aes.BlockSize, aes.NewCipher},
	{"AES-256-CBC", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}, 32, aes.BlockSize, aes.NewCipher},
}

func cipherByName(name string) (cbcCipher, bool) {
	for _, c := range cbcCiphers {
		if c.name == name {
			return c, true
		}
	}
	return cbcCipher{}, false
}

// dekInfo is a parsed DEK-Info header: "CIPHER,HEXIV".
type dekInfo struct {
	cipher cbcCipher
	iv     []byte
}

// parseLegacyHeaders returns the encryption a traditional PEM block's
// headers describe, or nil when it is not encrypted. The only headers
// OpenSSL writes are Proc-Type and DEK-Info, and they come together.
func parseLegacyHeaders(h map[string]string) (*dekInfo, error) {
	for name := range h {
		if name != "Proc-Type" && name != "DEK-Info" {
			return nil, fmt.Errorf("%w: unexpected PEM header %q", ErrMalformedPEM, name)
		}
	}
	proc, hasProc := h["Proc-Type"]
	dek, hasDEK := h["DEK-Info"]
	switch {
	case !hasProc && !hasDEK:
		return nil, nil
	case proc != "4,ENCRYPTED":
		return nil, fmt.Errorf("%w Proc-Type %q", ErrUnsupported, proc)
	case !hasDEK:
		return nil, fmt.Errorf("%w: Proc-Type without DEK-Info", ErrMalformedPEM)
	}
	return parseDEKInfo(dek)
}

func parseDEKInfo(s string) (*dekInfo, error) {
	name, ivHex, ok := strings.Cut(s, ",")
	c, known := cipherByName(name)
	if !ok || !known {
		return nil, fmt.Errorf("%w DEK-Info %q", ErrUnsupported, s)
	}
	iv, err := hex.DecodeString(ivHex)
	if err != nil || len(iv) != c.ivLen {
		return nil, fmt.Errorf("%w: bad IV in DEK-Info %q", ErrMalformedPEM, s)
	}
	return &dekInfo{cipher: c, iv: iv}, nil
}

// decrypt undoes OpenSSL's PEM encryption, whose key is EVP_BytesToKey
// with MD5, one round, and the IV's first 8 bytes as salt.
func (d *dekInfo) decrypt(data, passphrase []byte) ([]byte, error) {
	key := evpBytesToKey(passphrase, d.iv[:8], d.cipher.keyLen)
	defer Wipe(key)
	return decryptCBC(d.cipher, key, d.iv, data)
}

// evpBytesToKey is OpenSSL's EVP_BytesToKey with MD5 and one iteration:
// D_i = MD5(D_{i-1} || passphrase || salt), concatenated to keyLen bytes.
func evpBytesToKey(passphrase, salt []byte, keyLen int) []byte {
	key := make([]byte, 0, keyLen+md5.Size)
	var prev []byte
	for len(key) < keyLen {
		h := md5.New()
		h.Write(prev)
		h.Write(passphrase)
		h.Write(salt)
		key = h.Sum(key)
		prev = key[len(key)-md5.Size:]
	}
	Wipe(key[keyLen:])
	return key[:keyLen]
}

// decryptCBC decrypts data into a new buffer and removes the PKCS#7
// padding. Bad padding almost always means a wrong passphrase.
func decryptCBC(c cbcCipher, key, iv, data []byte) ([]byte, error) {
	if len(data) == 0 || len(data)%c.ivLen != 0 {
		return nil, fmt.Errorf("%w: encrypted data is %d bytes, not a multiple of %s's block", ErrMalformedPEM, len(data), c.name)
	}
	block, err := c.newBlock(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.name, err)
	}
	plain := make([]byte, len(data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, data)
	n, ok := unpad(plain, c.ivLen)
	if !ok {
		Wipe(plain)
		return nil, fmt.Errorf("%w (bad padding after decryption)", ErrWrongPassphrase)
	}
	return plain[:n], nil
}

// unpad is the length of plain without its PKCS#7 padding.
func unpad(plain []byte, blockSize int) (int, bool) {
	p := int(plain[len(plain)-1])
	if p == 0 || p > blockSize {
		return 0, false
	}
	for _, b := range plain[len(plain)-p:] {
		if int(b) != p {
			return 0, false
		}
	}
	return len(plain) - p, true
}
