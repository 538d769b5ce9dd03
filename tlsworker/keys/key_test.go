package keys

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/pem"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// A keyFormat makes dir/key.pem with a few openssl commands.
type keyFormat struct {
	name  string
	cmds  [][]string
	pass  string // "" when key.pem is not encrypted
	block string // the key's PEM type
	kind  string
}

const (
	genRSA1  = "genrsa -traditional -out plain.pem 2048"
	genEC256 = "ecparam -genkey -name prime256v1 -out plain.pem"
	genEC384 = "ecparam -genkey -name secp384r1 -noout -out plain.pem"
	genEd    = "genpkey -algorithm ed25519 -out plain.pem"
)

var keyFormats = []keyFormat{
	{"rsa pkcs1", cmds("genrsa -traditional -out key.pem 2048"), "", "RSA PRIVATE KEY", "rsa2048"},
	{"rsa pkcs8", cmds("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out key.pem"), "", "PRIVATE KEY", "rsa2048"},
	{"p256 sec1 with EC PARAMETERS", cmds("ecparam -genkey -name prime256v1 -out key.pem"), "", "EC PRIVATE KEY", "p256"},
	{"p384 sec1", cmds("ecparam -genkey -name secp384r1 -noout -out key.pem"), "", "EC PRIVATE KEY", "p384"},
	{"p256 pkcs8", cmds("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem"), "", "PRIVATE KEY", "p256"},
	{"p384 pkcs8", cmds("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out key.pem"), "", "PRIVATE KEY", "p384"},
	{"ed25519", cmds("genpkey -algorithm ed25519 -out key.pem"), "", "PRIVATE KEY", "ed25519"},

	{"rsa legacy aes256", cmds(genRSA1, "rsa -in plain.pem -aes256 -traditional -passout pass:secret -out key.pem"),
		"secret", "RSA PRIVATE KEY", "rsa2048"},
	{"rsa legacy des3", cmds(genRSA1, "rsa -in plain.pem -des3 -traditional -passout pass:secret -out key.pem"),
		"secret", "RSA PRIVATE KEY", "rsa2048"},
	{"p256 legacy aes128", cmds(genEC256, "ec -in plain.pem -aes128 -passout pass:secret -out key.pem"),
		"secret", "EC PRIVATE KEY", "p256"},
	{"p384 legacy aes192", cmds(genEC384, "ec -in plain.pem -aes192 -passout pass:secret -out key.pem"),
		"secret", "EC PRIVATE KEY", "p384"},

	{"rsa pkcs8 aes256 sha256", cmds(genRSA1,
		"pkcs8 -topk8 -in plain.pem -v2 aes-256-cbc -v2prf hmacWithSHA256 -passout pass:secret -out key.pem"),
		"secret", "ENCRYPTED PRIVATE KEY", "rsa2048"},
	{"p256 pkcs8 aes128 default prf", cmds(genEC256, "pkcs8 -topk8 -in plain.pem -v2 aes-128-cbc -passout pass:secret -out key.pem"),
		"secret", "ENCRYPTED PRIVATE KEY", "p256"},
	{"ed25519 pkcs8 aes192 sha1 (prf omitted)", cmds(genEd,
		"pkcs8 -topk8 -in plain.pem -v2 aes-192-cbc -v2prf hmacWithSHA1 -passout pass:secret -out key.pem"),
		"secret", "ENCRYPTED PRIVATE KEY", "ed25519"},
	{"p384 pkcs8 aes256 sha512", cmds(genEC384,
		"pkcs8 -topk8 -in plain.pem -v2 aes-256-cbc -v2prf hmacWithSHA512 -passout pass:secret -out key.pem"),
		"secret", "ENCRYPTED PRIVATE KEY", "p384"},
	{"ed25519 pkcs8 aes128 sha224", cmds(genEd,
		"pkcs8 -topk8 -in plain.pem -v2 aes-128-cbc -v2prf hmacWithSHA224 -passout pass:secret -out key.pem"),
		"secret", "ENCRYPTED PRIVATE KEY", "ed25519"},
	{"ed25519 pkcs8 aes256 sha384 100000 rounds", cmds(genEd,
		"pkcs8 -topk8 -in plain.pem -v2 aes-256-cbc -v2prf hmacWithSHA384 -iter 100000 -passout pass:secret -out key.pem"),
		"secret", "ENCRYPTED PRIVATE KEY", "ed25519"},
	{"ed25519 pkcs8 des3", cmds(genEd, "pkcs8 -topk8 -in plain.pem -v2 des3 -passout pass:secret -out key.pem"),
		"secret", "ENCRYPTED PRIVATE KEY", "ed25519"},
	{"p256 genpkey aes256", cmds("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 -pass pass:secret -out key.pem"),
		"secret", "ENCRYPTED PRIVATE KEY", "p256"},
	{"ed25519 genpkey aes256 long passphrase", cmds("genpkey -algorithm ed25519 -aes256 -pass pass:" + longPass + " -out key.pem"),
		longPass, "ENCRYPTED PRIVATE KEY", "ed25519"},
}

