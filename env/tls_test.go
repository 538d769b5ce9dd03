package env

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// varMap turns vars into a map and fails on what must never happen: a
// name twice, an invalid name, a NUL in a value.
func varMap(t *testing.T, vars []Var) map[string]string {
	t.Helper()
	m := make(map[string]string, len(vars))
	for _, v := range vars {
		if _, dup := m[v.Name]; dup {
			t.Errorf("%s appears twice", v.Name)
		}
		if !validName(v.Name) || strings.Contains(v.Value, "\x00") {
			t.Errorf("unusable variable %q=%q", v.Name, v.Value)
		}
		m[v.Name] = v.Value
	}
	return m
}

// pki is a CA with a server and a client certificate.
type pki struct {
	roots                  *x509.CertPool
	server, client         tls.Certificate
	serverLeaf, clientLeaf *x509.Certificate
}

func newPKI(t *testing.T, serverKey crypto.Signer) *pki {
	ca := newCA(t, pkix.Name{Country: []string{"DE"}, Organization: []string{"Example"}, CommonName: "Example CA"}, ecKey(t, elliptic.P256()))
	srv := makeCert(t, &x509.Certificate{
		Subject:     pkix.Name{Country: []string{"DE"}, Organization: []string{"Example"}, CommonName: "mx.example.org"},
		DNSNames:    []string{"mx.example.org"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, serverKey, ca)
	clientKey := ecKey(t, elliptic.P256())
	cli := makeCert(t, &x509.Certificate{
		Subject: pkix.Name{
			CommonName: "Jürgen Client",
			ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidEmail, Value: "juergen@example.net"}},
		},
		EmailAddresses: []string{"juergen@example.net"},
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, clientKey, ca)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	return &pki{
		roots:      roots,
		server:     tls.Certificate{Certificate: [][]byte{srv.Raw}, PrivateKey: serverKey, Leaf: srv},
		client:     tls.Certificate{Certificate: [][]byte{cli.Raw}, PrivateKey: clientKey, Leaf: cli},
		serverLeaf: srv,
		clientLeaf: cli,
	}
}

// handshake runs a real TLS handshake over an in-memory pipe and returns
// both sides' view of it.
func handshake(t *testing.T, server, client *tls.Config) (srv, cli tls.ConnectionState) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, c := tls.Server(a, server), tls.Client(b, client)
	done := make(chan error, 1)
	go serverHandshake(ctx, s, done)
	if err := c.HandshakeContext(ctx); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	return s.ConnectionState(), c.ConnectionState()
}

func serverHandshake(ctx context.Context, s *tls.Conn, done chan<- error) {
	done <- s.HandshakeContext(ctx)
}

func TestTLSVariablesFromRealHandshakes(t *testing.T) {
	rsa, ec := newPKI(t, rsaKey(t)), newPKI(t, ecKey(t, elliptic.P256()))
	for _, tc := range []struct {
		name       string
		p          *pki
		version    uint16
		suite      uint16 // 0: TLS 1.3, where Go chooses
		protocol   string
		cipher     string // "": TLS 1.3, see tls13Cipher
		bits       string
		clientCert bool
		serverKey  string // SSL_SERVER_A_KEY
	}{
		{"TLS 1.2 RSA AES-256-GCM", rsa, tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384", "256", true, "rsaEncryption"},
		{"TLS 1.2 ECDSA ChaCha20", ec, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, "TLSv1.2", "ECDHE-ECDSA-CHACHA20-POLY1305", "256", true, "id-ecPublicKey"},
		{"TLS 1.2 ECDSA AES-128-CBC, no client cert", ec, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, "TLSv1.2", "ECDHE-ECDSA-AES128-SHA", "128", false, "id-ecPublicKey"},
		{"TLS 1.3 RSA", rsa, tls.VersionTLS13, 0, "TLSv1.3", "", "", true, "rsaEncryption"},
		{"TLS 1.3 ECDSA, no client cert", ec, tls.VersionTLS13, 0, "TLSv1.3", "", "", false, "id-ecPublicKey"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, cc := configs(tc.p, tc.version, tc.suite, tc.clientCert)
			srv, cli := handshake(t, sc, cc)
			want := map[string]string{
				"SSL_PROTOCOL":          tc.protocol,
				"SSL_CIPHER":            tc.cipher,
				"SSL_CIPHER_USEKEYSIZE": tc.bits,
				"SSL_CIPHER_ALGKEYSIZE": tc.bits,
				"SSL_SESSION_RESUMED":   "Initial",
				"SSL_VERSION_LIBRARY":   "Go-crypto/tls/" + runtime.Version(),
				"SSL_TLS_SNI":           "mx.example.org",
				"SSL_SERVER_S_DN":       "/C=DE/O=Example/CN=mx.example.org",
				"SSL_SERVER_S_DN_CN":    "mx.example.org",
				"SSL_SERVER_I_DN":       "/C=DE/O=Example/CN=Example CA",
				"SSL_SERVER_A_KEY":      tc.serverKey,
				"SSL_SERVER_A_SIG":      "ecdsa-with-SHA256",
			}
			if tc.cipher == "" {
				tls13Cipher(t, srv.CipherSuite, want)
			}
			checkServerView(t, TLS(&srv, tc.p.serverLeaf, true, "SUCCESS"), want, tc.p, tc.clientCert)
			checkClientView(t, TLS(&cli, clientOwn(tc.p, tc.clientCert), false, "SUCCESS"), want, tc.p, tc.clientCert)
		})
	}
}

