package tlsworker

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// utRelay is a relay between a real TLS client on loopback TCP and a
// program played by the test through real pipes.
type utRelay struct {
	client    *tls.Conn
	clientTCP *net.TCPConn
	progIn    *os.File      // the program's input: what the client sent
	progOut   *os.File      // the program's output: what the client gets
	exited    chan struct{} // close to say the program has been reaped
	done      chan struct{} // closed when run returns
}

// utStartRelay sets the relay up as a session does: the TLS connection
// after its handshake, and the worker's pipe ends made non-blocking.
func utStartRelay(t *testing.T, idle time.Duration) *utRelay {
	t.Helper()
	server, client := utTLSPair(t)
	inR, inW := utPipe(t)
	outR, outW := utPipe(t)
	toProg, err := nonblocking(inW)
	if err != nil {
		t.Fatal(err)
	}
	fromProg, err := nonblocking(outR)
	if err != nil {
		t.Fatal(err)
	}
	u := &utRelay{client: client, clientTCP: client.NetConn().(*net.TCPConn), progIn: inR, progOut: outW,
		exited: make(chan struct{}), done: make(chan struct{})}
	r := &relay{tls: server, tcp: server.NetConn().(*net.TCPConn), toProg: toProg, fromProg: fromProg,
		idle: idle, exited: u.exited}
	go utRunRelay(r, u.done)
	t.Cleanup(func() { u.cleanup(t) })
	return u
}

func utRunRelay(r *relay, done chan<- struct{}) {
	defer close(done)
	r.run()
}

// cleanup ends what a test left open and makes sure the relay ends too.
func (u *utRelay) cleanup(t *testing.T) {
	u.client.Close()
	u.progOut.Close()
	u.progIn.Close()
	select {
	case <-u.done:
	case <-time.After(utBound):
		t.Error("the relay outlived both of its peers")
	}
}

func utPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// utTLSPair returns the server and client ends of a TLS 1.3 connection
// over loopback TCP, handshake done.
func utTLSPair(t *testing.T) (server, client *tls.Conn) {
	t.Helper()
	key := utKeys(t).ecdsa
	der, pool := utCert(t, key)
	st, ct := utTCPPair(t)
	server = tls.Server(st, &tls.Config{
		Certificates:           []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		SessionTicketsDisabled: true,
	})
	client = tls.Client(ct, utClientConfig(pool, tls.VersionTLS13))
	errc := make(chan error, 1)
	go utHandshakeInto(server, errc)
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return server, client
}

func utHandshakeInto(c *tls.Conn, errc chan<- error) { errc <- c.Handshake() }

// waitDone fails the test if the relay has not ended within d.
func (u *utRelay) waitDone(t *testing.T, d time.Duration, why string) {
	t.Helper()
	select {
	case <-u.done:
	case <-time.After(d):
		t.Fatalf("the relay did not end within %v after %s", d, why)
	}
}

// expectRunning fails the test if the relay ends within d.
func (u *utRelay) expectRunning(t *testing.T, d time.Duration, why string) {
	t.Helper()
	select {
	case <-u.done:
		t.Fatalf("the relay ended %s", why)
	case <-time.After(d):
	}
}

// utDigest is what one side received: its SHA-256 and length.
type utDigest struct {
	sum [sha256.Size]byte
	n   int64
	err error
}

// utHashAll reads r to EOF.
func utHashAll(r io.Reader, out chan<- utDigest) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	var d utDigest
	copy(d.sum[:], h.Sum(nil))
	d.n, d.err = n, err
	out <- d
}

// utSendAll writes p in odd-sized pieces, then closes w's write side
// with closeWrite.
func utSendAll(w io.Writer, p []byte, closeWrite func() error, errc chan<- error) {
	for len(p) > 0 {
		n := min(len(p), 12345)
		if _, err := w.Write(p[:n]); err != nil {
			errc <- err
			return
		}
		p = p[n:]
	}
	errc <- closeWrite()
}

