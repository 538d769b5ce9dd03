package env

import (
	"crypto/elliptic"
	"crypto/tls"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// envMap parses Program's output, failing on duplicates and on anything
// that could not go into a NUL-separated block or execve.
func envMap(t *testing.T, environ []string) map[string]string {
	t.Helper()
	vars := make([]Var, 0, len(environ))
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			t.Errorf("entry without '=': %q", kv)
		}
		vars = append(vars, Var{name, value})
	}
	return varMap(t, vars)
}

var v4Endpoints = Endpoints{
	LocalIP: netip.MustParseAddr("192.0.2.1"), LocalPort: 25, LocalHost: "mx.example.org",
	RemoteIP: netip.MustParseAddr("192.0.2.7"), RemotePort: 50123,
	RemoteHost: "client.example.net", RemoteInfo: "alice",
}

func TestProgramEndpoints(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    Endpoints
		opt  Options
		want map[string]string
	}{
		{"IPv4 without -e", v4Endpoints, Options{}, map[string]string{
			"PROTO": "SSL", "SSLLOCALIP": "192.0.2.1", "SSLLOCALPORT": "25", "SSLLOCALHOST": "mx.example.org",
			"SSLREMOTEIP": "192.0.2.7", "SSLREMOTEPORT": "50123", "SSLREMOTEHOST": "client.example.net", "SSLREMOTEINFO": "alice",
		}},
		{"IPv4 with -e", v4Endpoints, Options{TCPVars: true}, map[string]string{
			"PROTO": "SSL", "SSLLOCALIP": "192.0.2.1", "SSLLOCALPORT": "25", "SSLLOCALHOST": "mx.example.org",
			"SSLREMOTEIP": "192.0.2.7", "SSLREMOTEPORT": "50123", "SSLREMOTEHOST": "client.example.net", "SSLREMOTEINFO": "alice",
			"TCPLOCALIP": "192.0.2.1", "TCPLOCALPORT": "25", "TCPLOCALHOST": "mx.example.org",
			"TCPREMOTEIP": "192.0.2.7", "TCPREMOTEPORT": "50123", "TCPREMOTEHOST": "client.example.net", "TCPREMOTEINFO": "alice",
		}},
		{"IPv4-mapped peer on a dual-stack socket, names unknown", Endpoints{
			LocalIP: netip.MustParseAddr("::ffff:192.0.2.1"), LocalPort: 465,
			RemoteIP: netip.MustParseAddr("::ffff:198.51.100.9"), RemotePort: 1024,
		}, Options{TCPVars: true}, map[string]string{
			"PROTO": "SSL", "SSLLOCALIP": "192.0.2.1", "SSLLOCALPORT": "465", "SSLREMOTEIP": "198.51.100.9", "SSLREMOTEPORT": "1024",
			"TCPLOCALIP": "192.0.2.1", "TCPLOCALPORT": "465", "TCPREMOTEIP": "198.51.100.9", "TCPREMOTEPORT": "1024",
		}},
		{"IPv6 peer, long form in, RFC 5952 out", Endpoints{
			LocalIP: netip.MustParseAddr("2001:0DB8:0000:0000:0000:0000:0000:0001"), LocalPort: 25, LocalHost: "mx.example.org",
			RemoteIP: netip.MustParseAddr("2001:db8:0:1:0:0:0:7"), RemotePort: 40000, RemoteInfo: "bob",
		}, Options{TCPVars: true}, map[string]string{
			"PROTO": "SSL", "SSLLOCALIP": "2001:db8::1", "SSLLOCALPORT": "25", "SSLLOCALHOST": "mx.example.org",
			"SSLREMOTEIP": "2001:db8:0:1::7", "SSLREMOTEPORT": "40000", "SSLREMOTEINFO": "bob",
			"TCPLOCALIP": "2001:db8::1", "TCPLOCALPORT": "25", "TCPLOCALHOST": "mx.example.org",
			"TCPREMOTEIP": "2001:db8:0:1::7", "TCPREMOTEPORT": "40000", "TCPREMOTEINFO": "bob",
			"TCP6LOCALIP": "2001:db8::1", "TCP6LOCALPORT": "25", "TCP6LOCALHOST": "mx.example.org",
			"TCP6REMOTEIP": "2001:db8:0:1::7", "TCP6REMOTEPORT": "40000",
		}},
		{"link-local IPv6 peer with zone", Endpoints{
			LocalIP: netip.MustParseAddr("fe80::1%eth0"), LocalPort: 25,
			RemoteIP: netip.MustParseAddr("fe80::2%eth0"), RemotePort: 2000,
		}, Options{TCPVars: true}, map[string]string{
			"PROTO": "SSL", "SSLLOCALIP": "fe80::1", "SSLLOCALPORT": "25", "SSLREMOTEIP": "fe80::2", "SSLREMOTEPORT": "2000",
			"TCPLOCALIP": "fe80::1", "TCPLOCALPORT": "25", "TCPREMOTEIP": "fe80::2", "TCPREMOTEPORT": "2000",
			"TCP6LOCALIP": "fe80::1", "TCP6LOCALPORT": "25", "TCP6REMOTEIP": "fe80::2", "TCP6REMOTEPORT": "2000",
			"TCP6INTERFACE": "eth0",
		}},
		{"IPv6 peer without -e", Endpoints{RemoteIP: netip.MustParseAddr("::1"), RemotePort: 9}, Options{}, map[string]string{
			"PROTO": "SSL", "SSLREMOTEIP": "::1", "SSLREMOTEPORT": "9",
		}},
		{"nothing known", Endpoints{}, Options{TCPVars: true}, map[string]string{"PROTO": "SSL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := envMap(t, Program(nil, tc.e, tc.opt, nil, nil))
			if len(got) != len(tc.want) {
				t.Errorf("got %d variables %v, want %d %v", len(got), got, len(tc.want), tc.want)
			}
			for k, v := range tc.want {
				expect(t, got, k, v)
			}
		})
	}
}

