package integration

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// renewal is a certbot-style layout: live/cert.pem and live/key.pem are
// symlinks into archive/, and a renewal writes certN.pem and keyN.pem
// there and switches the symlinks.
type renewal struct {
	t    testing.TB
	dir  string
	n    int
	live *testCert // what live/ points to, with the paths of the symlinks
}

func newRenewal(t testing.TB) *renewal {
	r := &renewal{t: t, dir: t.TempDir()}
	for _, d := range []string{"live", "archive"} {
		if err := os.Mkdir(filepath.Join(r.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.renew()
	return r
}

// renew makes a certificate with a key of its own and points live/ at it.
func (r *renewal) renew() *testCert {
	c := freshCert(r.t)
	r.install(c.certPEM, c.keyPEM)
	r.live = c
	return c
}

// install writes archive files and switches the live symlinks to them,
// each by rename as certbot does.
func (r *renewal) install(certPEM, keyPEM []byte) {
	r.n++
	for _, f := range []struct {
		name string
		data []byte
	}{{"cert", certPEM}, {"key", keyPEM}} {
		target := filepath.Join("..", "archive", fmt.Sprintf("%s%d.pem", f.name, r.n))
		writeFile(r.t, filepath.Join(r.dir, "live", target), f.data, 0o600)
		link := filepath.Join(r.dir, "live", f.name+".pem")
		tmp := link + ".new"
		if err := os.Symlink(target, tmp); err != nil {
			r.t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *renewal) env() []string {
	return []string{"CERTFILE=" + filepath.Join(r.dir, "live", "cert.pem"), "KEYFILE=" + filepath.Join(r.dir, "live", "key.pem")}
}

// freshCert is newCert with a key made for it alone: a renewal that
// changes the key.
func freshCert(t testing.TB) *testCert {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := certTemplate(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	c := &testCert{kind: keyECDSA, certDER: der, keyDER: keyDER, pool: x509.NewCertPool(),
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})}
	c.pool.AddCert(leaf)
	return c
}

// tlsa311 is the DANE record of a certificate's key, computed here
// independently of sslserver.
func tlsa311(t testing.TB, der []byte) string {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return "3 1 1 " + hex.EncodeToString(sum[:])
}

// servedCert asks openssl s_client for the server's certificate, with
// SNI, and returns its DER; extra are more s_client options.
func (s *server) servedCert(t testing.TB, extra ...string) []byte {
	t.Helper()
	openssl := needTool(t, "openssl")
	cmd := exec.Command(openssl, append([]string{"s_client", "-connect", s.addr, "-servername", serverName}, extra...)...)
	cmd.Stdin = bytes.NewReader(nil)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("s_client: %v\n%s", err, out)
	}
	start := bytes.Index(out, []byte("-----BEGIN CERTIFICATE-----"))
	if start < 0 {
		t.Fatalf("s_client showed no certificate:\n%s", out)
	}
	b, _ := pem.Decode(out[start:])
	if b == nil {
		t.Fatalf("s_client's certificate does not decode:\n%s", out)
	}
	return b.Bytes
}

// recordLine is the -v line that gives c's DANE record.
func recordLine(t testing.TB, c *testCert) *regexp.Regexp {
	return regexp.MustCompile(`^sslserver: certificate default: valid until \S+, TLSA ` + regexp.QuoteMeta(tlsa311(t, c.certDER)) + `$`)
}

func (s *server) hup(t testing.TB) {
	t.Helper()
	if err := syscall.Kill(s.pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// TestReloadSymlinkSwap: a certbot-style renewal (new key, symlinks
// switched) and SIGHUP: the next handshake gets the new certificate, a
// session opened before goes on, the log reports the reload and the
// DANE records of the old and new key. A renewal whose key does not
// match leaves the new certificate serving, with one warning.
func TestReloadSymlinkSwap(t *testing.T) {
	r := newRenewal(t)
	first := r.live
	s := startServer(t, serverConfig{role: "echo", cert: first, env: append(r.env(), "SSL_RELOAD_POLL=0")})
	if got := s.servedCert(t); !bytes.Equal(got, first.certDER) {
		t.Fatal("before the renewal, s_client did not get the first certificate")
	}
	s.waitLog(t, recordLine(t, first))
	held, _ := s.dialTLS(t, nil)
	echoRoundTrip(t, held, "before the reload")

	second := r.renew()
	s.hup(t)
	s.waitLog(t, regexp.MustCompile(`^sslserver: reloaded certificates \(SIGHUP\): default new certificate serial [0-9a-f]+, valid until \S+; [1-9]\d* idle workers retired$`))
	s.waitLog(t, regexp.MustCompile(`^sslserver: warning: default: the public key changed: DANE TLSA record `+
		regexp.QuoteMeta(tlsa311(t, first.certDER))+` is now `+regexp.QuoteMeta(tlsa311(t, second.certDER))+`; update TLSA records that pin the key$`))
	if got := s.servedCert(t); !bytes.Equal(got, second.certDER) {
		t.Fatal("after the renewal and SIGHUP, s_client did not get the new certificate")
	}
	s.waitLog(t, recordLine(t, second))
	echoRoundTrip(t, held, "after the reload")
	held.Close()

	// A broken renewal: a new certificate with the old key file's
	// neighbour, a key that is not its own.
	third := freshCert(t)
	r.install(third.certPEM, first.keyPEM)
	s.hup(t)
	failed := regexp.MustCompile(`^sslserver: warning: reload \(SIGHUP\) failed, the old certificates keep serving: private key KEYFILE=\S+/live/key\.pem does not match its certificate$`)
	s.waitLog(t, failed)
	if got := s.servedCert(t); !bytes.Equal(got, second.certDER) {
		t.Fatal("after a failed reload, s_client did not get the certificate that served before it")
	}
	time.Sleep(200 * time.Millisecond)
	if n := s.countLog(regexp.MustCompile(`^sslserver: warning: reload`)); n != 1 {
		t.Errorf("%d warnings about the failed reload, want 1:\n%s", n, s.log.text())
	}
}

// TestReloadByPolling: without a signal, a certificate file rewritten in
// place is seen by the poll and served.
func TestReloadByPolling(t *testing.T) {
	r := newRenewal(t)
	s := startServer(t, serverConfig{role: "echo", cert: r.live, env: append(r.env(), "SSL_RELOAD_POLL=1")})
	if got := s.servedCert(t); !bytes.Equal(got, r.live.certDER) {
		t.Fatal("before the change, s_client did not get the first certificate")
	}
	next := freshCert(t)
	// In place, key first: a poll between the two writes sees a key that
	// does not match, warns and keeps the old set; the next poll loads both.
	live := filepath.Join(r.dir, "live")
	writeFile(t, filepath.Join(live, "key.pem"), next.keyPEM, 0o600)
	writeFile(t, filepath.Join(live, "cert.pem"), next.certPEM, 0o600)
	s.waitLog(t, regexp.MustCompile(`^sslserver: reloaded certificates \(files changed\): default new certificate serial`))
	if got := s.servedCert(t); !bytes.Equal(got, next.certDER) {
		t.Fatal("after the files changed, s_client did not get the new certificate")
	}
}

// TestSecondCertificate: CERTFILE2/KEYFILE2 give the default name an
// RSA certificate beside the ECDSA one (CERTFILE2:name does the same for
// an SNI name, through the same code). A client that offers only RSA signature
// algorithms gets the RSA certificate; others get the first, ECDSA.
func TestSecondCertificate(t *testing.T) {
	ec, rsa := newCert(t, keyECDSA), newCert(t, keyRSA)
	s := startServer(t, serverConfig{role: "echo", cert: ec, env: []string{
		"CERTFILE2=" + rsa.certPath, "KEYFILE2=" + rsa.keyPath, "SSL_RELOAD_POLL=0"}})
	rsaOnly := "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pkcs1_sha256"
	for _, v := range []string{"-tls1_3", "-tls1_2"} {
		if got := s.servedCert(t, v); !bytes.Equal(got, ec.certDER) {
			t.Errorf("%s: a client that can do both did not get the ECDSA certificate", v)
		}
		if got := s.servedCert(t, v, "-sigalgs", rsaOnly); !bytes.Equal(got, rsa.certDER) {
			t.Errorf("%s: an RSA-only client did not get the RSA certificate", v)
		}
	}
	s.waitLog(t, regexp.MustCompile(`^sslserver: certificate default/2: valid until \S+, TLSA `+regexp.QuoteMeta(tlsa311(t, rsa.certDER))+`$`))
}

// TestReloadKeepsPassphrase: with -3, a renewal whose new key is
// encrypted with the same passphrase is loaded at SIGHUP: the passphrase
// read from fd 3 at start is kept for reloads.
func TestReloadKeepsPassphrase(t *testing.T) {
	r := newRenewal(t)
	first := r.live
	first.keyPath = filepath.Join(r.dir, "live", "key.pem")
	enc := encryptKey(t, first, "s3cret pass")
	encPEM, err := os.ReadFile(enc)
	if err != nil {
		t.Fatal(err)
	}
	r.install(first.certPEM, encPEM)
	s := startServer(t, serverConfig{role: "echo", cert: first, flags: []string{"-3"}, env: append(r.env(), "SSL_RELOAD_POLL=0"),
		inherit: []*os.File{passphraseFd(t, "s3cret pass")}})
	if got := s.servedCert(t); !bytes.Equal(got, first.certDER) {
		t.Fatal("before the renewal, s_client did not get the first certificate")
	}
	next := freshCert(t)
	next.keyPath = writeFile(t, filepath.Join(t.TempDir(), "plain.pem"), next.keyPEM, 0o600)
	encPEM, err = os.ReadFile(encryptKey(t, next, "s3cret pass"))
	if err != nil {
		t.Fatal(err)
	}
	r.install(next.certPEM, encPEM)
	s.hup(t)
	s.waitLog(t, regexp.MustCompile(`^sslserver: reloaded certificates \(SIGHUP\): default new certificate serial`))
	if got := s.servedCert(t); !bytes.Equal(got, next.certDER) {
		t.Fatal("after the renewal, s_client did not get the new certificate")
	}
}
