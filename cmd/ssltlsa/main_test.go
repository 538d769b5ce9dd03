package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/internal/testutil"
)

// cert is a certificate the test made, with its key's PEM for files
// that hold both.
type cert struct {
	der    []byte
	keyPEM []byte
	parsed *x509.Certificate
	priv   crypto.Signer
}

// newCert makes a certificate signed by issuer (nil: self-signed, a CA).
func newCert(t *testing.T, name string, issuer *cert, rsaKey bool) *cert {
	t.Helper()
	var priv crypto.Signer
	var err error
	if rsaKey {
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  issuer == nil,
		BasicConstraintsValid: true,
	}
	parent, signer := tmpl, priv
	if issuer != nil {
		parent, signer = issuer.parsed, issuer.priv
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, priv.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &cert{der: der, keyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), parsed: parsed, priv: priv}
}

// pemOf is the certificates' PEM, in order.
func pemOf(certs ...*cert) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.der})...)
	}
	return out
}

// hexOf is the SHA-256 of the certificate's public key, computed from
// the key marshalled afresh rather than the certificate's bytes.
func hexOf(t *testing.T, c *cert) string {
	t.Helper()
	spki, err := x509.MarshalPKIXPublicKey(c.parsed.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(spki))
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runBinary runs bin with exactly the given environment.
func runBinary(t *testing.T, bin string, env []string, args ...string) testutil.Result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	return testutil.Run(t, cmd)
}

// fixture is a CA, a leaf it signed (ECDSA) and a self-signed RSA
// certificate, in files.
type fixture struct {
	ca, leaf, other          *cert
	leafFile, otherFile, dir string
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{dir: t.TempDir()}
	f.ca = newCert(t, "ca.example.org", nil, false)
	f.leaf = newCert(t, "mx.example.org", f.ca, false)
	f.other = newCert(t, "mail.example.net", nil, true)
	// The leaf's file holds its key too: ssltlsa must skip it.
	f.leafFile = writeFile(t, f.dir, "leaf.pem", append(pemOf(f.leaf, f.ca), f.leaf.keyPEM...))
	f.otherFile = writeFile(t, f.dir, "other.pem", pemOf(f.other))
	return f
}

// outputCase is a command line and all it must print.
type outputCase struct {
	args []string
	want string
}

// checkOutputs runs each case in env; each must exit 0 and print
// exactly its want on stdout, nothing on stderr.
func checkOutputs(t *testing.T, bin string, env []string, cases []outputCase) {
	t.Helper()
	for _, c := range cases {
		r := runBinary(t, bin, env, c.args...)
		if r.Code != 0 || r.Stdout != c.want || r.Stderr != "" {
			t.Errorf("ssltlsa %q: exit %d, stdout %q, stderr %q; want exit 0, stdout %q", c.args, r.Code, r.Stdout, r.Stderr, c.want)
		}
	}
}

func TestFiles(t *testing.T) {
	bin := testutil.BuildCommand(t, "ssltlsa")
	f := newFixture(t)
	leaf, ca, other := hexOf(t, f.leaf), hexOf(t, f.ca), hexOf(t, f.other)
	cases := []outputCase{
		{[]string{f.leafFile, f.otherFile},
			"3 1 1 " + leaf + "  " + f.leafFile + "\n3 1 1 " + other + "  " + f.otherFile + "\n"},
		{[]string{"-a", f.leafFile},
			"3 1 1 " + leaf + "  " + f.leafFile + "\n2 1 1 " + ca + "  " + f.leafFile + "\n"},
		{[]string{"-n", "mx.example.org", f.leafFile},
			"_25._tcp.mx.example.org. IN TLSA 3 1 1 " + leaf + "\n"},
		{[]string{"-a", "-n", "mx.example.org.", "-p587", "--", f.leafFile, f.otherFile},
			"_587._tcp.mx.example.org. IN TLSA 3 1 1 " + leaf + "\n" +
				"_587._tcp.mx.example.org. IN TLSA 2 1 1 " + ca + "\n" +
				"_587._tcp.mx.example.org. IN TLSA 3 1 1 " + other + "\n"},
	}
	checkOutputs(t, bin, nil, cases)
}

// Without files it prints what sslserver would serve in the same
// environment: the default, CERTFILE2 and the SNI pairs, by label. The
// key files do not exist: ssltlsa must not try to open them.
func TestEnvironment(t *testing.T) {
	bin := testutil.BuildCommand(t, "ssltlsa")
	f := newFixture(t)
	second := newCert(t, "mx.example.org", nil, true)
	secondFile := writeFile(t, f.dir, "second.pem", pemOf(second))
	caFile := writeFile(t, f.dir, "ca.pem", pemOf(f.ca))
	leafOnly := writeFile(t, f.dir, "leafonly.pem", pemOf(f.leaf))
	env := []string{
		"CERTFILE=" + leafOnly, "KEYFILE=/nonexistent/key.pem", "CERTCHAINFILE=" + caFile,
		"CERTFILE2=" + secondFile, "KEYFILE2=/nonexistent/key2.pem",
		"CERTFILE:Mail.Example.NET=" + f.otherFile, "KEYFILE:Mail.Example.NET=/nonexistent/key3.pem",
	}
	leaf, ca, other, sec := hexOf(t, f.leaf), hexOf(t, f.ca), hexOf(t, f.other), hexOf(t, second)
	cases := []outputCase{
		{nil, "3 1 1 " + leaf + "  default\n3 1 1 " + sec + "  default/2\n3 1 1 " + other + "  mail.example.net\n"},
		{[]string{"-a"}, "3 1 1 " + leaf + "  default\n2 1 1 " + ca + "  default\n3 1 1 " + sec + "  default/2\n3 1 1 " + other + "  mail.example.net\n"},
		{[]string{"-n", "mx.example.org"},
			"_25._tcp.mx.example.org. IN TLSA 3 1 1 " + leaf + "\n" +
				"_25._tcp.mx.example.org. IN TLSA 3 1 1 " + sec + "\n" +
				"_25._tcp.mail.example.net. IN TLSA 3 1 1 " + other + "\n"},
	}
	checkOutputs(t, bin, env, cases)
}

