package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxLine is RFC 5321's limit for a command or text line, CRLF included.
const maxLine = 1000

var (
	errQuit        = errors.New("quit")
	errLineTooLong = errors.New("line too long")
)

// session is one SMTP conversation. Its state is only what RFC 3207 says
// to forget when TLS comes on: the greeting and the mail transaction.
type session struct {
	name       string
	in         *bufio.Reader
	out        *bufio.Writer
	stderr     io.Writer
	ucspi      *ucspiFDs // nil: STARTTLS is not available
	requireTLS bool      // $UCSPITLS is "!"
	tls        *tlsInfo  // nil: plaintext

	greeted  bool
	mailFrom bool
	rcpts    int
}

func newPlainSession(name string, in io.Reader, out io.Writer, stderr io.Writer) *session {
	return &session{
		name:   name,
		in:     bufio.NewReader(in),
		out:    bufio.NewWriter(out),
		stderr: stderr,
	}
}

// commands maps each verb to its handler; anything else gets 502.
var commands = map[string]func(*session, string) error{
	"HELO":     (*session).helo,
	"EHLO":     (*session).ehlo,
	"STARTTLS": (*session).starttls,
	"MAIL":     (*session).mail,
	"RCPT":     (*session).rcpt,
	"DATA":     (*session).data,
	"RSET":     (*session).rset,
	"NOOP":     (*session).noop,
	"QUIT":     (*session).quit,
}

// serve greets and answers commands until QUIT or the client's EOF.
func (s *session) serve() error {
	if err := s.reply("220 %s ESMTP %s", s.name, progName); err != nil {
		return err
	}
	for {
		line, err := readLine(s.in)
		switch {
		case errors.Is(err, errLineTooLong):
			err = s.reply("500 line too long")
		case err == nil:
			err = s.dispatch(line)
		}
		// The client's EOF, even in the middle of DATA, ends the session
		// as QUIT does: there is nobody left to answer.
		if errors.Is(err, errQuit) || err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (s *session) dispatch(line string) error {
	verb, arg, _ := strings.Cut(line, " ")
	handler, ok := commands[strings.ToUpper(verb)]
	if !ok {
		return s.reply("502 unimplemented")
	}
	return handler(s, strings.TrimSpace(arg))
}

// readLine returns one line without its CRLF or LF. A line longer than
// maxLine is read to its end and refused, so memory stays bounded.
func readLine(r *bufio.Reader) (string, error) {
	var line []byte
	tooLong := false
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > maxLine {
			tooLong = true
		} else {
			line = append(line, chunk...)
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err != nil:
			return "", err
		case tooLong:
			return "", errLineTooLong
		}
		return strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r"), nil
	}
}

// reply sends one response line at once: clients that pipeline still
// read every reply in order.
func (s *session) reply(format string, args ...any) error {
	fmt.Fprintf(s.out, format+"\r\n", args...)
	if err := s.out.Flush(); err != nil {
		return fmt.Errorf("writing reply: %w", err)
	}
	return nil
}

// replyLines sends a multi-line response, "-" after the code on all but
// the last line.
func (s *session) replyLines(code int, lines []string) error {
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		fmt.Fprintf(s.out, "%d%s%s\r\n", code, sep, l)
	}
	if err := s.out.Flush(); err != nil {
		return fmt.Errorf("writing reply: %w", err)
	}
	return nil
}

func (s *session) resetTransaction() {
	s.mailFrom = false
	s.rcpts = 0
}

func (s *session) offerSTARTTLS() bool {
	return s.ucspi != nil && s.tls == nil
}

func (s *session) helo(arg string) error {
	if arg == "" {
		return s.reply("501 HELO needs a domain")
	}
	s.resetTransaction()
	s.greeted = true
	return s.reply("250 %s", s.name)
}

func (s *session) ehlo(arg string) error {
	if arg == "" {
		return s.reply("501 EHLO needs a domain")
	}
	s.resetTransaction()
	s.greeted = true
	lines := []string{s.name, "PIPELINING", "8BITMIME"}
	if s.offerSTARTTLS() {
		lines = append(lines, "STARTTLS")
	}
	return s.replyLines(250, lines)
}

// starttls switches to TLS. A handshake failure ends the session: the
// client is mid-handshake and cannot be answered in plaintext.
func (s *session) starttls(arg string) error {
	switch {
	case s.ucspi == nil:
		return s.reply("502 unimplemented")
	case s.tls != nil:
		return s.reply("503 TLS already active")
	case arg != "":
		return s.reply("501 STARTTLS takes no argument")
	}
	if err := s.reply("220 ready to start TLS"); err != nil {
		return err
	}
	info, err := s.ucspi.start()
	if err != nil {
		return err
	}
	s.enterTLS(info)
	return nil
}

// enterTLS reads and writes the decrypted channel from now on. The old
// reader is dropped with whatever the client pipelined after STARTTLS,
// and the greeting and transaction are forgotten, as RFC 3207 requires.
func (s *session) enterTLS(info *tlsInfo) {
	s.in = bufio.NewReader(os.NewFile(0, "tls-read"))
	s.out = bufio.NewWriter(os.NewFile(1, "tls-write"))
	s.tls = info
	s.greeted = false
	s.resetTransaction()
	fmt.Fprintf(s.stderr, "%s: tls on: %s\n", progName, info)
}

func (s *session) mail(arg string) error {
	switch {
	case s.requireTLS && s.tls == nil:
		return s.reply("530 must issue a STARTTLS command first")
	case !s.greeted:
		return s.reply("503 send EHLO or HELO first")
	case s.mailFrom:
		return s.reply("503 nested MAIL command")
	case !hasPrefixFold(arg, "FROM:"):
		return s.reply("501 syntax: MAIL FROM:<address>")
	}
	s.mailFrom = true
	return s.reply("250 ok")
}

func (s *session) rcpt(arg string) error {
	switch {
	case !s.mailFrom:
		return s.reply("503 send MAIL first")
	case !hasPrefixFold(arg, "TO:"):
		return s.reply("501 syntax: RCPT TO:<address>")
	}
	s.rcpts++
	return s.reply("250 ok")
}

func (s *session) data(arg string) error {
	switch {
	case s.rcpts == 0:
		return s.reply("503 send RCPT first")
	case arg != "":
		return s.reply("501 DATA takes no argument")
	}
	if err := s.reply("354 end data with <CR><LF>.<CR><LF>"); err != nil {
		return err
	}
	n, err := readMessage(s.in)
	s.resetTransaction()
	switch {
	case errors.Is(err, errLineTooLong):
		return s.reply("500 line too long")
	case err != nil:
		return err
	}
	return s.reply("250 ok %d bytes received over %s", n, s.tls)
}

// readMessage reads DATA up to the lone dot and returns the message's
// size after dot-unstuffing, counting CRLF line ends. An over-long line
// does not stop the reading, so the client and server stay in step.
func readMessage(r *bufio.Reader) (int, error) {
	n := 0
	var tooLong error
	for {
		line, err := readLine(r)
		switch {
		case errors.Is(err, errLineTooLong):
			tooLong = err
			continue
		case err != nil:
			return n, err
		case line == ".":
			return n, tooLong
		}
		n += len(strings.TrimPrefix(line, ".")) + len("\r\n")
	}
}

func (s *session) rset(string) error {
	s.resetTransaction()
	return s.reply("250 ok")
}

func (s *session) noop(string) error {
	return s.reply("250 ok")
}

func (s *session) quit(string) error {
	if err := s.reply("221 %s closing", s.name); err != nil {
		return err
	}
	return errQuit
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
