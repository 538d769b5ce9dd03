package integration

// Misbehaving clients and programs: each ends its own session with the
// documented log line and status, and the server goes on serving.

import (
	"crypto/tls"
	"io"
	"net"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// Warnings the cases expect; noWarning forbids any, anyWarning allows any.
const (
	tlsWarning = `^sslserver: warning: dropping connection from 127\.0\.0\.1, unable to accept TLS: .+`
	noWarning  = "none"
	anyWarning = ""
)

type badCase struct {
	name    string
	flags   []string
	first   string // the role of the first session's program; later ones echo
	client  func(t testing.TB, s *server) int
	status  int
	warning string // a regexp, noWarning or anyWarning
}

var badCases = []badCase{
	{"garbage instead of ClientHello", nil, "echo", sendGarbage, 111, tlsWarning},
	{"garbage after y", []string{"-n"}, "echo", sendGarbage, 111, tlsWarning},
	{"stall mid-handshake", []string{"-T", "2"}, "echo", stallHandshake, 111, tlsWarning},
	{"unknown control byte", []string{"-n"}, "badctl", waitForClose, 100,
		`^sslserver: warning: .*(Q|0x51)`},
	{"program dies, delayed", []string{"-n"}, "die", waitForClose, 3, noWarning},
	{"program dies, immediate", nil, "die", handshakeAndWait, 3, noWarning},
	{"client resets mid-stream", nil, "echo", resetMidStream, 0, anyWarning},
	{"client resets mid-stream, delayed", []string{"-n"}, "echo", resetMidStream, 0, anyWarning},
}

func TestBadInput(t *testing.T) {
	for _, tc := range badCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, serverConfig{flags: tc.flags, role: "first",
				roleEnv: []string{"ITEST_FIRST=" + tc.first, "ITEST_MARK=" + t.TempDir() + "/first"}})
			pid := tc.client(t, s)
			if status := s.waitEnd(t, pid); status != tc.status {
				t.Errorf("session %d ended with status %d, want %d", pid, status, tc.status)
			}
			s.goodSession(t, "after "+tc.name)
			checkWarning(t, s, tc.warning)
			s.waitChildren(t)
		})
	}
}

func checkWarning(t testing.TB, s *server, warning string) {
	t.Helper()
	switch warning {
	case anyWarning:
	case noWarning:
		if w := s.log.matches(regexp.MustCompile(`^sslserver: warning: `)); len(w) > 0 {
			t.Errorf("unexpected warning %q", w[0][0])
		}
	default:
		s.waitLog(t, regexp.MustCompile(warning))
	}
}

// drain reads until the server closes the connection or the deadline.
func drain(c net.Conn) error {
	_, err := io.Copy(io.Discard, c)
	return err
}

func sendGarbage(t testing.TB, s *server) int {
	c := s.dialTCP(t)
	pid := s.sessionPID(t, localPort(c))
	io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
	if err := drain(c); isTimeout(err) {
		t.Errorf("the server kept the connection open after garbage")
	}
	return pid
}

// stallHandshake sends part of a ClientHello and stops; -T 2 must end the
// session after about 2 s, while another session is served meanwhile.
func stallHandshake(t testing.TB, s *server) int {
	c := s.dialTCP(t)
	start := time.Now()
	pid := s.sessionPID(t, localPort(c))
	c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}) // record header, then 1 of 512 bytes
	s.goodSession(t, "during the stall")
	if e := s.log.matches(regexp.MustCompile(`^sslserver: end ` + strconv.Itoa(pid) + ` `)); len(e) > 0 {
		t.Errorf("the stalled session ended after %v, before its 2 s deadline", time.Since(start))
	}
	drain(c)
	if d := time.Since(start); d < 1500*time.Millisecond || d > 2*waitTime/3 {
		t.Errorf("the stalled connection was closed after %v, want about 2 s (-T 2)", d)
	}
	return pid
}

func waitForClose(t testing.TB, s *server) int {
	c := s.dialTCP(t)
	pid := s.sessionPID(t, localPort(c))
	if err := drain(c); isTimeout(err) {
		t.Errorf("the server kept the connection open")
	}
	return pid
}

// handshakeAndWait starts TLS at once, as a -N client does; the program
// may be gone before or after the handshake, so its result does not count.
func handshakeAndWait(t testing.TB, s *server) int {
	c := s.dialTCP(t)
	pid := s.sessionPID(t, localPort(c))
	tc := tls.Client(c, s.clientConfig())
	tc.Handshake()
	if err := drain(tc); isTimeout(err) {
		t.Errorf("the server kept the connection open")
	}
	return pid
}

// resetMidStream talks, leaves data in flight and resets the connection.
func resetMidStream(t testing.TB, s *server) int {
	tc, raw := s.dialTLS(t, nil)
	pid := s.sessionPID(t, localPort(raw))
	echoRoundTrip(t, tc, "before the reset")
	tc.Write(make([]byte, 64<<10))
	raw.SetLinger(0)
	raw.Close()
	return pid
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