// TestProgramRemovesSecretsAndStaleValues: the server's settings never
// reach the program, and neither does anything that described some other
// connection, even when this connection leaves the variable unset.
func TestProgramRemovesSecretsAndStaleValues(t *testing.T) {
	base := []string{
		"PATH=/bin:/usr/bin", "HOME=/var/qmail", "UCSPITLS=!", "SSL_CERT_FILE=/etc/ssl/certs/ca.pem", "SSL_CERT_DIR=/etc/ssl/certs",
		"CERTFILE=/etc/ssl/mx.pem", "KEYFILE=/etc/ssl/mx.key", "CERTCHAINFILE=/c", "CAFILE=/ca", "CADIR=/cad", "CCAFILE=/cca",
		"VERIFYDEPTH=3", "CIPHERS=HIGH", "DHFILE=/dh", "SSL_UID=99", "SSL_GID=99", "SSL_CHROOT=/var/empty", "MAXCONIP=5",
		"CERTFILE:mx.example.org=/etc/ssl/a.pem", "KEYFILE:mx.example.org=/etc/ssl/a.key", "SSLKEYLOGFILE=/tmp/keys",
		"PROTO=TCP6", "TCPREMOTEIP=203.0.113.66", "TCPREMOTEHOST=stale.example", "TCP6REMOTEIP=2001:db8::66",
		"TCP6INTERFACE=eth9", "TCPREMOTEINFO=mallory", "SSLREMOTEHOST=stale.example", "SSLREMOTEINFO=mallory",
		"SSLCTLFD=9", "SSLREADFD=10", "SSLWRITEFD=11", "SSLCTL=x", "SSL_CLIENT_S_DN=/CN=stale", "SSL_CIPHER=RC4-MD5",
		"PROXYREMOTEIP=198.51.100.9",
	}
	e := v4Endpoints
	e.RemoteHost, e.RemoteInfo = "", ""
	got := envMap(t, Program(base, e, Options{TCPVars: true}, nil, nil))
	for _, kv := range base {
		name, value, _ := strings.Cut(kv, "=")
		kept := slices.Contains([]string{"PATH", "HOME", "UCSPITLS", "SSL_CERT_FILE", "SSL_CERT_DIR"}, name)
		if v, ok := got[name]; kept && v != value || !kept && ok && v == value {
			t.Errorf("%s: got %q (set: %v) from base %q", name, v, ok, kv)
		}
	}
	for _, name := range []string{"SSLREMOTEHOST", "TCPREMOTEHOST", "SSLREMOTEINFO", "TCPREMOTEINFO", "TCP6REMOTEIP", "TCP6INTERFACE", "PROXYREMOTEIP"} {
		expect(t, got, name, "")
	}
	expect(t, got, "PROTO", "SSL")
	expect(t, got, "TCPREMOTEIP", "192.0.2.7")
}

