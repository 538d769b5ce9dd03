package protocol

import (
	"bytes"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
)

// clientSamples is one well-formed message of each sslclient type; the
// shared sample list (msg_test.go) should include them too.
func clientSamples() []Message {
	return []Message{
		&ClientConfig{
			Jail: true, UID: 65534, GID: 65534, Root: "/tmp/sslclient-root.1", Delayed: true,
			HandshakeMsec: 60000, IdleMsec: 3600000, ServerName: "mx.example.org", VerifyHost: "mx.example.org",
			Enforce: true, CAFile: "/etc/ssl/ca.pem", CADir: "/etc/ssl/certs",
			Chain: [][]byte{[]byte("leaf"), []byte("intermediate")}, Passphrase: []byte("secret"),
			CipherSuites: []uint16{0xc02b, 0xc02f},
		},
		&ClientReady{},
	}
}

func TestClientMessagesRoundTrip(t *testing.T) {
	for _, m := range clientSamples() {
		p := Encode(m)
		got, err := Decode(p)
		if err != nil {
			t.Fatalf("%T: Decode(Encode) = %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%T: round trip gave %+v, want %+v", m, got, m)
		}
		for n := 1; n < len(p); n++ {
			if _, err := Decode(p[:n]); err == nil {
				t.Errorf("%T cut to %d of %d bytes decoded", m, n, len(p))
			}
		}
		if _, err := Decode(append(p, 0)); err == nil {
			t.Errorf("%T with a trailing byte decoded", m)
		}
	}
}

// goodClientConfig is the smallest configuration sslclient sends: not
// root, no client certificate, system trust anchors.
func goodClientConfig() *ClientConfig {
	return &ClientConfig{HandshakeMsec: 60000, IdleMsec: 0, VerifyHost: "192.0.2.1", Enforce: true}
}

func TestClientConfigRefusesUnsafe(t *testing.T) {
	cases := map[string]func(c *ClientConfig){
		"jail as root uid":       func(c *ClientConfig) { c.Jail, c.UID, c.GID, c.Root = true, 0, 7, "/x" },
		"jail as root gid":       func(c *ClientConfig) { c.Jail, c.UID, c.GID, c.Root = true, 7, 0, "/x" },
		"jail in /":              func(c *ClientConfig) { c.Jail, c.UID, c.GID, c.Root = true, 7, 7, "/" },
		"jail in relative path":  func(c *ClientConfig) { c.Jail, c.UID, c.GID, c.Root = true, 7, 7, "x" },
		"ids without a jail":     func(c *ClientConfig) { c.UID = 7 },
		"root without a jail":    func(c *ClientConfig) { c.Root = "/x" },
		"no handshake deadline":  func(c *ClientConfig) { c.HandshakeMsec = 0 },
		"relative CAFILE":        func(c *ClientConfig) { c.CAFile = "ca.pem" },
		"relative CADIR":         func(c *ClientConfig) { c.CADir = "certs" },
		"passphrase without key": func(c *ClientConfig) { c.Passphrase = []byte("x") },
		"chain too long":         func(c *ClientConfig) { c.Chain = make([][]byte, maxChainLen+1) },
		"server name too long":   func(c *ClientConfig) { c.ServerName = strings.Repeat("a", maxName+1) },
		"too many suites":        func(c *ClientConfig) { c.CipherSuites = make([]uint16, maxSuites+1) },
	}
	for name, spoil := range cases {
		c := goodClientConfig()
		spoil(c)
		if m, err := Decode(Encode(c)); err == nil {
			t.Errorf("%s: decoded as %+v", name, m)
		}
	}
	if _, err := Decode(Encode(goodClientConfig())); err != nil {
		t.Errorf("the good configuration: %v", err)
	}
}

func TestClientConfigRefusesBadBoolean(t *testing.T) {
	p := Encode(goodClientConfig())
	p[1] = 2 // Jail
	if _, err := Decode(p); err == nil {
		t.Error("Jail = 2 decoded")
	}
}

func TestClientConfigFiles(t *testing.T) {
	c := goodClientConfig()
	if n := Files(c); n != 0 {
		t.Errorf("Files without a client certificate = %d, want 0", n)
	}
	c.Chain = [][]byte{[]byte("leaf")}
	if n := Files(c); n != 1 {
		t.Errorf("Files with a client certificate = %d, want 1 (the key file)", n)
	}
	if n := Files(&ClientReady{}); n != 0 {
		t.Errorf("Files(ClientReady) = %d, want 0", n)
	}
}

// The key file rides along with the configuration over a real channel,
// and the receiver can read it.
func TestClientConfigCarriesKeyFile(t *testing.T) {
	a, b, err := Pair("test")
	if err != nil {
		t.Fatal(err)
	}
	send, err := NewChannel(a, anyType)
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	recv, err := NewChannel(b, ClientOrders)
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	key := writeTemp(t, "-----BEGIN PRIVATE KEY-----\n")
	c := goodClientConfig()
	if err := send.Send(c, key); err == nil {
		t.Error("Send accepted a file with a configuration that has no client certificate")
	}
	c.Chain = [][]byte{[]byte("leaf")}
	if err := send.Send(c); err == nil {
		t.Error("Send accepted a client certificate without its key file")
	}
	if err := send.Send(c, key); err != nil {
		t.Fatal(err)
	}
	m, files, err := recv.Recv()
	if err != nil {
		t.Fatal(err)
	}
	defer files[0].Close()
	if !bytes.Equal(Encode(m), Encode(c)) {
		t.Errorf("received %+v, want %+v", m, c)
	}
	got, err := io.ReadAll(files[0])
	if err != nil || !bytes.Equal(got, []byte("-----BEGIN PRIVATE KEY-----\n")) {
		t.Errorf("key file read %q, %v", got, err)
	}
}

func writeTemp(t *testing.T, s string) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "key")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	return f
}

func FuzzDecodeClientConfig(f *testing.F) {
	for _, m := range clientSamples() {
		f.Add(Encode(m))
	}
	f.Add(Encode(goodClientConfig()))
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := Decode(p)
		if err != nil {
			return
		}
		if again := Encode(m); !bytes.Equal(again, p) {
			t.Fatalf("Decode(%q) = %+v, which encodes as %q", p, m, again)
		}
		if c, ok := m.(*ClientConfig); ok && c.check() != nil {
			t.Fatalf("Decode accepted a configuration check refuses: %v", c.check())
		}
	})
}