// Unreadable certificates are exit 111 with one line that names the
// file or variable; nothing is printed for the files before.
func TestUnreadable(t *testing.T) {
	bin := testutil.BuildCommand(t, "ssltlsa")
	f := newFixture(t)
	garbage := writeFile(t, f.dir, "garbage.pem", []byte("not a certificate\n"))
	keyOnly := writeFile(t, f.dir, "key.pem", f.leaf.keyPEM)
	missing := filepath.Join(f.dir, "missing.pem")
	cases := []struct {
		env   []string
		args  []string
		names string
	}{
		{nil, []string{f.leafFile, garbage}, garbage},
		{nil, []string{keyOnly}, keyOnly},
		{nil, []string{missing}, missing},
		{[]string{"CERTFILE=" + garbage, "KEYFILE=/k"}, nil, garbage},
		{[]string{"CERTFILE=" + f.otherFile}, nil, "KEYFILE"},
		{nil, nil, "CERTFILE is not set"},
		{[]string{"CERTFILE=" + f.leafFile, "CERTFILE2:mail.example.net=" + f.otherFile, "KEYFILE2:mail.example.net=/k"}, nil, "CERTFILE:mail.example.net is not"},
	}
	for _, c := range cases {
		r := runBinary(t, bin, c.env, c.args...)
		if r.Code != 111 || r.Stdout != "" || strings.Count(r.Stderr, "\n") != 1 ||
			!strings.HasPrefix(r.Stderr, "ssltlsa: fatal: ") || !strings.Contains(r.Stderr, c.names) {
			t.Errorf("env %q args %q: exit %d, stdout %q, stderr %q; want exit 111 and one line naming %q", c.env, c.args, r.Code, r.Stdout, r.Stderr, c.names)
		}
	}
}

func TestUsage(t *testing.T) {
	bin := testutil.BuildCommand(t, "ssltlsa")
	for _, args := range [][]string{{"-x"}, {"-n"}, {"-n", ""}, {"-n", "a b"}, {"-p", "0"}, {"-p", "65536"}, {"-p", "smtp"}, {"--all"}} {
		r := runBinary(t, bin, nil, args...)
		lines := strings.Split(strings.TrimSuffix(r.Stderr, "\n"), "\n")
		if r.Code != 100 || r.Stdout != "" || len(lines) != 2 || !strings.HasPrefix(lines[0], "ssltlsa: usage: ") || lines[1] != `ssltlsa: try "ssltlsa --help"` {
			t.Errorf("ssltlsa %q: exit %d, stdout %q, stderr %q; want exit 100 and a usage line", args, r.Code, r.Stdout, r.Stderr)
		}
	}
}

func TestHelp(t *testing.T) {
	bin := testutil.BuildCommand(t, "ssltlsa")
	for _, arg := range []string{"-h", "--help"} {
		r := runBinary(t, bin, nil, arg, "ignored.pem")
		if r.Code != 0 || r.Stdout != help || r.Stderr != "" {
			t.Errorf("ssltlsa %s: exit %d, stdout %q, stderr %q", arg, r.Code, r.Stdout, r.Stderr)
		}
	}
	testutil.HelpListsOptions(t, help, flags, withArgs)
}

// The record is the one the openssl pipeline the DANE literature gives
// computes.
func TestSameAsOpenSSL(t *testing.T) {
	openssl := testutil.NeedTool(t, "openssl")
	bin := testutil.BuildCommand(t, "ssltlsa")
	f := newFixture(t)
	for _, file := range []string{f.leafFile, f.otherFile} {
		r := runBinary(t, bin, nil, file)
		if r.Code != 0 {
			t.Fatalf("ssltlsa %s: exit %d, %s", file, r.Code, r.Stderr)
		}
		pipeline := fmt.Sprintf("%s x509 -in '%s' -noout -pubkey | %s pkey -pubin -outform DER | %s dgst -sha256 -r", openssl, file, openssl, openssl)
		out, err := exec.Command("sh", "-c", pipeline).Output()
		if err != nil {
			t.Fatalf("%s: %v", pipeline, err)
		}
		want := "3 1 1 " + strings.Fields(string(out))[0] + "  " + file + "\n"
		if r.Stdout != want {
			t.Errorf("ssltlsa %s = %q, openssl gives %q", file, r.Stdout, want)
		}
	}
}

// Each option has a row in the manual's option table, and each row an
// option.
func TestManualListsOptions(t *testing.T) {
	manual, err := os.ReadFile("../../docs/ssltlsa.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[byte]bool{}
	for _, l := range strings.Split(string(manual), "\n") {
		if strings.HasPrefix(l, "| `-") && !strings.HasPrefix(l, "| `--") {
			rows[l[4]] = true
		}
	}
	letters := map[byte]bool{'h': true}
	for c := range flags {
		letters[c] = true
	}
	for c := range withArgs {
		letters[c] = true
	}
	for c := range letters {
		if !rows[c] {
			t.Errorf("-%c has no row in docs/ssltlsa.md", c)
		}
	}
	for c := range rows {
		if !letters[c] {
			t.Errorf("docs/ssltlsa.md has a row for -%c, which is no option", c)
		}
	}
}