// TestProgramRemovesEveryStaleTLSVariable: whatever TLS produces counts as
// a connection variable, so none survives from the server's environment.
func TestProgramRemovesEveryStaleTLSVariable(t *testing.T) {
	p := newPKI(t, ecKey(t, elliptic.P256()))
	sc, cc := configs(p, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, true)
	srv, cli := handshake(t, sc, cc)
	stale := append(TLS(&srv, p.serverLeaf, true, "SUCCESS"), TLS(&cli, p.clientLeaf, false, "SUCCESS")...)
	var base []string
	for _, v := range stale {
		base = append(base, v.Name+"=stale")
	}
	got := envMap(t, Program(base, v4Endpoints, Options{}, nil, nil))
	for _, v := range stale {
		expect(t, got, v.Name, "")
	}
}

func TestProgramTLSAndRuleVariables(t *testing.T) {
	base := []string{"PATH=/bin", "RELAYCLIENT=base", "TERM=dumb"}
	tlsVars := []Var{{"SSL_PROTOCOL", "TLSv1.3"}, {"SSL_CLIENT_VERIFY", "NONE"}}
	rules := []Var{
		{"SSLREMOTEHOST", "relay.example.net"}, // a rule overrides a standard variable
		{"RELAYCLIENT", ""},                    // an empty value sets the empty string
		{"SSL_CLIENT_VERIFY", "SUCCESS"},       // and a TLS variable
		{"DATABYTES", "1000000"},
		{"CERTFILE", "/rule/sets/a/secret"}, {"MAXCONIP", "3"}, {"KEYFILE:x", "/k"}, // never reach the program
		{"", "empty name"}, {"A=B", "equals in name"}, {"NUL\x00NAME", "x"}, // cannot be set
		{"GREETING", "hello\x00world"},
	}
	environ := Program(base, v4Endpoints, Options{}, tlsVars, rules)
	got := envMap(t, environ)
	for k, v := range map[string]string{
		"SSLREMOTEHOST": "relay.example.net", "RELAYCLIENT": "", "SSL_CLIENT_VERIFY": "SUCCESS", "SSL_PROTOCOL": "TLSv1.3",
		"DATABYTES": "1000000", "GREETING": `hello\x00world`, "PATH": "/bin", "SSLREMOTEPORT": "50123",
	} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if _, ok := got["RELAYCLIENT"]; !ok {
		t.Error("RELAYCLIENT with an empty value is unset")
	}
	for _, name := range []string{"CERTFILE", "MAXCONIP", "KEYFILE:x", "", "A", "NUL"} {
		expect(t, got, name, "")
	}
	// Overrides keep their place: base first, then standard, TLS, rules.
	wantOrder := []string{"PATH", "RELAYCLIENT", "TERM", "PROTO", "SSLLOCALIP"}
	if gotOrder := names(environ)[:len(wantOrder)]; !slices.Equal(gotOrder, wantOrder) {
		t.Errorf("order %q, want it to start %q", names(environ), wantOrder)
	}
}

