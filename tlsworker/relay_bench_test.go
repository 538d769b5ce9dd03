package tlsworker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"os"
	"testing"
	"time"
)

// benchChunk is what the client or the program writes at a time.
const benchChunk = 64 << 10

// benchServerConfig is a TLS configuration with a fresh P-256
// certificate, made in the test.
func benchServerConfig(b *testing.B) *tls.Config {
	b.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// benchRelay is a relay between a real TLS connection over loopback TCP
// and a pair of real pipes, with both the client and the program in this
// process.
type benchRelay struct {
	client   *tls.Conn
	clientTC *net.TCPConn
	progIn   *os.File // the program's stdin: what the relay writes
	progOut  *os.File // the program's stdout: what the relay reads
	done     chan struct{}
}

func startBenchRelay(b *testing.B) *benchRelay {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *tls.Conn, 1)
	go benchAcceptTLS(ln, benchServerConfig(b), accepted)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	client := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	if err := client.Handshake(); err != nil {
		b.Fatal(err)
	}
	server := <-accepted
	if server == nil {
		b.Fatal("server handshake failed")
	}
	return newBenchRelay(b, client, c.(*net.TCPConn), server)
}

func benchAcceptTLS(ln net.Listener, cfg *tls.Config, out chan<- *tls.Conn) {
	c, err := ln.Accept()
	if err != nil {
		out <- nil
		return
	}
	tc := tls.Server(c, cfg)
	if tc.Handshake() != nil {
		c.Close()
		tc = nil
	}
	out <- tc
}

func newBenchRelay(b *testing.B, client *tls.Conn, clientTC *net.TCPConn, server *tls.Conn) *benchRelay {
	b.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	r := &relay{tls: server, tcp: server.NetConn().(*net.TCPConn), toProg: inW, fromProg: outR,
		idle: time.Hour, exited: make(chan struct{})}
	br := &benchRelay{client: client, clientTC: clientTC, progIn: inR, progOut: outW, done: make(chan struct{})}
	go benchRunRelay(r, br.done)
	return br
}

func benchRunRelay(r *relay, done chan<- struct{}) {
	defer close(done)
	r.run()
}

// finish ends the session from both sides and waits for the relay.
func (br *benchRelay) finish(b *testing.B) {
	br.progOut.Close()
	br.client.CloseWrite()
	br.clientTC.CloseWrite()
	select {
	case <-br.done:
	case <-time.After(10 * time.Second):
		b.Fatal("relay did not end after both sides closed")
	}
	br.client.Close()
	br.progIn.Close()
}

// BenchmarkRelayClientToProgram: the client sends, the relay decrypts
// and writes to the program's pipe, the program discards.
func BenchmarkRelayClientToProgram(b *testing.B) {
	br := startBenchRelay(b)
	got := make(chan int64, 1)
	go benchDiscard(br.progIn, got)
	buf := make([]byte, benchChunk)
	b.SetBytes(benchChunk)
	b.ResetTimer()
	for range b.N {
		if _, err := br.client.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	br.client.CloseWrite()
	br.clientTC.CloseWrite()
	n := <-got // the program has read it all
	b.StopTimer()
	if n != int64(b.N)*benchChunk {
		b.Fatalf("program read %d bytes, client sent %d", n, int64(b.N)*benchChunk)
	}
	br.finish(b)
}

func benchDiscard(r io.Reader, got chan<- int64) {
	n, _ := io.Copy(io.Discard, r)
	got <- n
}

// BenchmarkRelayProgramToClient: the program writes, the relay encrypts,
// the client reads.
func BenchmarkRelayProgramToClient(b *testing.B) {
	br := startBenchRelay(b)
	b.SetBytes(benchChunk)
	b.ResetTimer()
	go benchWriteChunks(br.progOut, b.N)
	n, err := io.Copy(io.Discard, br.client)
	b.StopTimer()
	if err != nil || n != int64(b.N)*benchChunk {
		b.Fatalf("client read %d bytes (%v), program wrote %d", n, err, int64(b.N)*benchChunk)
	}
	br.finish(b)
}

// benchWriteChunks is the program: n chunks, then EOF.
func benchWriteChunks(w *os.File, n int) {
	buf := make([]byte, benchChunk)
	for range n {
		if _, err := w.Write(buf); err != nil {
			break
		}
	}
	w.Close()
}
