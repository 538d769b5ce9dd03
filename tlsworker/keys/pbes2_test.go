package keys

import (
	"crypto/aes"
	"crypto/ed25519"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"hash"
	"testing"
)

// pbes2Spec describes a PBES2 envelope to build, with AES-128-CBC; the
// zero value is PBKDF2-HMAC-SHA256, 10 rounds, as OpenSSL writes it.
type pbes2Spec struct {
	prf        asn1.ObjectIdentifier // nil: hmacWithSHA256; omitPRF: leave it out
	prfHash    func() hash.Hash
	prfParams  *asn1.RawValue // nil: NULL
	keyLength  int            // written into the parameters when not 0
	iterations int            // 0: 10
	ivLen      int            // IV bytes written; 0: all 16
	kdf        asn1.ObjectIdentifier
	trailing   []byte // after the EncryptedPrivateKeyInfo
}

var omitPRF = asn1.ObjectIdentifier{}

// encrypt builds the envelope with pass around der, independently of the
// code under test but for the shared ASN.1 structs.
func (s pbes2Spec) encrypt(t testing.TB, der, pass []byte) []byte {
	s = s.withDefaults()
	salt, iv := randomBytes(t, 8), randomBytes(t, aes.BlockSize)
	key, err := pbkdf2.Key(s.prfHash, string(pass), salt, s.iterations, 16)
	if err != nil {
		t.Fatal(err)
	}
	kdfParams := pbkdf2Params{Salt: salt, Iterations: s.iterations, KeyLength: s.keyLength}
	if len(s.prf) != 0 {
		kdfParams.PRF = pkix.AlgorithmIdentifier{Algorithm: s.prf, Parameters: *s.prfParams}
	}
	params := pbes2Params{
		KDF:    pkix.AlgorithmIdentifier{Algorithm: s.kdf, Parameters: rawDER(t, kdfParams)},
		Cipher: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}, Parameters: rawDER(t, iv[:s.ivLen])},
	}
	info := encryptedPrivateKeyInfo{
		Algorithm: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}, Parameters: rawDER(t, params)},
		Data:      encryptCBC(t, key, iv, der),
	}
	out := append(rawDER(t, info).FullBytes, s.trailing...)
	return pemBlock("ENCRYPTED PRIVATE KEY", nil, out)
}

func (s pbes2Spec) withDefaults() pbes2Spec {
	if s.prf == nil {
		s.prf, s.prfHash = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}, sha256.New
	}
	if len(s.prf) == 0 {
		s.prfHash = sha1.New
	}
	if s.prfParams == nil {
		s.prfParams = &asn1.NullRawValue
	}
	if s.iterations == 0 {
		s.iterations = 10
	}
	if s.ivLen == 0 {
		s.ivLen = aes.BlockSize
	}
	if s.kdf == nil {
		s.kdf = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	}
	return s
}

func TestPBES2Parameters(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der := mustPKCS8(t, key)
	octet := asn1.RawValue{FullBytes: []byte{4, 0}}
	tests := []struct {
		name string
		spec pbes2Spec
		want error
	}{
		{"defaults", pbes2Spec{}, nil},
		{"PRF left out means SHA-1", pbes2Spec{prf: omitPRF}, nil},
		{"PRF without parameters", pbes2Spec{prfParams: &asn1.RawValue{}}, nil},
		{"SHA-512", pbes2Spec{prf: asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}, prfHash: sha512.New}, nil},
		{"key length given", pbes2Spec{keyLength: 16}, nil},
		{"wrong key length", pbes2Spec{keyLength: 32}, ErrMalformedPEM},
		{"PRF with parameters", pbes2Spec{prfParams: &octet}, ErrMalformedPEM},
		{"unknown PRF", pbes2Spec{prf: asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 12}, prfHash: sha512.New512_224}, ErrUnsupported},
		{"unknown KDF", pbes2Spec{kdf: asn1.ObjectIdentifier{1, 2, 3}}, ErrUnsupported},
		{"short IV", pbes2Spec{ivLen: 8}, ErrMalformedPEM},
		{"trailing bytes", pbes2Spec{trailing: []byte{0}}, errAny},
	}
	for _, tt := range tests {
		keyPEM := tt.spec.encrypt(t, der, []byte("pw"))
		s, err := ParseKey(keyPEM, []byte("pw"))
		switch {
		case tt.want == nil && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want == nil && !key.Equal(s):
			t.Errorf("%s: got another key", tt.name)
		case tt.want == errAny && err == nil:
			t.Errorf("%s: accepted", tt.name)
		case tt.want != nil && tt.want != errAny && !errors.Is(err, tt.want):
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
}
