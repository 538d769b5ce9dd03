package ceiling

import (
	"crypto/tls"
	"net"

	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/tlsworker"
)

func setBlocking(fd uintptr) { unix.SetNonblock(int(fd), false) }

// runRelay relays with sslserver's own relay code, then reaps the
// program.
func runRelay(tc *tls.Conn, tcp *net.TCPConn, p *pipes, prog *program) {
	tlsworker.Relay(tc, tcp, p.inW, p.outR, 0, prog.exited)
	prog.reapOrKill()
}
