package client

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
)

// certFiles writes a self-signed certificate and its key, and returns
// the paths of cert.pem, key.pem and both.pem (certificate and key).
func certFiles(t *testing.T) (cert, key, both string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	dir := t.TempDir()
	cert, key, both = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "both.pem")
	for p, data := range map[string][]byte{cert: certPEM, key: keyPEM, both: append(append([]byte{}, certPEM...), keyPEM...)} {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cert, key, both
}

func envMap(m map[string]string) getenv { return func(k string) string { return m[k] } }

func TestLoadSettingsClientCert(t *testing.T) {
	cert, key, both := certFiles(t)
	var logged bytes.Buffer
	log := newLogger(&logged, Verbose)
	o := defaultOptions()
	s, err := loadSettings(o, envMap(map[string]string{"CERTFILE": cert, "KEYFILE": key}), log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.cleanup()
	if len(s.chain) != 1 || s.keyFile != key {
		t.Errorf("chain of %d, key file %q; want 1 and %q", len(s.chain), s.keyFile, key)
	}
	s2, err := loadSettings(o, envMap(map[string]string{"CERTFILE": both}), log)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.cleanup()
	if s2.keyFile != both {
		t.Errorf("KEYFILE unset: key file %q, want CERTFILE %q", s2.keyFile, both)
	}
	o.CertFile, o.KeyFile = both, both
	s3, err := loadSettings(o, envMap(map[string]string{"CERTFILE": "/nonexistent", "KEYFILE": "/nonexistent"}), log)
	if err != nil {
		t.Fatalf("-c and -k should win over the environment: %v", err)
	}
	s3.cleanup()
}

func TestLoadSettingsRefuses(t *testing.T) {
	cert, key, _ := certFiles(t)
	dir := t.TempDir()
	cases := map[string]map[string]string{
		"KEYFILE alone":          {"KEYFILE": key},
		"unreadable CERTFILE":    {"CERTFILE": filepath.Join(dir, "none.pem")},
		"CERTFILE with no cert":  {"CERTFILE": key},
		"missing CAFILE":         {"CAFILE": filepath.Join(dir, "none.pem")},
		"CAFILE is a directory":  {"CAFILE": dir},
		"CADIR is a file":        {"CADIR": cert},
		"missing CADIR":          {"CADIR": filepath.Join(dir, "none")},
		"SSL_UID not a number":   {"SSL_UID": "nobody"},
		"SSL_GID zero":           {"SSL_GID": "0"},
		"SSL_CHROOT relative":    {"SSL_CHROOT": "empty"},
		"SSL_CHROOT is /":        {"SSL_CHROOT": "/"},
		"SSL_CHROOT not a dir":   {"SSL_CHROOT": cert},
		"SSL_CHROOT not empty":   {"SSL_CHROOT": filepath.Dir(cert)},
		"SSL_CHROOT is writable": {"SSL_CHROOT": writableDir(t)},
	}
	for name, e := range cases {
		if strings.HasPrefix(name, "SSL_") && os.Geteuid() != 0 {
			continue // only root confines with these
		}
		if s, err := loadSettings(defaultOptions(), envMap(e), newLogger(&bytes.Buffer{}, Quiet)); err == nil {
			s.cleanup()
			t.Errorf("%s: loadSettings accepted %v", name, e)
		}
	}
}

func writableDir(t *testing.T) string {
	d := filepath.Join(t.TempDir(), "w")
	if err := os.Mkdir(d, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o777); err != nil {
		t.Fatal(err)
	}
	return d
}

// As root the TLS process gets nobody's ids and a fresh empty root that
// sslclient removes at the end.
func TestLoadSettingsJail(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the jail is for root")
	}
	s, err := loadSettings(defaultOptions(), envMap(nil), newLogger(&bytes.Buffer{}, Quiet))
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(s.root)
	if err != nil || !s.jail || s.uid == 0 || s.gid == 0 || st.Mode().Perm() != 0o555 {
		t.Errorf("jail %v ids %d:%d root %q (%v, %v)", s.jail, s.uid, s.gid, s.root, st.Mode(), err)
	}
	s.cleanup()
	if _, err := os.Stat(s.root); !os.IsNotExist(err) {
		t.Errorf("the root %q is still there after cleanup: %v", s.root, err)
	}
}

func TestCipherSuitesSetting(t *testing.T) {
	var logged bytes.Buffer
	ids := cipherSuites("ECDHE-ECDSA-AES128-GCM-SHA256:HIGH:!aNULL, ECDHE-RSA-AES256-GCM-SHA384 ECDHE-ECDSA-AES128-GCM-SHA256", newLogger(&logged, Verbose))
	if len(ids) != 2 || ids[0] != 0xc02b || ids[1] != 0xc030 {
		t.Errorf("suites %#x, want [0xc02b 0xc030]", ids)
	}
	if !strings.Contains(logged.String(), "ignoring HIGH:!aNULL") {
		t.Errorf("the ignored words are not logged: %q", logged.String())
	}
	if ids := cipherSuites("", newLogger(&logged, Verbose)); ids != nil {
		t.Errorf("no CIPHERS: %v, want Go's defaults (nil)", ids)
	}
}

// The configuration sslclient builds passes the TLS process's own strict
// decoder.
func TestConfigDecodes(t *testing.T) {
	cert, key, _ := certFiles(t)
	o, err := ParseArgs([]string{"-N", "-y", "-T", "3+4", "-w", "9", "Mail.Example.org", "25", "prog"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := loadSettings(o, envMap(map[string]string{"CERTFILE": cert, "KEYFILE": key, "CAFILE": cert}), newLogger(&bytes.Buffer{}, Quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer s.cleanup()
	s.passphrase = []byte("pw")
	m, err := protocol.Decode(protocol.Encode(s.config(o)))
	if err != nil {
		t.Fatal(err)
	}
	c := m.(*protocol.ClientConfig)
	if c.ServerName != "mail.example.org" || c.VerifyHost != "" || !c.Enforce || !c.Delayed ||
		c.HandshakeMsec != 7000 || c.IdleMsec != 9000 || c.CAFile != cert || !c.HasKey() || string(c.Passphrase) != "pw" {
		t.Errorf("configuration %+v", c)
	}
}

func TestLogLevelsAndOneLine(t *testing.T) {
	var b bytes.Buffer
	l := newLogger(&b, Errors)
	l.Info("hidden")
	l.Warning("shown")
	l.Fatal("evil\nline\x1b[0m")
	want := "sslclient: warning: shown\nsslclient: fatal: evil\\x0Aline\\x1B[0m\n"
	if b.String() != want {
		t.Errorf("log %q, want %q", b.String(), want)
	}
	b.Reset()
	newLogger(&b, Quiet).Warning("hidden")
	if b.Len() != 0 {
		t.Errorf("-q logged %q", b.String())
	}
}
