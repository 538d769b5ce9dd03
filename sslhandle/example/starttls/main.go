// Command starttls is the complete example of a Go program built on
// package sslhandle that starts TLS in the middle of a session: an
// SMTP-like server that stores nothing. Run it as root with -n, so that
// sessions start in plaintext:
//
//	CERTFILE=cert.pem KEYFILE=key.pem starttls -n -c 4 0 2525 mx.example.org
//	swaks --tls --server 127.0.0.1:2525 --to a@example.org
//
// It greets, offers STARTTLS until TLS is on, and answers DATA with
// "250 ok N bytes over PROTOCOL CIPHER" from the SSL_* variables that
// StartTLS returned (or "over plaintext"). Under -N (TLS from the
// start) it offers no STARTTLS.
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ucspi-tls/sslserver/sslhandle"
)

// idle bounds the wait for each command line.
const idle = 5 * time.Minute

func main() {
	os.Exit(sslhandle.Main(serveSMTP))
}

// smtp is one session's state.
type smtp struct {
	s    *sslhandle.Session
	conn sslhandle.Conn
	in   *bufio.Reader
	name string
	tls  string // "PROTOCOL CIPHER" once TLS is on
}

func serveSMTP(ctx context.Context, s *sslhandle.Session) int {
	c := &smtp{s: s, name: "localhost"}
	if args := s.Args(); len(args) > 0 {
		c.name = args[0]
	}
	if !s.Delayed() {
		c.tls = s.Getenv("SSL_PROTOCOL") + " " + s.Getenv("SSL_CIPHER")
	}
	c.use(s.Conn())
	c.reply("220 %s ESMTP sslhandle example", c.name)
	for {
		c.conn.SetReadDeadline(time.Now().Add(idle))
		line, err := c.in.ReadString('\n')
		if err != nil {
			return 0 // the client went away
		}
		if done, code := c.command(strings.TrimRight(line, "\r\n")); done {
			return code
		}
	}
}

func (c *smtp) use(conn sslhandle.Conn) {
	c.conn, c.in = conn, bufio.NewReader(conn)
}

func (c *smtp) reply(format string, args ...any) {
	fmt.Fprintf(c.conn, format+"\r\n", args...)
}

// command answers one command line; done ends the session with code.
func (c *smtp) command(line string) (done bool, code int) {
	verb, _, _ := strings.Cut(strings.ToUpper(line), " ")
	switch verb {
	case "EHLO", "HELO":
		if c.tls == "" && verb == "EHLO" {
			c.reply("250-%s\r\n250 STARTTLS", c.name)
		} else {
			c.reply("250 %s", c.name)
		}
	case "STARTTLS":
		return c.startTLS()
	case "MAIL", "RCPT", "RSET", "NOOP":
		c.reply("250 ok")
	case "DATA":
		return c.data()
	case "QUIT":
		c.reply("221 bye")
		return true, 0
	default:
		c.reply("502 unknown command")
	}
	return false, 0
}

// startTLS runs the handshake and forgets whatever the client sent
// before it (RFC 3207).
func (c *smtp) startTLS() (bool, int) {
	if c.tls != "" {
		c.reply("503 TLS is on already")
		return false, 0
	}
	c.reply("220 go ahead")
	conn, _, err := c.s.StartTLS()
	if err != nil {
		fmt.Fprintf(os.Stderr, "starttls: %v\n", err)
		return true, 111
	}
	c.tls = c.s.Getenv("SSL_PROTOCOL") + " " + c.s.Getenv("SSL_CIPHER")
	c.use(conn)
	return false, 0
}

// data reads the message up to the lone dot.
func (c *smtp) data() (bool, int) {
	c.reply("354 go on")
	n := 0
	for {
		line, err := c.in.ReadString('\n')
		if err != nil {
			return true, 111
		}
		if line == ".\r\n" || line == ".\n" {
			break
		}
		n += len(line)
	}
	over := c.tls
	if over == "" {
		over = "plaintext"
	}
	c.reply("250 ok %d bytes over %s", n, over)
	return false, 0
}
