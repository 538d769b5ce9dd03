package supervisor

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// Verbosity is -q, -Q, -v or -V.
type Verbosity int

const (
	Quiet   Verbosity = iota // -q: fatal errors only
	Errors                   // -Q: also warnings (the default)
	Verbose                  // -v: also every session event
	Cipher                   // -V: as -v, and the protocol and cipher of each session
)

// Log writes the supervisor's events. Each event is one hclog call whose
// message is the classic line existing log readers expect (without the
// program-name prefix) and whose arguments carry the same facts as
// fields, so the JSON form needs no second vocabulary.
type Log struct {
	h         hclog.Logger
	verbosity Verbosity
}

// NewLog returns a Log writing to w: classic lines
// ("sslserver: pid 4711 from 192.0.2.7"), or hclog's JSON when json.
func NewLog(w io.Writer, name string, v Verbosity, json bool) *Log {
	level := map[Verbosity]hclog.Level{Quiet: hclog.Error, Errors: hclog.Warn, Verbose: hclog.Info, Cipher: hclog.Info}[v]
	if json {
		h := hclog.New(&hclog.LoggerOptions{Name: name, Output: w, Level: level, JSONFormat: true})
		return &Log{h: h, verbosity: v}
	}
	h := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: name, Output: io.Discard, Level: hclog.Off})
	h.RegisterSink(&classicSink{w: w, prefix: name + ": ", level: level})
	return &Log{h: h, verbosity: v}
}

// classicSink prints "name: message", one line an event, no timestamp
// (the service manager's logger adds one).
type classicSink struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	level  hclog.Level
}

func (s *classicSink) Accept(_ string, level hclog.Level, msg string, _ ...interface{}) {
	if level < s.level {
		return
	}
	line := s.prefix + strings.ReplaceAll(msg, "\n", " ") + "\n"
	s.mu.Lock()
	defer s.mu.Unlock()
	io.WriteString(s.w, line)
}

// Status logs "status: n/max".
func (l *Log) Status(n, max int) {
	l.h.Info(fmt.Sprintf("status: %d/%d", n, max), "event", "status", "active", n, "max", max)
}

// Pid logs "pid N from IP" for a new session.
func (l *Log) Pid(pid int, remote string) {
	l.h.Info(fmt.Sprintf("pid %d from %s", pid, remote), "event", "pid", "pid", pid, "remote_ip", remote)
}

// OK logs "ok N local remote", local and remote as host:ip:port and
// host:ip:info:port.
func (l *Log) OK(pid int, local, remote string) {
	l.h.Info(fmt.Sprintf("ok %d %s %s", pid, local, remote), "event", "ok", "pid", pid, "local", local, "remote", remote)
}

// Deny logs "deny N local remote".
func (l *Log) Deny(pid int, local, remote string) {
	l.h.Info(fmt.Sprintf("deny %d %s %s", pid, local, remote), "event", "deny", "pid", pid, "local", local, "remote", remote)
}

// TLS logs "tls N accept", with -V followed by PROTO:CIPHER.
func (l *Log) TLS(pid int, proto, cipher string) {
	msg := fmt.Sprintf("tls %d accept", pid)
	if l.verbosity >= Cipher {
		msg += " " + proto + ":" + cipher
	}
	l.h.Info(msg, "event", "tls", "pid", pid, "protocol", proto, "cipher", cipher)
}

// End logs "end N status S", or "end N signal S" for a program killed by
// a signal.
func (l *Log) End(pid int, how string, code int) {
	l.h.Info(fmt.Sprintf("end %d %s %d", pid, how, code), "event", "end", "pid", pid, how, code)
}

// Info logs a line at -v that is not one of the classic events.
func (l *Log) Info(format string, args ...any) {
	l.h.Info(fmt.Sprintf(format, args...), "event", "info")
}

// Warning logs "warning: ...".
func (l *Log) Warning(format string, args ...any) {
	l.h.Warn("warning: "+fmt.Sprintf(format, args...), "event", "warning")
}

// Reload logs what a certificate reload changed. It is shown at the
// default -Q, with the warnings: an operator who renewed a certificate
// wants to see it taken.
func (l *Log) Reload(msg string) {
	l.h.Warn(msg, "event", "reload")
}

// Fatal logs "fatal: ..."; the caller exits.
func (l *Log) Fatal(format string, args ...any) {
	l.h.Error("fatal: "+fmt.Sprintf(format, args...), "event", "fatal")
}

// Child returns what logs the stderr lines of a worker or the key
// holder (role), one "role pid: line" each, at warning level.
func (l *Log) Child(role string) func(pid int, line string) {
	return func(pid int, line string) {
		l.h.Warn(fmt.Sprintf("%s %d: %s", role, pid, line), "event", "child", "role", role, "pid", pid, "text", line)
	}
}

// lost logs how many lines stderr did not take, once it takes one again.
func (l *Log) lost(n int64) {
	l.h.Warn(fmt.Sprintf("warning: %d log lines lost: stderr was full or failed", n), "event", "warning", "lost", n)
}