// longPass is longer than any hash's block, so HMAC hashes it first.
var longPass = strings.Repeat("correct-horse-battery-staple-", 8)

func cmds(lines ...string) [][]string {
	var out [][]string
	for _, l := range lines {
		out = append(out, strings.Fields(l))
	}
	return out
}

// makeKey runs f's commands in a new directory, adds cert.pem for the
// key, and returns the directory.
func makeKey(t *testing.T, f keyFormat) string {
	t.Helper()
	needOpenSSL(t)
	dir := t.TempDir()
	for _, c := range f.cmds {
		openssl(t, dir, c...)
	}
	selfSigned(t, dir, "key.pem", f.pass, "cert.pem")
	return dir
}

func TestParseKeyFormats(t *testing.T) {
	for _, f := range keyFormats {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			dir := makeKey(t, f)
			keyPEM := readTestFile(t, dir, "key.pem")
			checkKeyBlock(t, keyPEM, f)
			s, err := ParseKey(keyPEM, passOrNil(f.pass))
			if err != nil {
				t.Fatalf("ParseKey: %v", err)
			}
			if got := kind(s); got != f.kind {
				t.Errorf("key is %s, want %s", got, f.kind)
			}
			checkSigns(t, s, leafOf(t, dir, "cert.pem"))
			chain, err := LoadChain(filepath.Join(dir, "cert.pem"), "")
			if err != nil {
				t.Fatal(err)
			}
			if err := Match(chain, s); err != nil {
				t.Errorf("Match: %v", err)
			}
			checkPassphraseErrors(t, keyPEM, f.pass != "")
		})
	}
}

// checkKeyBlock makes sure openssl wrote the format the case is about.
func checkKeyBlock(t *testing.T, keyPEM []byte, f keyFormat) {
	t.Helper()
	var last *pem.Block
	for b, rest := pem.Decode(keyPEM); b != nil; b, rest = pem.Decode(rest) {
		last = b
	}
	if last == nil || last.Type != f.block {
		t.Fatalf("openssl wrote %v, want a %q block", last, f.block)
	}
	legacy := last.Headers["Proc-Type"] == "4,ENCRYPTED"
	if want := f.pass != "" && f.block != "ENCRYPTED PRIVATE KEY"; legacy != want {
		t.Fatalf("legacy encryption is %v, want %v", legacy, want)
	}
}

func passOrNil(p string) []byte {
	if p == "" {
		return nil
	}
	return []byte(p)
}