// tls13Cipher fills in the suite Go chose for TLS 1.3 (AES-128-GCM or
// ChaCha20, depending on the hardware); OpenSSL uses the IANA names there.
func tls13Cipher(t *testing.T, id uint16, want map[string]string) {
	t.Helper()
	bits := map[uint16]string{
		tls.TLS_AES_128_GCM_SHA256:       "128",
		tls.TLS_AES_256_GCM_SHA384:       "256",
		tls.TLS_CHACHA20_POLY1305_SHA256: "256",
	}[id]
	if bits == "" {
		t.Fatalf("TLS 1.3 chose %s", tls.CipherSuiteName(id))
	}
	want["SSL_CIPHER"] = tls.CipherSuiteName(id)
	want["SSL_CIPHER_USEKEYSIZE"], want["SSL_CIPHER_ALGKEYSIZE"] = bits, bits
}

func configs(p *pki, version, suite uint16, clientCert bool) (server, client *tls.Config) {
	server = &tls.Config{
		Certificates: []tls.Certificate{p.server},
		MinVersion:   version, MaxVersion: version,
		ClientCAs:  p.roots,
		ClientAuth: tls.VerifyClientCertIfGiven,
	}
	client = &tls.Config{RootCAs: p.roots, ServerName: "mx.example.org", MinVersion: version, MaxVersion: version}
	if suite != 0 {
		server.CipherSuites = []uint16{suite}
		client.CipherSuites = []uint16{suite}
	}
	if clientCert {
		client.Certificates = []tls.Certificate{p.client}
	}
	return server, client
}

func clientOwn(p *pki, clientCert bool) *x509.Certificate {
	if clientCert {
		return p.clientLeaf
	}
	return nil
}

// checkServerView is sslserver's view: our certificate is SSL_SERVER_*,
// the peer's SSL_CLIENT_*, verification reported as SSL_CLIENT_VERIFY.
func checkServerView(t *testing.T, vars []Var, want map[string]string, p *pki, clientCert bool) {
	t.Helper()
	got := varMap(t, vars)
	checkCommon(t, got, want, p, clientCert)
	expect(t, got, "SSL_VERSION_INTERFACE", "sslserver/"+Version)
	expect(t, got, "SSL_CLIENT_VERIFY", "SUCCESS")
	expect(t, got, "SSL_SERVER_VERIFY", "")
}

// checkClientView is sslclient's view: the peer is the server.
func checkClientView(t *testing.T, vars []Var, want map[string]string, p *pki, clientCert bool) {
	t.Helper()
	got := varMap(t, vars)
	checkCommon(t, got, want, p, clientCert)
	expect(t, got, "SSL_VERSION_INTERFACE", "sslclient/"+Version)
	expect(t, got, "SSL_SERVER_VERIFY", "SUCCESS")
	expect(t, got, "SSL_CLIENT_VERIFY", "")
}

func checkCommon(t *testing.T, got, want map[string]string, p *pki, clientCert bool) {
	t.Helper()
	for k, v := range want {
		expect(t, got, k, v)
	}
	expect(t, got, "SSL_SESSION_ID", "")
	expectPEM(t, got, "SSL_SERVER_CERT", p.serverLeaf)
	if !clientCert {
		for k := range got {
			if strings.HasPrefix(k, "SSL_CLIENT_") && !strings.HasSuffix(k, "_VERIFY") {
				t.Errorf("no client certificate, yet %s=%q", k, got[k])
			}
		}
		return
	}
	expectPEM(t, got, "SSL_CLIENT_CERT", p.clientLeaf)
	expect(t, got, "SSL_CLIENT_S_DN", `/CN=J\xC3\xBCrgen Client/emailAddress=juergen@example.net`)
	expect(t, got, "SSL_CLIENT_S_DN_CN", "Jürgen Client")
	expect(t, got, "SSL_CLIENT_S_DN_Email", "juergen@example.net")
	expect(t, got, "SSL_CLIENT_SAN_Email_0", "juergen@example.net")
	expect(t, got, "SSL_CLIENT_I_DN_O", "Example")
	expect(t, got, "SSL_CLIENT_A_KEY", "id-ecPublicKey")
	expect(t, got, "SSL_CLIENT_M_SERIAL", serialHex(p.clientLeaf.SerialNumber))
}

func expect(t *testing.T, got map[string]string, name, want string) {
	t.Helper()
	if v, ok := got[name]; v != want || (want == "" && ok) {
		t.Errorf("%s = %q (set: %v), want %q", name, v, ok, want)
	}
}

