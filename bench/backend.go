package bench

import (
	"io"
	"net"
	"sync"
)

// backend is the plain TCP service behind the TLS fronts (sslhandle,
// stunnel's connect mode, hitch) in the front cells: it runs in the
// driver, the same for every front, and does what the cell's program
// would: close at once, discard, or echo.
type backend struct {
	ln   net.Listener
	prog program
	wg   sync.WaitGroup
}

func startBackend(p program) (*backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &backend{ln: ln, prog: p}
	b.wg.Add(1)
	go b.serve()
	return b, nil
}

func (b *backend) addr() string { return b.ln.Addr().String() }

func (b *backend) serve() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		go serveBackend(c.(*net.TCPConn), b.prog)
	}
}

// serveBackend is one backend connection.
func serveBackend(c *net.TCPConn, p program) {
	defer c.Close()
	switch p {
	case progBackendDiscard:
		io.Copy(io.Discard, c)
	case progBackendEcho:
		io.Copy(c, c)
		c.CloseWrite()
	}
}

func (b *backend) stop() {
	b.ln.Close()
	b.wg.Wait()
}
