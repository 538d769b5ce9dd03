package sslhandle

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/ucspi-tls/sslserver/protocol"
)

// ErrNotDelayed is StartTLS's error outside -n: TLS is already on.
var ErrNotDelayed = errors.New("StartTLS: the server does not run with -n, TLS is already on")

// ErrStarted is StartTLS's error when it was called already.
var ErrStarted = errors.New("StartTLS: already called")

// Session is one client's session in a handler: its plaintext
// connection and the environment a program of the session would get.
// Its methods may be called from several goroutines.
type Session struct {
	args    []string
	delayed bool
	local   net.Addr
	remote  net.Addr

	mu      sync.Mutex
	env     []string
	conn    Conn
	raw     net.Conn // -n: the TCP connection, until StartTLS
	ctl     *os.File
	pipes   *pipeConn
	started bool
}

// newSession takes over a HandlerSession's descriptors, in the order of
// protocol.HandlerFd*.
func newSession(m *protocol.HandlerSession, files []*os.File, args []string) (*Session, error) {
	environ, err := m.Environ()
	if err != nil {
		closeFiles(files)
		return nil, err
	}
	s := &Session{args: args, delayed: m.Delayed, env: environ}
	if s.ctl, err = pollable(files[protocol.HandlerFdCtl]); err != nil {
		closeFiles(files[1:])
		return nil, err
	}
	s.local = addrFrom(s.getenv("SSLLOCALIP"), s.getenv("SSLLOCALPORT"))
	s.remote = addrFrom(s.getenv("SSLREMOTEIP"), s.getenv("SSLREMOTEPORT"))
	if s.pipes, err = newPipeConn(files[protocol.HandlerFdRead], files[protocol.HandlerFdWrite], s.local, s.remote); err != nil {
		s.ctl.Close()
		closeFiles(files[protocol.HandlerFdConn:])
		return nil, err
	}
	s.conn = s.pipes
	if m.Delayed {
		raw, err := net.FileConn(files[protocol.HandlerFdConn])
		files[protocol.HandlerFdConn].Close()
		if err != nil {
			s.close()
			return nil, fmt.Errorf("the session's connection: %w", err)
		}
		s.raw = raw
		s.conn = raw.(Conn)
	}
	return s, nil
}

// addrFrom makes the address of a program's SSLREMOTEIP and
// SSLREMOTEPORT (or the LOCAL ones); nil if they do not parse.
func addrFrom(ip, port string) net.Addr {
	a, err := netip.ParseAddr(ip)
	p, perr := strconv.ParseUint(port, 10, 16)
	if err != nil || perr != nil {
		return nil
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, uint16(p)))
}

// Conn is the session's plaintext. Without -n it carries the TLS
// session's plaintext from the start; under -n it is the raw TCP
// connection until StartTLS, which returns the plaintext of TLS.
func (s *Session) Conn() Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// Env returns the session's environment as NAME=value strings: what a
// program of the session would get from sslserver (PROTO, SSLREMOTEIP
// and the other endpoint variables, TCP* with -e, the rules' variables,
// SSL_* with -s once the handshake is done), without $SSLCTLFD,
// $SSLREADFD and $SSLWRITEFD: a handler reaches those descriptors
// through Conn and StartTLS.
func (s *Session) Env() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.env)
}

// Getenv returns the value of name in Env, "" if unset.
func (s *Session) Getenv(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.getenv(name)
}

func (s *Session) getenv(name string) string {
	for i := len(s.env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(s.env[i], name+"="); ok {
			return v
		}
	}
	return ""
}

// Args returns the arguments after host and port on the command line.
func (s *Session) Args() []string { return slices.Clone(s.args) }

// Delayed says whether the server runs with -n: TLS starts only when
// the handler calls StartTLS.
func (s *Session) Delayed() bool { return s.delayed }

// RemoteAddr and LocalAddr are the client's and the server's TCP
// addresses.
func (s *Session) RemoteAddr() net.Addr { return s.remote }
func (s *Session) LocalAddr() net.Addr  { return s.local }

// StartTLS is UCSPI-TLS's STARTTLS under -n: it asks the TLS worker for
// the handshake (the 'Y' command), waits for it, and returns the TLS
// session's plaintext and the SSL_* variables, which Env and Getenv
// then include as well. The raw connection is closed: anything the
// client sent before the handshake is lost, as SMTP requires. An error
// means TLS failed and the session is over; return from the handler.
func (s *Session) StartTLS() (Conn, []string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.delayed:
		return nil, nil, ErrNotDelayed
	case s.started:
		return nil, nil, ErrStarted
	}
	s.started = true
	vars, err := protocol.StartTLS(s.ctl, true)
	s.ctl.Close()
	s.raw.Close()
	if err != nil {
		return nil, nil, err
	}
	tlsEnv := make([]string, len(vars))
	for i, v := range vars {
		tlsEnv[i] = v.Name + "=" + v.Value
	}
	s.env = append(s.env, tlsEnv...)
	s.conn = s.pipes
	return s.pipes, tlsEnv, nil
}

// close ends the session's descriptors; it may be called more than once.
func (s *Session) close() {
	s.ctl.Close()
	s.pipes.Close()
	if s.raw != nil {
		s.raw.Close()
	}
}