// closeWrite ends the client's side as a client does: close_notify,
// then a FIN.
func (u *utRelay) closeWrite() error {
	if err := u.client.CloseWrite(); err != nil {
		return err
	}
	return u.clientTCP.CloseWrite()
}

func utRandom(t *testing.T, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	if _, err := rand.Read(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func utExpectDigest(t *testing.T, who string, d utDigest, sent []byte) {
	t.Helper()
	if d.err != nil {
		t.Errorf("%s: read error %v", who, d.err)
	}
	if d.n != int64(len(sent)) || d.sum != sha256.Sum256(sent) {
		t.Errorf("%s got %d bytes that differ from the %d sent", who, d.n, len(sent))
	}
}

// TestRelayBothWays: megabytes of random bytes cross in both directions
// at once and arrive unchanged; both ends' EOFs end the relay.
func TestRelayBothWays(t *testing.T) {
	u := utStartRelay(t, time.Minute)
	up, down := utRandom(t, 3<<20+17), utRandom(t, 4<<20+3)
	progGot, clientGot := make(chan utDigest, 1), make(chan utDigest, 1)
	sent := make(chan error, 2)
	go utHashAll(u.progIn, progGot)
	go utHashAll(u.client, clientGot)
	go utSendAll(u.client, up, u.closeWrite, sent)
	go utSendAll(u.progOut, down, u.progOut.Close, sent)
	for range 2 {
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
	}
	utExpectDigest(t, "the program", <-progGot, up)
	utExpectDigest(t, "the client", <-clientGot, down)
	u.waitDone(t, utBound, "both sides closed")
}

// TestRelayClientHalfClose: the client's close_notify and FIN reach the
// program as EOF on its input, and the program's reply still reaches
// the client afterwards.
func TestRelayClientHalfClose(t *testing.T) {
	u := utStartRelay(t, time.Minute)
	if _, err := u.client.Write([]byte("QUIT\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := u.closeWrite(); err != nil {
		t.Fatal(err)
	}
	u.progIn.SetReadDeadline(time.Now().Add(utBound))
	got, err := io.ReadAll(u.progIn)
	if err != nil || string(got) != "QUIT\r\n" {
		t.Fatalf("the program read %q, %v; want the request, then EOF", got, err)
	}
	u.expectRunning(t, 100*time.Millisecond, "with the program's output still open")
	if _, err := u.progOut.Write([]byte("221 bye\r\n")); err != nil {
		t.Fatal(err)
	}
	u.progOut.Close()
	u.client.SetReadDeadline(time.Now().Add(utBound))
	got, err = io.ReadAll(u.client)
	if err != nil || string(got) != "221 bye\r\n" {
		t.Fatalf("the client read %q, %v; want the reply, then close_notify", got, err)
	}
	u.waitDone(t, utBound, "both sides closed")
}

// TestRelayProgramHalfClose: the program's EOF reaches the client as
// close_notify and a FIN, while what the client sends still reaches the
// program.
func TestRelayProgramHalfClose(t *testing.T) {
	u := utStartRelay(t, time.Minute)
	if _, err := u.progOut.Write([]byte("220 ready\r\n")); err != nil {
		t.Fatal(err)
	}
	u.progOut.Close()
	u.client.SetReadDeadline(time.Now().Add(utBound))
	got, err := io.ReadAll(u.client)
	if err != nil || string(got) != "220 ready\r\n" {
		t.Fatalf("the client read %q, %v; want the greeting, then close_notify", got, err)
	}
	u.clientTCP.SetReadDeadline(time.Now().Add(utBound))
	if n, err := u.clientTCP.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("after close_notify the TCP connection gave %d bytes, %v; want a FIN", n, err)
	}
	u.expectRunning(t, 100*time.Millisecond, "before the client closed")
	if _, err := u.client.Write([]byte("late data")); err != nil {
		t.Fatal(err)
	}
	if err := u.closeWrite(); err != nil {
		t.Fatal(err)
	}
	u.progIn.SetReadDeadline(time.Now().Add(utBound))
	got, err = io.ReadAll(u.progIn)
	if err != nil || string(got) != "late data" {
		t.Fatalf("the program read %q, %v; want what the client sent after the program's EOF", got, err)
	}
	u.waitDone(t, utBound, "both sides closed")
}

// TestRelayProgramExited: once the program's output is closed and the
// program is reaped, the relay ends without waiting for the client,
// which then sees the connection close.
func TestRelayProgramExited(t *testing.T) {
	u := utStartRelay(t, time.Minute)
	u.progOut.Close()
	u.expectRunning(t, 200*time.Millisecond, "while the client could still send to a live program")
	close(u.exited)
	u.waitDone(t, utBound, "the program exited")
	u.client.SetReadDeadline(time.Now().Add(utBound))
	if got, err := io.ReadAll(u.client); len(got) != 0 || err != nil {
		t.Errorf("the client read %q, %v; want EOF", got, err)
	}
	// The client's late bytes find no relay: the program's input is at
	// EOF, not fed.
	u.client.Write([]byte("too late"))
	u.progIn.SetReadDeadline(time.Now().Add(utBound))
	if got, err := io.ReadAll(u.progIn); len(got) != 0 || err != nil {
		t.Errorf("the program read %q, %v; want EOF", got, err)
	}
}

// TestRelayIdleTimeout: a relay with no traffic ends about when the
// idle time runs out, closing the program's input and the client's
// connection.
func TestRelayIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	start := time.Now()
	u := utStartRelay(t, idle)
	u.waitDone(t, idle+2*time.Second, "the idle time ran out")
	if took := time.Since(start); took < idle {
		t.Errorf("the relay ended after %v, before the idle time of %v", took, idle)
	}
	u.progIn.SetReadDeadline(time.Now().Add(utBound))
	if got, err := io.ReadAll(u.progIn); len(got) != 0 || err != nil {
		t.Errorf("the program read %q, %v; want EOF", got, err)
	}
	u.client.SetReadDeadline(time.Now().Add(utBound))
	if _, err := u.client.Read(make([]byte, 1)); err == nil {
		t.Error("the client's connection is still open")
	}
}

// TestRelayTrickle: a byte now and then keeps the relay alive for
// longer than the idle time, first from the client only, then from the
// program only; when the bytes stop, it ends.
func TestRelayTrickle(t *testing.T) {
	const idle = 300 * time.Millisecond
	u := utStartRelay(t, idle)
	for _, fromClient := range []bool{true, false} {
		for range 8 { // 2 idle times a direction
			time.Sleep(idle / 4)
			u.trickle(t, fromClient)
		}
	}
	u.expectRunning(t, idle/4, "though bytes kept moving")
	stopped := time.Now()
	u.waitDone(t, idle+2*time.Second, "the bytes stopped")
	if took := time.Since(stopped); took < idle/2 {
		t.Errorf("the relay ended %v after the last byte, idle time %v", took, idle)
	}
}

// trickle moves one byte, from the client or from the program, and
// checks it arrives.
func (u *utRelay) trickle(t *testing.T, fromClient bool) {
	t.Helper()
	var w io.Writer = u.progOut
	var r io.Reader = u.client
	if fromClient {
		w, r = u.client, u.progIn
	}
	if _, err := w.Write([]byte{'.'}); err != nil {
		t.Fatal(err)
	}
	u.client.SetReadDeadline(time.Now().Add(utBound))
	u.progIn.SetReadDeadline(time.Now().Add(utBound))
	b := make([]byte, 1)
	if _, err := io.ReadFull(r, b); err != nil || !bytes.Equal(b, []byte{'.'}) {
		t.Fatalf("the trickled byte arrived as %q, %v", b, err)
	}
}
