package sslhandle_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ucspi-tls/sslserver/sslhandle"
)

// A program that echoes each session back, in handler processes started
// by sslhandle (run as root: greet -c 4 -u 1000 -g 1000 0 4433). Its
// handler tells the client which TLS it came over, copies until the
// client's end of data, and half-closes.
func Example() {
	os.Exit(sslhandle.Main(func(ctx context.Context, s *sslhandle.Session) int {
		c := s.Conn()
		fmt.Fprintf(c, "hello %s, over %s\n", s.RemoteAddr(), s.Getenv("SSL_PROTOCOL"))
		if _, err := io.Copy(c, c); err != nil {
			return 111
		}
		c.CloseWrite()
		return 0
	}))
}

// A server under -n: plaintext first, then TLS when the client asks.
func ExampleSession_StartTLS() {
	srv := &sslhandle.Server{Handler: func(ctx context.Context, s *sslhandle.Session) int {
		if !s.Delayed() {
			return 100 // run with -n
		}
		fmt.Fprintf(s.Conn(), "say STARTTLS\r\n")
		conn, vars, err := s.StartTLS()
		if errors.Is(err, sslhandle.ErrNotDelayed) {
			return 100
		}
		if err != nil {
			return 111 // the handshake failed
		}
		fmt.Fprintf(conn, "now over TLS: %q\r\n", vars)
		return 0
	}}
	os.Exit(srv.Main())
}
