package tlsworker

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"math"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
)

// benchSigners are the key types a certificate may have, each with the
// options TLS 1.3 signs with.
func benchSigners(b *testing.B) []struct {
	name   string
	signer crypto.Signer
	opts   crypto.SignerOpts
} {
	b.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	return []struct {
		name   string
		signer crypto.Signer
		opts   crypto.SignerOpts
	}{
		{"ECDSA-P256", ec, crypto.SHA256},
		{"RSA-2048-PSS", rk, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}},
		{"Ed25519", ed, crypto.Hash(0)},
	}
}

// benchKeyHolder serves one worker channel the way the key holder does
// (workerClient, with an allowance no benchmark exhausts) and returns the
// worker's signer on the other end of a real SOCK_SEQPACKET pair.
func benchKeyHolder(b *testing.B, signer crypto.Signer) *remoteSigner {
	b.Helper()
	worker, holder := benchChannels(b)
	w := &workerClient{ch: holder, signers: []crypto.Signer{signer}, wait: time.Minute, grants: make(chan struct{}, 1)}
	w.grant(math.MaxInt)
	done := make(chan struct{})
	go benchServe(w, done)
	b.Cleanup(func() {
		worker.Close() // the key holder sees EOF and ends the channel
		<-done
	})
	return &remoteSigner{pub: signer.Public(), key: 0, ch: worker, timeout: signWait}
}

func benchServe(w *workerClient, done chan<- struct{}) {
	defer close(done)
	w.serve()
}

func benchChannels(b *testing.B) (*protocol.Channel, *protocol.Channel) {
	b.Helper()
	fa, fb, err := protocol.Pair("bench")
	if err != nil {
		b.Fatal(err)
	}
	a, err := protocol.NewChannel(fa, protocol.SignReplies)
	if err != nil {
		b.Fatal(err)
	}
	c, err := protocol.NewChannel(fb, protocol.SignRequests)
	if err != nil {
		b.Fatal(err)
	}
	return a, c
}

// benchInput is what TLS hands the signer: a digest, or for Ed25519 the
// message itself.
func benchInput(opts crypto.SignerOpts) []byte {
	sum := sha256.Sum256([]byte("TLS 1.3, server CertificateVerify"))
	if opts.HashFunc() == 0 {
		return []byte("TLS 1.3, server CertificateVerify: 64 spaces, context, transcript hash")
	}
	return sum[:]
}

// BenchmarkSignerRoundTrip is a handshake's one signature as the worker
// gets it: SignRequest over the channel, the key holder's checks and
// signature, Signature back. "direct" is the same signature in-process,
// so the difference is what the separate key holder costs.
func BenchmarkSignerRoundTrip(b *testing.B) {
	for _, k := range benchSigners(b) {
		in := benchInput(k.opts)
		b.Run(k.name+"/direct", func(b *testing.B) {
			for b.Loop() {
				if _, err := k.signer.Sign(rand.Reader, in, k.opts); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(k.name+"/keyholder", func(b *testing.B) {
			s := benchKeyHolder(b, k.signer)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Sign(rand.Reader, in, k.opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkChannelRoundTrip is the channel alone: a SignRequest out and
// a Signature back, answered without signing.
func BenchmarkChannelRoundTrip(b *testing.B) {
	worker, holder := benchChannels(b)
	done := make(chan struct{})
	go benchAnswer(holder, done)
	req := &protocol.SignRequest{Hash: crypto.SHA256, Digest: benchInput(crypto.SHA256)}
	b.ReportAllocs()
	for b.Loop() {
		if err := worker.Send(req); err != nil {
			b.Fatal(err)
		}
		if m, _, err := worker.Recv(); err != nil || m.Type() != protocol.MsgSignature {
			b.Fatalf("reply %v, %v", m, err)
		}
	}
	worker.Close()
	<-done
}

func benchAnswer(ch *protocol.Channel, done chan<- struct{}) {
	defer close(done)
	defer ch.Close()
	sig := &protocol.Signature{Sig: make([]byte, 72)}
	for {
		if _, _, err := ch.Recv(); err != nil {
			return
		}
		if ch.Send(sig) != nil {
			return
		}
	}
}