func names(environ []string) []string {
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		out = append(out, name)
	}
	return out
}

func TestProgramDuplicatesAndDeterminism(t *testing.T) {
	base := []string{"A=1", "B=2", "A=3", "malformed", "=nameless", "C=x=y"}
	first := Program(base, v4Endpoints, Options{TCPVars: true}, nil, nil)
	got := envMap(t, first)
	expect(t, got, "A", "3") // the last value wins, as with os/exec
	expect(t, got, "C", "x=y")
	if names(first)[0] != "A" || names(first)[1] != "B" {
		t.Errorf("base order lost: %q", first)
	}
	for i := 0; i < 20; i++ {
		if again := Program(base, v4Endpoints, Options{TCPVars: true}, nil, nil); !slices.Equal(again, first) {
			t.Fatalf("run %d differs:\n%q\n%q", i, again, first)
		}
	}
}

// TestProgramEscapesUntrustedText: NUL anywhere, and control characters in
// the names that DNS and IDENT answers supply.
func TestProgramEscapesUntrustedText(t *testing.T) {
	e := v4Endpoints
	e.RemoteHost, e.RemoteInfo = "evil\x00.example", "x\r\nBcc: y"
	got := envMap(t, Program([]string{"BASE=a\x00b"}, e, Options{TCPVars: true}, nil, nil))
	expect(t, got, "SSLREMOTEHOST", `evil\x00.example`)
	expect(t, got, "TCPREMOTEINFO", `x\x0D\x0ABcc: y`)
	expect(t, got, "BASE", `a\x00b`)
}

func TestSet(t *testing.T) {
	environ := []string{"PATH=/bin", "SSLCTLFD=stale", "X=1", "X=2"}
	got := Set(environ, Var{"SSLCTLFD", "3"}, Var{"SSLREADFD", "4"}, Var{"KEYFILE", "/k"})
	want := []string{"PATH=/bin", "SSLCTLFD=3", "X=2", "SSLREADFD=4"}
	if !slices.Equal(got, want) {
		t.Errorf("Set = %q, want %q", got, want)
	}
}

func TestIsSecret(t *testing.T) {
	for _, name := range []string{
		"CERTFILE", "KEYFILE", "CERTCHAINFILE", "CAFILE", "CADIR", "CCAFILE", "VERIFYDEPTH", "CIPHERS",
		"DHFILE", "SSL_UID", "SSL_GID", "SSL_CHROOT", "MAXCONIP", "CERTFILE:mx.example.org", "KEYFILE:a", "SSLKEYLOGFILE",
		"TICKETKEYFILE", "CERTFILE2", "KEYFILE2", "CERTFILE2:mx.example.org", "KEYFILE2:a",
	} {
		if !IsSecret(name) {
			t.Errorf("IsSecret(%q) = false", name)
		}
	}
	for _, name := range []string{"PATH", "certfile", "CERTFILEX", "KEYFILES", "CERTFILE3", "SSL_CLIENT_S_DN", "UCSPITLS", "SSL_CERT_FILE"} {
		if IsSecret(name) {
			t.Errorf("IsSecret(%q) = true", name)
		}
	}
}

// TestProgramProxyRemoteIP: a connection that came through a PROXY
// protocol sender names that sender in PROXYREMOTEIP, once, whatever
// -e says; the remote variables are the client's.
func TestProgramProxyRemoteIP(t *testing.T) {
	for _, tcp := range []bool{true, false} {
		e := v4Endpoints
		e.ProxyIP = netip.MustParseAddr("::ffff:10.0.0.5")
		got := envMap(t, Program([]string{"PROXYREMOTEIP=1.1.1.1"}, e, Options{TCPVars: tcp}, nil, nil))
		expect(t, got, "PROXYREMOTEIP", "10.0.0.5")
		expect(t, got, "SSLREMOTEIP", "192.0.2.7")
	}
}