// checkPassphraseErrors tries keyPEM without a passphrase and with wrong
// ones; an unencrypted key must ignore any passphrase.
func checkPassphraseErrors(t *testing.T, keyPEM []byte, encrypted bool) {
	t.Helper()
	tries := []struct {
		pass []byte
		want error
	}{
		{nil, ErrNeedPassphrase},
		{[]byte{}, ErrWrongPassphrase},
		{[]byte("wrong"), ErrWrongPassphrase},
		{[]byte("secret\n"), ErrWrongPassphrase},
	}
	for _, try := range tries {
		_, err := ParseKey(keyPEM, try.pass)
		switch {
		case !encrypted && err != nil:
			t.Errorf("unencrypted key with passphrase %q: %v", try.pass, err)
		case encrypted && !errors.Is(err, try.want):
			t.Errorf("passphrase %q: got %v, want %v", try.pass, err, try.want)
		}
	}
}

func TestParseKeyUnsupported(t *testing.T) {
	needOpenSSL(t)
	tests := []struct {
		name string
		cmds [][]string
	}{
		{"scrypt", cmds(genEd, "pkcs8 -topk8 -in plain.pem -scrypt -passout pass:secret -out key.pem")},
		{"pkcs12 pbe", cmds(genEd, "pkcs8 -topk8 -in plain.pem -v1 PBE-SHA1-3DES -passout pass:secret -out key.pem")},
		{"pbes2 aes-256-ofb", cmds(genEd, "pkcs8 -topk8 -in plain.pem -v2 aes-256-ofb -passout pass:secret -out key.pem")},
		{"x25519 cannot sign", cmds("genpkey -algorithm x25519 -out key.pem")},
		{"ed448", cmds("genpkey -algorithm ed448 -out key.pem")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for _, c := range tt.cmds {
				openssl(t, dir, c...)
			}
			keyPEM := readTestFile(t, dir, "key.pem")
			for _, pass := range [][]byte{nil, []byte("secret")} {
				s, err := ParseKey(keyPEM, pass)
				if s != nil || err == nil {
					t.Fatalf("ParseKey accepted it: %T", s)
				}
				if tt.name != "ed448" && !errors.Is(err, ErrUnsupported) {
					t.Errorf("passphrase %q: got %v, want %v", pass, err, ErrUnsupported)
				}
			}
		})
	}
}

func TestParseKeyIterationLimit(t *testing.T) {
	dir := makeKey(t, keyFormat{cmds: cmds(genEd,
		"pkcs8 -topk8 -in plain.pem -v2 aes-128-cbc -iter 5000 -passout pass:secret -out key.pem"), pass: "secret"})
	keyPEM := readTestFile(t, dir, "key.pem")
	if _, err := (keyDecoder{[]byte("secret"), 5000}).parse(keyPEM); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	_, err := (keyDecoder{[]byte("secret"), 4999}).parse(keyPEM)
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "5000") {
		t.Fatalf("over the limit: got %v", err)
	}
}

