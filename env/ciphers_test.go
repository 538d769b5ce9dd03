package env

import (
	"crypto/tls"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestCipherTableCoversGo: every suite crypto/tls can negotiate has an
// OpenSSL name and key sizes.
func TestCipherTableCoversGo(t *testing.T) {
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		c, ok := cipherSuites[s.ID]
		if !ok || c.name == "" || c.use <= 0 || c.alg < c.use {
			t.Errorf("%s (%#04x): table entry %+v", s.Name, s.ID, c)
		}
	}
}

// opensslCipher is one line of `openssl ciphers -V`.
type opensslCipher struct {
	name string
	bits int
}

var cipherLine = regexp.MustCompile(`^\s*0x([0-9A-F]{2}),0x([0-9A-F]{2}) - (\S+)\s.*Enc=\S*\((\d+)\)`)

func opensslCiphers(t *testing.T) map[uint16]opensslCipher {
	openssl := requireOpenSSL(t)
	out := runOpenSSL(t, openssl, "ciphers", "-V", "ALL:COMPLEMENTOFALL:@SECLEVEL=0")
	m := make(map[uint16]opensslCipher)
	for _, line := range strings.Split(out, "\n") {
		f := cipherLine.FindStringSubmatch(line)
		if f == nil {
			continue
		}
		id, _ := strconv.ParseUint(f[1]+f[2], 16, 16)
		bits, _ := strconv.Atoi(f[4])
		m[uint16(id)] = opensslCipher{f[3], bits}
	}
	if len(m) == 0 {
		t.Fatalf("no cipher in openssl's output %q", out)
	}
	return m
}

// TestCipherTableMatchesOpenSSL compares names and algorithm key sizes
// with the installed OpenSSL. Builds without RC4 and 3DES may lack those;
// every other suite must be there.
func TestCipherTableMatchesOpenSSL(t *testing.T) {
	ossl := opensslCiphers(t)
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		o, ok := ossl[s.ID]
		if !ok {
			if !strings.Contains(s.Name, "RC4") && !strings.Contains(s.Name, "3DES") {
				t.Errorf("%s (%#04x) missing from openssl ciphers -V", s.Name, s.ID)
			}
			continue
		}
		c := cipherSuites[s.ID]
		if c.name != o.name || c.alg != o.bits {
			t.Errorf("%s: table %q/%d bits, openssl %q/%d bits", s.Name, c.name, c.alg, o.name, o.bits)
		}
	}
}

func TestUnknownCipherSuite(t *testing.T) {
	got := varMap(t, TLS(&tls.ConnectionState{Version: tls.VersionTLS12, CipherSuite: 0xfefe}, nil, true, ""))
	expect(t, got, "SSL_CIPHER", tls.CipherSuiteName(0xfefe))
	expect(t, got, "SSL_CIPHER_USEKEYSIZE", "")
	expect(t, got, "SSL_CIPHER_ALGKEYSIZE", "")
}

// TestCipherSuiteID covers cipherid.go (added to this package by another
// engineer for reading CIPHERS): OpenSSL names of secure TLS 1.2 suites
// only.
func TestCipherSuiteID(t *testing.T) {
	for _, s := range tls.CipherSuites() {
		id, ok := CipherSuiteID(cipherSuites[s.ID].name)
		if is12 := slices.Contains(s.SupportedVersions, tls.VersionTLS12); ok != is12 || ok && id != s.ID {
			t.Errorf("CipherSuiteID(%q) = %#04x, %v; suite %#04x, TLS 1.2: %v", cipherSuites[s.ID].name, id, ok, s.ID, is12)
		}
	}
	for _, name := range []string{"RC4-SHA", "AES128-SHA", "TLS_AES_128_GCM_SHA256", "", "ecdhe-rsa-aes128-gcm-sha256"} {
		if id, ok := CipherSuiteID(name); ok {
			t.Errorf("CipherSuiteID(%q) = %#04x, want none", name, id)
		}
	}
}