func expectPEM(t *testing.T, got map[string]string, name string, c *x509.Certificate) {
	t.Helper()
	b, _ := pem.Decode([]byte(got[name]))
	if b == nil || string(b.Bytes) != string(c.Raw) {
		t.Errorf("%s is not the PEM of %q", name, c.Subject.CommonName)
	}
}

func TestTLSVerifyAndNil(t *testing.T) {
	if TLS(nil, nil, true, "SUCCESS") != nil {
		t.Error("TLS(nil) returned variables")
	}
	p := newPKI(t, ecKey(t, elliptic.P256()))
	sc, cc := configs(p, tls.VersionTLS13, 0, false)
	srv, _ := handshake(t, sc, cc)
	for verify, want := range map[string]string{"NONE": "NONE", "FAILED:bad\x00reason": `FAILED:bad\x00reason`, "": ""} {
		got := varMap(t, TLS(&srv, p.serverLeaf, true, verify))
		expect(t, got, "SSL_CLIENT_VERIFY", want)
	}
}

// TestTLSResumed checks SSL_SESSION_RESUMED on a resumed TLS 1.3 session.
func TestTLSResumed(t *testing.T) {
	p := newPKI(t, ecKey(t, elliptic.P256()))
	sc, cc := configs(p, tls.VersionTLS13, 0, false)
	cc.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	// A TLS 1.3 ticket arrives after the handshake; a read is needed to
	// take it in, so the first connection exchanges a byte.
	exchange(t, sc, cc)
	srv, _ := handshake(t, sc, cc)
	expect(t, varMap(t, TLS(&srv, p.serverLeaf, true, "")), "SSL_SESSION_RESUMED", "Resumed")
}

func exchange(t *testing.T, server, client *tls.Config) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	s, c := tls.Server(a, server), tls.Client(b, client)
	done := make(chan error, 1)
	go serveOneByte(s, done)
	buf := make([]byte, 1)
	if _, err := c.Read(buf); err != nil {
		t.Fatalf("client read: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("server: %v", err)
	}
}

func serveOneByte(s *tls.Conn, done chan<- error) {
	_ = s.SetDeadline(time.Now().Add(20 * time.Second))
	_, err := s.Write([]byte{'x'})
	done <- err
}

func TestProtocolNames(t *testing.T) {
	for v, want := range map[uint16]string{tls.VersionTLS10: "TLSv1", tls.VersionTLS11: "TLSv1.1", tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3"} {
		got := varMap(t, TLS(&tls.ConnectionState{Version: v, CipherSuite: tls.TLS_AES_128_GCM_SHA256}, nil, true, ""))
		expect(t, got, "SSL_PROTOCOL", want)
	}
}

// TestTLSOwnCertificateCached: the variables of our own certificate are
// made once and reused, give the same environment as made afresh, and a
// caller changing its result does not change the cache.
func TestTLSOwnCertificateCached(t *testing.T) {
	p := newPKI(t, ecKey(t, elliptic.P256()))
	sc, cc := configs(p, tls.VersionTLS13, 0, false)
	srv, _ := handshake(t, sc, cc)
	first := TLS(&srv, p.serverLeaf, true, "NONE")
	second := TLS(&srv, p.serverLeaf, true, "NONE")
	if !reflect.DeepEqual(first, second) {
		t.Fatalf("the second handshake's variables differ:\n%v\n%v", first, second)
	}
	var fresh varList
	certVars(&fresh, "SSL_SERVER_", p.serverLeaf)
	for _, v := range fresh {
		if !slices.Contains(second, v) {
			t.Errorf("%s=%q missing from the cached variables", v.Name, v.Value)
		}
	}
	ownCerts.Lock()
	_, cached := ownCerts.vars[ownKey{"SSL_SERVER_", p.serverLeaf}]
	ownCerts.Unlock()
	if !cached {
		t.Error("the server certificate's variables were not cached")
	}
	i := slices.IndexFunc(second, func(v Var) bool { return strings.HasPrefix(v.Name, "SSL_SERVER_") })
	second[i].Value = "changed by a caller"
	if third := TLS(&srv, p.serverLeaf, true, "NONE"); !reflect.DeepEqual(first, third) {
		t.Error("changing a result changed the cache")
	}
}

// TestNamesMatchTLS: the log line's protocol and cipher are the values
// of SSL_PROTOCOL and SSL_CIPHER.
func TestNamesMatchTLS(t *testing.T) {
	p := newPKI(t, ecKey(t, elliptic.P256()))
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		sc, cc := configs(p, v, 0, false)
		srv, _ := handshake(t, sc, cc)
		proto, cipher := Names(&srv)
		got := varMap(t, TLS(&srv, p.serverLeaf, true, "NONE"))
		if proto == "" || cipher == "" || proto != got["SSL_PROTOCOL"] || cipher != got["SSL_CIPHER"] {
			t.Errorf("version %x: Names %q %q, TLS %q %q", v, proto, cipher, got["SSL_PROTOCOL"], got["SSL_CIPHER"])
		}
	}
}
