package keys

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// makeCA builds, in a new directory, ca.pem, inter.pem (signed by ca)
// and leaf.pem (signed by inter, for leaf.test) with their keys.
func makeCA(t *testing.T) string {
	t.Helper()
	needOpenSSL(t)
	dir := t.TempDir()
	ext := "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n" +
		"[leaf]\nbasicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:leaf.test\n"
	if err := os.WriteFile(filepath.Join(dir, "ext.cnf"), []byte(ext), 0o600); err != nil {
		t.Fatal(err)
	}
	newEd25519(t, dir, "ca.key")
	openssl(t, dir, "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=keys-test CA", "-days", "1",
		"-addext", "basicConstraints=critical,CA:TRUE", "-out", "ca.pem")
	issue(t, dir, "inter", "ca", "ca")
	issue(t, dir, "leaf", "inter", "leaf")
	return dir
}

// issue makes dir/name.key and dir/name.pem signed by issuer.
func issue(t *testing.T, dir, name, issuer, extensions string) {
	t.Helper()
	newEd25519(t, dir, name+".key")
	openssl(t, dir, "req", "-new", "-key", name+".key", "-subj", "/CN=keys-test "+name, "-out", name+".csr")
	openssl(t, dir, "x509", "-req", "-in", name+".csr", "-CA", issuer+".pem", "-CAkey", issuer+".key",
		"-set_serial", "2", "-days", "1", "-extfile", "ext.cnf", "-extensions", extensions, "-out", name+".pem")
}

func concat(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}

func TestParseChain(t *testing.T) {
	dir := makeCA(t)
	ca, inter, leaf := readTestFile(t, dir, "ca.pem"), readTestFile(t, dir, "inter.pem"), readTestFile(t, dir, "leaf.pem")
	tests := []struct {
		name              string
		certPEM, chainPEM []byte
		want              [][]byte
	}{
		{"leaf alone", leaf, nil, [][]byte{leaf}},
		{"chain file", leaf, concat(inter, ca), [][]byte{leaf, inter, ca}},
		{"full chain in CERTFILE", concat(leaf, inter, ca), nil, [][]byte{leaf, inter, ca}},
		{"repeated intermediate", concat(leaf, inter), concat(inter, ca), [][]byte{leaf, inter, ca}},
		{"text between blocks", concat([]byte("Bag Attributes\n"), leaf, []byte("subject=x\n"), inter), nil, [][]byte{leaf, inter}},
	}
	for _, tt := range tests {
		c, err := ParseChain(tt.certPEM, tt.chainPEM)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if len(c) != len(tt.want) {
			t.Errorf("%s: %d certificates, want %d", tt.name, len(c), len(tt.want))
			continue
		}
		for i, w := range tt.want {
			if !bytes.Equal(c[i], certDER(t, w)) {
				t.Errorf("%s: certificate %d is not the expected one", tt.name, i)
			}
		}
	}
}

func TestParseChainErrors(t *testing.T) {
	dir := makeCA(t)
	ca, inter, leaf := readTestFile(t, dir, "ca.pem"), readTestFile(t, dir, "inter.pem"), readTestFile(t, dir, "leaf.pem")
	key := readTestFile(t, dir, "leaf.key")
	badDER := []byte("-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n")
	tests := []struct {
		name              string
		certPEM, chainPEM []byte
		want              error // nil: any error
	}{
		{"empty", nil, nil, ErrNoCertificate},
		{"key only", key, nil, ErrNoCertificate},
		{"garbage", []byte("not a certificate"), nil, ErrNoCertificate},
		{"empty chain file", leaf, []byte{}, ErrNoCertificate},
		{"truncated leaf", leaf[:len(leaf)/2], nil, ErrMalformedPEM},
		{"truncated leaf before its chain", concat(leaf[:len(leaf)-30], inter), nil, ErrMalformedPEM},
		{"truncated middle of chain", leaf, concat(inter[:len(inter)/2], ca), ErrMalformedPEM},
		{"truncated middle of chain at a line end", leaf, concat(cutAtLine(inter, len(inter)/2), ca), ErrMalformedPEM},
		{"truncated leaf at a line end", concat(cutAtLine(leaf, len(leaf)/2), inter), nil, ErrMalformedPEM},
		{"truncated end of chain", leaf, concat(inter, ca[:len(ca)-10]), ErrMalformedPEM},
		{"bad DER", badDER, nil, nil},
		{"bad DER in chain", leaf, badDER, nil},
	}
	for _, tt := range tests {
		c, err := ParseChain(tt.certPEM, tt.chainPEM)
		if c != nil || err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		if tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
}

// TestTLSCertificate does a real handshake with the loaded chain and key
// against a client that trusts only the CA, so the chain's order and the
// key's match are what a TLS client sees.
func TestTLSCertificate(t *testing.T) {
	dir := makeCA(t)
	chain, err := LoadChain(filepath.Join(dir, "leaf.pem"), filepath.Join(dir, "inter.pem"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := LoadKey(filepath.Join(dir, "leaf.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := chain.TLSCertificate(key)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leafOf(t, dir, "ca.pem"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go serveOneHandshake(ln, cert, served)
	client, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "leaf.test"})
	if err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	defer client.Close()
	if n := len(client.ConnectionState().PeerCertificates); n != 2 {
		t.Errorf("server sent %d certificates, want 2", n)
	}
	if err := <-served; err != nil {
		t.Errorf("server handshake: %v", err)
	}
}

// serveOneHandshake accepts one connection and does the server side of a
// handshake with cert.
func serveOneHandshake(ln net.Listener, cert tls.Certificate, done chan<- error) {
	c, err := ln.Accept()
	if err != nil {
		done <- err
		return
	}
	defer c.Close()
	done <- tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}}).Handshake()
}

func TestMatch(t *testing.T) {
	keyDir := makeKey(t, keyFormats[2]) // p256 with cert.pem
	caDir := makeCA(t)
	chain, err := LoadChain(filepath.Join(caDir, "leaf.pem"), "")
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := LoadKey(filepath.Join(caDir, "leaf.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Match(chain, leafKey); err != nil {
		t.Fatalf("own key: %v", err)
	}
	for name, keyFile := range map[string]string{
		"other ed25519 key": filepath.Join(caDir, "inter.key"),
		"p256 key":          filepath.Join(keyDir, "key.pem"),
	} {
		s, err := LoadKey(keyFile, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := Match(chain, s); !errors.Is(err, ErrMismatch) {
			t.Errorf("%s: Match: got %v, want %v", name, err, ErrMismatch)
		}
		if _, err := chain.TLSCertificate(s); !errors.Is(err, ErrMismatch) {
			t.Errorf("%s: TLSCertificate: got %v, want %v", name, err, ErrMismatch)
		}
	}
	if err := Match(nil, leafKey); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("empty chain: got %v", err)
	}
	if err := Match(Chain{[]byte{0x30, 0}}, leafKey); err == nil {
		t.Errorf("bad leaf DER: accepted")
	}
}

// cutAtLine is b cut after the last newline before n, as a file cut off
// at a line end.
func cutAtLine(b []byte, n int) []byte {
	return bytes.Clone(b[:bytes.LastIndexByte(b[:n], '\n')+1])
}
