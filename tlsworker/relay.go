package tlsworker

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// relayBuf is one TLS record's worth of plaintext.
const relayBuf = 16 << 10

// Relay moves plaintext between a TLS connection (over tcp) and a
// program's pipes until the session is over, as a worker does: see
// relay. The pipes must be non-blocking (os.Pipe's are). The in-process
// server of make bench uses it, so the ceiling it measures relays
// exactly as sslserver does.
func Relay(conn *tls.Conn, tcp *net.TCPConn, toProg, fromProg *os.File, idle time.Duration, exited <-chan struct{}) {
	r := &relay{tls: conn, tcp: tcp, toProg: toProg, fromProg: fromProg, idle: idle, exited: exited}
	r.run()
}

// relay moves plaintext between the TLS connection and the program's
// pipes, with half-close in both directions: the client's EOF closes the
// program's input, the program's EOF sends close_notify and a FIN.
type relay struct {
	tls      *tls.Conn
	tcp      *net.TCPConn
	toProg   *os.File
	fromProg *os.File
	idle     time.Duration
	exited   <-chan struct{}
	last     atomic.Int64 // unix nanoseconds of the last byte moved
	stopOnce sync.Once
	stopped  chan struct{}
}

func (r *relay) run() {
	r.stopped = make(chan struct{})
	r.touch()
	clientDone := make(chan struct{})
	programDone := make(chan struct{})
	go r.clientToProgram(clientDone)
	go r.programToClient(programDone)
	go r.watchIdle()
	<-programDone
	// The program has said all it will say; wait for the client's EOF
	// unless the program is gone, in which case nobody would read it.
	select {
	case <-clientDone:
	case <-r.exited:
	case <-r.stopped:
	}
	r.stop()
	<-clientDone
}

func (r *relay) touch() { r.last.Store(time.Now().UnixNano()) }

// stop ends both directions at once: idle timeout, or the session is over.
func (r *relay) stop() {
	r.stopOnce.Do(func() {
		close(r.stopped)
		r.tcp.Close()
		r.toProg.Close()
		r.fromProg.Close()
	})
}

func (r *relay) clientToProgram(done chan<- struct{}) {
	defer close(done)
	defer r.toProg.Close()
	buf := make([]byte, relayBuf)
	for {
		n, err := r.tls.Read(buf)
		if n > 0 {
			r.touch()
			if _, werr := r.toProg.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				r.stop() // the client is gone, not done: nobody takes the program's output
			}
			return
		}
	}
}

func (r *relay) programToClient(done chan<- struct{}) {
	defer close(done)
	buf := make([]byte, relayBuf)
	for {
		n, err := r.fromProg.Read(buf)
		if n > 0 {
			r.touch()
			if _, werr := r.tls.Write(buf[:n]); werr != nil {
				// The client is gone: stop both ways, or a program blocked
				// writing its output would keep the session open.
				r.stop()
				return
			}
		}
		if err != nil {
			r.closeWrite()
			return
		}
	}
}

// closeWrite sends close_notify and then a FIN; the client may go on
// sending.
func (r *relay) closeWrite() {
	r.tls.SetWriteDeadline(time.Now().Add(signWait))
	r.tls.CloseWrite()
	r.tcp.CloseWrite()
}

func (r *relay) watchIdle() {
	if r.idle <= 0 {
		return
	}
	for {
		due := time.Unix(0, r.last.Load()).Add(r.idle)
		t := time.NewTimer(time.Until(due))
		select {
		case <-r.stopped:
			t.Stop()
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, r.last.Load())) >= r.idle {
			r.stop()
			return
		}
	}
}
