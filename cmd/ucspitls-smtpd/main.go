// Command ucspitls-smtpd is a small SMTP server that turns TLS on through
// the UCSPI-TLS protocol. It stores nothing: it exists to show, and to
// test, what an application sees under sslserver -n.
//
// Typical use, for a session that starts in plaintext and offers STARTTLS:
//
//	CERTFILE=cert.pem sslserver -n 127.0.0.1 2525 ucspitls-smtpd mx.example.org
//
// It talks SMTP on fds 0 and 1 and greets with "220 name ESMTP
// ucspitls-smtpd"; name is the argument, else $SSLLOCALHOST, else the
// host name. STARTTLS is offered while $SSLCTLFD is set and TLS is not on
// yet. On STARTTLS it writes Y to $SSLCTLFD, reads the NAME=value reply
// block, moves $SSLREADFD and $SSLWRITEFD onto fds 0 and 1, and forgets
// everything the client said before, including bytes it pipelined after
// STARTTLS (RFC 3207 section 4.2; CVE-2011-0411). EOF on the control fd
// before the block ends means the handshake failed: it exits 111.
//
// With $UCSPITLS set to "!", MAIL is refused with 530 until TLS is on. If
// $SSL_PROTOCOL is already in the environment (sslserver -N -s), TLS is
// taken to be on from the start.
//
// DATA reads the message up to the line holding a lone dot and replies
// "250 ok N bytes received over TLSv1.3 TLS_AES_128_GCM_SHA256" (or "over
// plaintext"), N counting the message after dot-unstuffing with CRLF line
// ends. It logs one line on stderr when TLS comes on. Exit codes: 0 after
// QUIT or client EOF, 100 for a bad command line or environment, 111 for a
// failed handshake or an I/O error.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ucspi-tls/sslserver/internal/getopt"
	"github.com/ucspi-tls/sslserver/protocol"
)

const progName = "ucspitls-smtpd"

// help is what -h and --help print.
const help = `usage: ucspitls-smtpd [ name ]

A small SMTP server for one session on fds 0 and 1 that turns TLS on
through UCSPI-TLS (sslserver -n) and stores nothing: a demo and a test.
name is the greeting's host name.

Options:
  -h, --help  print this help and exit 0

Environment:
  SSLLOCALHOST                     the name when none is given
  SSLCTLFD, SSLREADFD, SSLWRITEFD  UCSPI-TLS descriptors: STARTTLS is offered
  UCSPITLS                         "!": refuse MAIL until TLS is on
  SSL_PROTOCOL, SSL_CIPHER         TLS is already on (sslserver -N -s)

Exit status: 0 after QUIT or EOF, 100 usage or a bad environment, 111 a
failed handshake or an I/O error.
`

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// errUsage marks setup errors that retrying cannot fix.
var errUsage = errors.New("usage")

// run returns the exit code for one SMTP session on fds 0 and 1.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(os.Stdout, help)
		return protocol.ExitOK
	}
	s, err := newSession(args, getenv, stderr)
	if err == nil {
		err = s.serve()
	}
	if err == nil {
		return protocol.ExitOK
	}
	if errors.Is(err, errUsage) {
		getopt.PrintUsage(stderr, progName, err)
		return protocol.ExitUsage
	}
	fmt.Fprintf(stderr, "%s: fatal: %v\n", progName, err)
	return protocol.ExitTemp
}

// newSession reads the command line and environment into a session that
// talks on fds 0 and 1.
func newSession(args []string, getenv func(string) string, stderr io.Writer) (*session, error) {
	if len(args) > 1 {
		return nil, fmt.Errorf("%w: %s [name]", errUsage, progName)
	}
	ucspi, err := ucspiFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	s := newPlainSession(hostName(args, getenv), os.Stdin, os.Stdout, stderr)
	s.ucspi = ucspi
	s.requireTLS = getenv("UCSPITLS") == "!"
	if p := getenv("SSL_PROTOCOL"); p != "" {
		s.tls = &tlsInfo{protocol: p, cipher: getenv("SSL_CIPHER")}
	}
	return s, nil
}

// hostName picks the name for the greeting and the EHLO reply.
func hostName(args []string, getenv func(string) string) string {
	if len(args) == 1 && args[0] != "" {
		return args[0]
	}
	if h := getenv("SSLLOCALHOST"); h != "" {
		return h
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}
