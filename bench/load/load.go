// Package load is the client side of sslserver's load tests: it opens
// sessions against a TLS (or plaintext) server on loopback and measures
// session rate, time to the program's first byte, bulk throughput and
// how many idle sessions it holds open. Every loop is bounded by a count
// and a deadline, and stops by itself.
//
// Typical use, 8 clients for 5 seconds against a server whose program is
// /bin/true:
//
//	t := load.Target{Addr: "127.0.0.1:4433", TLS: load.ClientConfig(leafDER, false)}
//	r, err := load.Sessions(ctx, t, load.Options{Kind: load.Close, Clients: 8, Duration: 5 * time.Second})
//	fmt.Printf("%.0f sessions/s\n", r.Rate())
package load

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"time"
)

// Target is where the clients connect and how.
type Target struct {
	Addr string
	// TLS is the client configuration; nil talks plaintext (the spawn
	// floor, tcpserver).
	TLS *tls.Config
}

// ClientConfig returns a TLS 1.3 client configuration that accepts only
// the certificate leaf and keeps no session cache, so that every session
// is a full handshake. With x25519 the key share is pinned to X25519,
// which OpenSSL-based peers and Go servers both pick, instead of Go's
// default hybrid post-quantum share.
func ClientConfig(leaf []byte, x25519 bool) *tls.Config {
	c := &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: "localhost",
		// The chain is not verified: the handshake signature still is, and
		// VerifyConnection pins the leaf. Chain building would only add
		// client CPU, which shares the machine with the server under test.
		InsecureSkipVerify: true,
		VerifyConnection:   pinLeaf(leaf),
	}
	if x25519 {
		c.CurvePreferences = []tls.CurveID{tls.X25519}
	}
	return c
}

func pinLeaf(leaf []byte) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, leaf) {
			return errors.New("server presented another certificate than the one under test")
		}
		return nil
	}
}

// LeafDER returns the DER of the first certificate in PEM text.
func LeafDER(pemText []byte) ([]byte, error) {
	for rest := pemText; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no CERTIFICATE block in PEM input")
		}
		if b.Type == "CERTIFICATE" {
			return b.Bytes, nil
		}
	}
}

// dial connects with the session's deadline already set.
func dial(addr string, deadline time.Time) (*net.TCPConn, error) {
	d := net.Dialer{Deadline: deadline}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	tc := c.(*net.TCPConn)
	tc.SetDeadline(deadline)
	return tc, nil
}
