package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
	"github.com/ucspi-tls/sslserver/sslhandle"
)

// dialWait bounds the connection to the backend.
const dialWait = 10 * time.Second

var errNoDelayed = errors.New("the relay needs TLS from the start: run sslhandle without -n")

// backend is where sessions go, from the command line.
type backend struct {
	network, addr string
	proxy         bool // send a PROXY protocol v2 header first
}

// checkArgs vets the operands after host and port in the supervisor,
// at start.
func checkArgs(args []string) error {
	_, err := parseBackend(args)
	return err
}

func parseBackend(args []string) (backend, error) {
	if len(args) < 1 || len(args) > 2 {
		return backend{}, errors.New("need backend: host:port or a Unix socket path, then optionally proxy")
	}
	b := backend{network: "tcp", addr: args[0]}
	if strings.Contains(b.addr, "/") {
		b.network = "unix"
	} else if _, _, err := net.SplitHostPort(b.addr); err != nil {
		return backend{}, fmt.Errorf("backend %q: %v", b.addr, err)
	}
	if len(args) == 2 {
		if args[1] != "proxy" {
			return backend{}, fmt.Errorf("unknown word %q after the backend; the only one is proxy", args[1])
		}
		b.proxy = true
	}
	return b, nil
}

// relay is the handler: one session's plaintext to and from a new
// backend connection, with half-close carried both ways.
func relay(ctx context.Context, s *sslhandle.Session) int {
	b, err := parseBackend(s.Args())
	if err != nil {
		return complain(err, protocol.ExitUsage)
	}
	if s.Delayed() {
		// The connection is still plaintext, and this handler never asks
		// for TLS: relaying it would serve the backend without TLS.
		return complain(errNoDelayed, protocol.ExitUsage)
	}
	d := net.Dialer{Timeout: dialWait}
	up, err := d.DialContext(ctx, b.network, b.addr)
	if err != nil {
		return complain(err, protocol.ExitTemp)
	}
	defer up.Close()
	if b.proxy {
		if err := writeProxyHeader(up, s); err != nil {
			return complain(err, protocol.ExitTemp)
		}
	}
	conn := s.Conn()
	go closeOnCancel(ctx, up)
	done := make(chan error, 1)
	go pipe(up, conn, done)
	err = copyHalf(conn, up)
	if uerr := <-done; err == nil {
		err = uerr
	}
	if err != nil && ctx.Err() == nil {
		return complain(err, protocol.ExitTemp)
	}
	return protocol.ExitOK
}

// pipe copies the client's data to the backend.
func pipe(dst, src net.Conn, done chan<- error) {
	done <- copyHalf(dst, src)
}

// copyHalf copies until src ends, then half-closes dst.
func copyHalf(dst, src net.Conn) error {
	_, err := io.Copy(dst, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if cerr := cw.CloseWrite(); err == nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
	}
	return err
}

// closeOnCancel drops the backend connection of an aborted session, so
// that the copy from it ends too.
func closeOnCancel(ctx context.Context, c net.Conn) {
	<-ctx.Done()
	c.Close()
}

func complain(err error, code int) int {
	fmt.Fprintf(os.Stderr, "sslhandle: handler %d: %v\n", os.Getpid(), err)
	return code
}