// TestParseKeyLegacyHeaders edits the headers of a real legacy-encrypted
// key.
func TestParseKeyLegacyHeaders(t *testing.T) {
	dir := makeKey(t, keyFormats[9]) // p256 legacy aes128
	keyPEM := readTestFile(t, dir, "key.pem")
	b, _ := pem.Decode(keyPEM)
	if b == nil || b.Headers["DEK-Info"] == "" {
		t.Fatalf("no legacy key: %q", keyPEM)
	}
	dek := b.Headers["DEK-Info"]
	iv := strings.SplitN(dek, ",", 2)[1]
	tests := []struct {
		name    string
		headers map[string]string
		want    error
	}{
		{"no DEK-Info", map[string]string{"Proc-Type": "4,ENCRYPTED"}, ErrMalformedPEM},
		{"DEK-Info alone", map[string]string{"DEK-Info": dek}, ErrUnsupported},
		{"other Proc-Type", map[string]string{"Proc-Type": "4,MIC-ONLY", "DEK-Info": dek}, ErrUnsupported},
		{"unknown cipher", map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-GCM," + iv}, ErrUnsupported},
		{"no IV", map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC"}, ErrUnsupported},
		{"short IV", map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC," + iv[2:]}, ErrMalformedPEM},
		{"bad hex IV", map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,zz" + iv[2:]}, ErrMalformedPEM},
		{"wrong cipher", map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC," + iv}, ErrWrongPassphrase},
		{"extra header", map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": dek, "Comment": "x"}, ErrMalformedPEM},
	}
	for _, tt := range tests {
		edited := pem.EncodeToMemory(&pem.Block{Type: b.Type, Headers: tt.headers, Bytes: b.Bytes})
		if _, err := ParseKey(edited, []byte("secret")); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
	truncatedData := pem.EncodeToMemory(&pem.Block{Type: b.Type, Headers: b.Headers, Bytes: b.Bytes[:len(b.Bytes)-5]})
	if _, err := ParseKey(truncatedData, []byte("secret")); !errors.Is(err, ErrMalformedPEM) {
		t.Errorf("ciphertext not a multiple of the block: got %v", err)
	}
}

func TestParseKeyMalformed(t *testing.T) {
	dir := makeKey(t, keyFormats[2]) // p256 sec1 with EC PARAMETERS
	keyPEM := readTestFile(t, dir, "key.pem")
	certPEM := readTestFile(t, dir, "cert.pem")
	tests := []struct {
		name string
		in   []byte
		want error // nil: any error
	}{
		{"empty", nil, ErrNoKey},
		{"text", []byte("hello, world\n"), ErrNoKey},
		{"binary", bytes.Repeat([]byte{0x30, 0x82, 0xff}, 100), ErrNoKey},
		{"certificate only", certPEM, ErrNoKey},
		{"truncated in half", keyPEM[:len(keyPEM)/2], ErrMalformedPEM},
		{"truncated END line", keyPEM[:len(keyPEM)-8], ErrMalformedPEM},
		{"truncated before a certificate", concat(keyPEM[:len(keyPEM)-40], certPEM), ErrMalformedPEM},
		{"truncated at a line end before a certificate", concat(cutAtLine(keyPEM, len(keyPEM)-40), certPEM), ErrMalformedPEM},
		{"bad base64", []byte("-----BEGIN PRIVATE KEY-----\nnot*base64\n-----END PRIVATE KEY-----\n"), ErrMalformedPEM},
		{"garbage DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("garbage")}), nil},
		{"garbage SEC1", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{0x30, 0}}), nil},
		{"garbage encrypted", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0}}), nil},
		{"PKCS#8 with headers", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"A": "b"}, Bytes: []byte{0}}), ErrMalformedPEM},
		{"two keys", append(append([]byte{}, keyPEM...), keyPEM...), nil},
		{"openssh", pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: []byte("openssh-key-v1")}), ErrUnsupported},
		{"dsa", pem.EncodeToMemory(&pem.Block{Type: "DSA PRIVATE KEY", Bytes: []byte{0x30, 0}}), ErrUnsupported},
	}
	for _, tt := range tests {
		s, err := ParseKey(tt.in, []byte("secret"))
		if s != nil || err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		if tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
}

// TestParseKeyInCertFile is KEYFILE empty: the key and the certificate
// share CERTFILE, in either order.
func TestParseKeyInCertFile(t *testing.T) {
	dir := makeKey(t, keyFormats[2]) // p256 sec1 with EC PARAMETERS
	keyPEM := readTestFile(t, dir, "key.pem")
	certPEM := readTestFile(t, dir, "cert.pem")
	for _, both := range [][]byte{
		append(append([]byte{}, certPEM...), keyPEM...),
		append(append([]byte{}, keyPEM...), certPEM...),
	} {
		s, err := ParseKey(both, nil)
		if err != nil {
			t.Fatalf("ParseKey: %v", err)
		}
		c, err := ParseChain(both, nil)
		if err != nil {
			t.Fatalf("ParseChain: %v", err)
		}
		if len(c) != 1 {
			t.Fatalf("chain has %d certificates, want 1", len(c))
		}
		if err := Match(c, s); err != nil {
			t.Fatal(err)
		}
		if _, ok := s.(*ecdsa.PrivateKey); !ok {
			t.Fatalf("key is %T", s)
		}
		checkSigns(t, s, leafOf(t, dir, "cert.pem"))
	}
}
