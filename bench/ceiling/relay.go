package ceiling

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// relayBuf is one TLS record's worth of plaintext.
const relayBuf = 16 << 10

func setBlocking(fd uintptr) { unix.SetNonblock(int(fd), false) }

// relay moves plaintext between the client and the program with
// half-close both ways, as sslserver's worker does: the client's EOF
// closes the program's input; the program's EOF sends close_notify and
// a FIN, and the client may go on sending until the program exits. A
// client that is gone (a reset, a failed write) ends both directions at
// once: otherwise a program blocked writing output nobody reads would
// keep its input pipe full and the relay blocked writing into it.
type relay struct {
	tls      *tls.Conn
	tcp      *net.TCPConn
	toProg   *os.File
	fromProg *os.File
	stopOnce sync.Once
}

func runRelay(tc *tls.Conn, tcp *net.TCPConn, p *pipes, prog *program) {
	r := &relay{tls: tc, tcp: tcp, toProg: p.inW, fromProg: p.outR}
	clientDone := make(chan struct{})
	programDone := make(chan struct{})
	go r.clientToProgram(clientDone)
	go r.programToClient(programDone)
	<-programDone
	select {
	case <-clientDone:
	case <-prog.exited:
	}
	r.stop()
	<-clientDone
	prog.reapOrKill()
}

// stop ends both directions.
func (r *relay) stop() {
	r.stopOnce.Do(r.closeAll)
}

func (r *relay) closeAll() {
	r.tcp.Close()
	r.toProg.Close()
	r.fromProg.Close()
}

func (r *relay) clientToProgram(done chan<- struct{}) {
	defer close(done)
	defer r.toProg.Close()
	buf := make([]byte, relayBuf)
	for {
		n, err := r.tls.Read(buf)
		if n > 0 {
			if _, werr := r.toProg.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				r.stop()
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
			if _, werr := r.tls.Write(buf[:n]); werr != nil {
				r.stop()
				return
			}
		}
		if err != nil {
			r.tls.CloseWrite()
			r.tcp.CloseWrite()
			return
		}
	}
}
