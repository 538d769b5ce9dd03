package load

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
)

// smtpConn is the client half of a short SMTP conversation.
type smtpConn struct {
	rw io.ReadWriter
	r  *bufio.Reader
}

// smtpStep sends a command ("" sends nothing: the greeting) and expects
// a reply with the given code.
type smtpStep struct {
	cmd, code string
}

func (s *smtpConn) steps(steps []smtpStep) error {
	for _, st := range steps {
		if st.cmd != "" {
			if _, err := io.WriteString(s.rw, st.cmd+"\r\n"); err != nil {
				return fmt.Errorf("sending %s: %w", st.cmd, err)
			}
		}
		if err := s.expect(st.code); err != nil {
			return fmt.Errorf("after %q: %w", st.cmd, err)
		}
	}
	return nil
}

// expect reads one reply, all of its lines, and checks its code.
func (s *smtpConn) expect(code string) error {
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("reading the %s reply: %w", code, err)
		}
		if len(line) < 4 || line[:3] != code {
			return fmt.Errorf("reply %q, want %s", strings.TrimSpace(line), code)
		}
		if line[3] == ' ' || line[3] == '\r' || line[3] == '\n' {
			return nil
		}
	}
}

// startTLS asks for TLS, does the handshake and says EHLO again over it.
// Bytes after the 220 before the handshake would be an injection: none
// may be buffered.
func (s *smtpConn) startTLS(c net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	if err := s.steps([]smtpStep{{"STARTTLS", "220"}}); err != nil {
		return nil, err
	}
	if n := s.r.Buffered(); n > 0 {
		return nil, fmt.Errorf("server sent %d plaintext bytes after its 220 to STARTTLS", n)
	}
	tc, err := handshake(c, cfg)
	if err != nil {
		return nil, err
	}
	s.rw, s.r = tc, bufio.NewReader(tc)
	if err := s.steps([]smtpStep{{"EHLO bench.example", "250"}}); err != nil {
		tc.Close()
		return nil, err
	}
	return tc, nil
}
