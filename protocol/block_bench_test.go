package protocol_test

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/ucspi-tls/sslserver/protocol"
)

// benchBlockVars is a reply block as sslserver sends it after a
// handshake: the session's variables and the server certificate's,
// PEM included (the largest value).
func benchBlockVars() []protocol.Var {
	pem := "-----BEGIN CERTIFICATE-----\n" +
		strings.Repeat(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5a}, 48))+"\n", 14) +
		"-----END CERTIFICATE-----\n"
	return []protocol.Var{
		{Name: "SSL_PROTOCOL", Value: "TLSv1.3"},
		{Name: "SSL_CIPHER", Value: "TLS_AES_128_GCM_SHA256"},
		{Name: "SSL_CIPHER_EXPORT", Value: "false"},
		{Name: "SSL_CIPHER_USEKEYSIZE", Value: "128"},
		{Name: "SSL_CIPHER_ALGKEYSIZE", Value: "128"},
		{Name: "SSL_SESSION_RESUMED", Value: "Initial"},
		{Name: "SSL_VERSION_INTERFACE", Value: "sslserver/0.1.0"},
		{Name: "SSL_VERSION_LIBRARY", Value: "Go-crypto/tls/go1.26"},
		{Name: "SSL_TLS_SNI", Value: "mx.example.org"},
		{Name: "SSL_SERVER_S_DN", Value: "/C=DE/O=Example/CN=mx.example.org"},
		{Name: "SSL_SERVER_S_DN_CN", Value: "mx.example.org"},
		{Name: "SSL_SERVER_S_DN_O", Value: "Example"},
		{Name: "SSL_SERVER_S_DN_C", Value: "DE"},
		{Name: "SSL_SERVER_I_DN", Value: "/C=DE/O=Example CA/CN=Example Issuing CA 1"},
		{Name: "SSL_SERVER_I_DN_CN", Value: "Example Issuing CA 1"},
		{Name: "SSL_SERVER_M_SERIAL", Value: "0A1B2C3D4E5F60718293A4B5C6D7E8F9"},
		{Name: "SSL_SERVER_M_VERSION", Value: "3"},
		{Name: "SSL_SERVER_V_START", Value: "Jan  1 00:00:00 2026 GMT"},
		{Name: "SSL_SERVER_V_END", Value: "Jan  1 00:00:00 2027 GMT"},
		{Name: "SSL_SERVER_A_KEY", Value: "id-ecPublicKey"},
		{Name: "SSL_SERVER_A_SIG", Value: "ecdsa-with-SHA256"},
		{Name: "SSL_SERVER_CERT", Value: pem},
		{Name: "SSL_CLIENT_VERIFY", Value: "NONE"},
	}
}

func BenchmarkEncodeBlock(b *testing.B) {
	vars := benchBlockVars()
	block, err := protocol.EncodeBlock(vars)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(block)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := protocol.EncodeBlock(vars); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBlock(b *testing.B) {
	block := benchBlock(b)
	b.SetBytes(int64(len(block)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := protocol.DecodeBlock(block); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadBlock is the application's side: it reads the block from
// the control socket up to its closing \0\0.
func BenchmarkReadBlock(b *testing.B) {
	block := benchBlock(b)
	b.SetBytes(int64(len(block)))
	b.ReportAllocs()
	for b.Loop() {
		vars, err := protocol.ReadBlock(bytes.NewReader(block))
		if err != nil || len(vars) != len(benchBlockVars()) {
			b.Fatalf("ReadBlock: %d vars, %v", len(vars), err)
		}
	}
}

func benchBlock(b *testing.B) []byte {
	b.Helper()
	block, err := protocol.EncodeBlock(benchBlockVars())
	if err != nil {
		b.Fatal(err)
	}
	return block
}

// BenchmarkMessages: the messages of every session, encoded and decoded
// strictly, as they cross between the supervisor, a worker and the key
// holder.
func BenchmarkMessages(b *testing.B) {
	msgs := map[string]protocol.Message{
		"HandshakeDone": &protocol.HandshakeDone{Protocol: "TLSv1.3", Cipher: "TLS_AES_128_GCM_SHA256", Block: benchBlock(b)},
		"SignRequest":   &protocol.SignRequest{Key: 0, Hash: crypto.SHA256, Digest: bytes.Repeat([]byte{7}, 32)},
		"Signature":     &protocol.Signature{Sig: bytes.Repeat([]byte{9}, 72)},
	}
	for name, m := range msgs {
		b.Run(name, func(b *testing.B) {
			p := protocol.Encode(m)
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := protocol.Decode(protocol.Encode(m)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
