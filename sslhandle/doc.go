// Package sslhandle makes a Go program a TLS server of long-lived
// handler processes, with sslserver's privilege separation: the
// supervisor (root) accepts and applies sslserver's options and rules;
// each connection's TLS is done by a confined TLS worker that holds no
// key, and signs through a key holder; and only the session's plaintext
// reaches one of -c handler processes, which run the program's Handler
// under the ids of -u and -g, one session at a time each, and are
// replaced when one dies. It is ucspi-ssl's sslhandle without TLS (or the
// key) in the handler, and with STARTTLS.
//
// A complete program:
//
//	package main
//
//	import (
//		"context"
//		"fmt"
//		"os"
//
//		"github.com/ucspi-tls/sslserver/sslhandle"
//	)
//
//	func main() {
//		os.Exit(sslhandle.Main(greet))
//	}
//
//	// greet serves one session; its result is the session's exit status.
//	func greet(ctx context.Context, s *sslhandle.Session) int {
//		fmt.Fprintf(s.Conn(), "hello %s over %s\n", s.RemoteAddr(), s.Getenv("SSL_PROTOCOL"))
//		return 0
//	}
//
// run as root with sslserver's command line, less the program:
//
//	CERTFILE=cert.pem KEYFILE=key.pem greet -c 8 -u 1000 -g 1000 0 4433
//
// Main must be the first thing main does: the same binary is started
// again as TLS worker, key holder and handler, and Main tells the roles
// apart by argv[0]. The arguments after host and port reach every
// handler as Session.Args; Server.Check can vet them at start.
//
// Under -n a session starts in plaintext on the raw connection, and the
// handler calls Session.StartTLS when the client asks for TLS (SMTP's
// STARTTLS); see sslhandle/example/starttls for a whole SMTP-like
// server. docs/sslhandle.md has the options, the handler's life and
// descriptors, and what a handler may hold.
package sslhandle
