package client

import (
	"fmt"
	"io"
	"strings"
	"sync"
)

// Verbosity is -q, -Q or -v.
type Verbosity int

const (
	Quiet   Verbosity = iota // -q: fatal errors only
	Errors                   // -Q: also warnings (the default)
	Verbose                  // -v: also what happens to the connection
)

// logger writes sslclient's messages to stderr, one line each, prefixed
// "sslclient: ", in the UCSPI tools' words (fatal:, warning:).
type logger struct {
	mu sync.Mutex
	w  io.Writer
	v  Verbosity
}

// newLogger returns a Log writing lines up to verbosity v to w.
func newLogger(w io.Writer, v Verbosity) *logger { return &logger{w: w, v: v} }

// Fatal logs "fatal: ..."; the caller exits.
func (l *logger) Fatal(format string, args ...any) { l.line(Quiet, "fatal: "+format, args...) }

// Warning logs "warning: ...".
func (l *logger) Warning(format string, args ...any) { l.line(Errors, "warning: "+format, args...) }

// Info logs a line at -v.
func (l *logger) Info(format string, args ...any) { l.line(Verbose, format, args...) }

func (l *logger) line(level Verbosity, format string, args ...any) {
	if level > l.v {
		return
	}
	msg := oneLine(fmt.Sprintf(format, args...))
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(l.w, "sslclient: "+msg+"\n")
}

// oneLine writes control characters as \xHH: messages carry text the
// server chose (certificate names in a verification error), which must
// not start a new log line or drive a terminal.
func oneLine(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == 0x7f {
			fmt.Fprintf(&b, `\x%02X`, c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
