package keys

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"testing"
)

// fuzzIterations keeps PBKDF2 cheap, so the fuzzer explores parsing
// rather than hashing.
const fuzzIterations = 1000

// FuzzParseKey: no input may panic, an answer is a key or an error, never
// both or neither, a key returned must sign, and the input is left as it
// was. The checked-in corpus holds no key material; the keys below are
// made afresh on every run.
func FuzzParseKey(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s.keyPEM, s.pass)
	}
	f.Fuzz(fuzzParseKey)
}

// TestFuzzSeeds checks that the seeds are what they claim, so the fuzzer
// starts from keys that parse and from the errors next to them.
func TestFuzzSeeds(t *testing.T) {
	for i, s := range fuzzSeeds(t) {
		k, err := ParseKey(s.keyPEM, s.pass)
		if !errors.Is(err, s.want) {
			t.Errorf("seed %d: got %v, want %v", i, err, s.want)
		}
		if k != nil {
			checkSignsItself(t, k)
		}
	}
}

func fuzzParseKey(t *testing.T, keyPEM, pass []byte) {
	if len(pass) == 0 {
		pass = nil // the fuzzer cannot make nil; TestParseKeyFormats tries an empty passphrase
	}
	orig := bytes.Clone(keyPEM)
	s, err := keyDecoder{pass, fuzzIterations}.parse(keyPEM)
	if (s == nil) == (err == nil) {
		t.Fatalf("got key %T and error %v", s, err)
	}
	if !bytes.Equal(orig, keyPEM) {
		t.Fatalf("input changed")
	}
	if s != nil {
		checkSignsItself(t, s)
	}
}

// checkSignsItself signs with s and verifies with s.Public().
func checkSignsItself(t testing.TB, s crypto.Signer) {
	msg := []byte("fuzz")
	digest := sha256.Sum256(msg)
	var ok bool
	switch k := s.(type) {
	case ed25519.PrivateKey:
		ok = ed25519.Verify(k.Public().(ed25519.PublicKey), msg, ed25519.Sign(k, msg))
	case *ecdsa.PrivateKey:
		sig, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
		ok = err == nil && ecdsa.VerifyASN1(&k.PublicKey, digest[:], sig)
	case *rsa.PrivateKey:
		sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:])
		ok = err == nil && rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, digest[:], sig) == nil
	default:
		t.Fatalf("unexpected key type %T", s)
	}
	if !ok {
		t.Fatalf("%s key does not sign", describeKey(s.Public()))
	}
}

type fuzzSeed struct {
	keyPEM, pass []byte
	want         error // what ParseKey says
}

// fuzzSeeds makes one key of each kind and format in Go, with the right
// and a wrong passphrase for the encrypted ones.
func fuzzSeeds(f testing.TB) []fuzzSeed {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		f.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		f.Fatal(err)
	}
	edDER := mustPKCS8(f, ed)
	pass := []byte("pw")
	return []fuzzSeed{
		{pemBlock("EC PRIVATE KEY", nil, sec1), nil, nil},
		{pemBlock("PRIVATE KEY", nil, mustPKCS8(f, ec)), nil, nil},
		{pemBlock("PRIVATE KEY", nil, edDER), nil, nil},
		{pemBlock("RSA PRIVATE KEY", nil, x509.MarshalPKCS1PrivateKey(rk)), nil, nil},
		{encryptLegacy(f, "EC PRIVATE KEY", sec1, pass), pass, nil},
		{encryptLegacy(f, "EC PRIVATE KEY", sec1, pass), []byte("wrong"), ErrWrongPassphrase},
		{encryptPBES2(f, edDER, pass), pass, nil},
		{encryptPBES2(f, edDER, pass), []byte("wrong"), ErrWrongPassphrase},
		{encryptPBES2(f, edDER, pass), nil, ErrNeedPassphrase},
	}
}

func mustPKCS8(f testing.TB, k any) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		f.Fatal(err)
	}
	return der
}

func pemBlock(typ string, headers map[string]string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Headers: headers, Bytes: der})
}

// encryptCBC pads der as PKCS#7 and encrypts it with AES-128-CBC.
func encryptCBC(f testing.TB, key, iv, der []byte) []byte {
	b, err := aes.NewCipher(key)
	if err != nil {
		f.Fatal(err)
	}
	n := aes.BlockSize - len(der)%aes.BlockSize
	out := append(bytes.Clone(der), bytes.Repeat([]byte{byte(n)}, n)...)
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(out, out)
	return out
}

// encryptLegacy writes der as OpenSSL's legacy AES-128-CBC PEM encryption.
func encryptLegacy(f testing.TB, typ string, der, pass []byte) []byte {
	iv := randomBytes(f, 16)
	data := encryptCBC(f, evpBytesToKey(pass, iv[:8], 16), iv, der)
	headers := map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC," + hex.EncodeToString(iv)}
	return pemBlock(typ, headers, data)
}

// encryptPBES2 writes der as a PKCS#8 EncryptedPrivateKeyInfo: PBES2 with
// PBKDF2-HMAC-SHA256 and AES-128-CBC.
func encryptPBES2(f testing.TB, der, pass []byte) []byte {
	return pbes2Spec{}.encrypt(f, der, pass)
}

func rawDER(f testing.TB, v any) asn1.RawValue {
	der, err := asn1.Marshal(v)
	if err != nil {
		f.Fatal(err)
	}
	return asn1.RawValue{FullBytes: der}
}

func randomBytes(f testing.TB, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
