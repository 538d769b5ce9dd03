package integration

// Client side helpers: crypto/tls and plain TCP clients with deadlines,
// and a line-by-line driver for external clients such as openssl s_client.

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// clientConfig verifies the server's certificate and name.
func (s *server) clientConfig() *tls.Config {
	return &tls.Config{RootCAs: s.cert.pool, ServerName: serverName}
}

// dialTCP connects to the server; the connection has a waitTime deadline
// and is closed at cleanup.
func (s *server) dialTCP(t testing.TB) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.addr, waitTime)
	if err != nil {
		t.Fatalf("connecting to %s: %v", s.addr, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitTime))
	return c.(*net.TCPConn)
}

// startTLS runs a TLS handshake over an existing connection.
func (s *server) startTLS(t testing.TB, c net.Conn, cfg *tls.Config) *tls.Conn {
	t.Helper()
	if cfg == nil {
		cfg = s.clientConfig()
	}
	tc := tls.Client(c, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		t.Fatalf("TLS handshake with %s: %v\nserver log:\n%s", s.addr, err, s.log.text())
	}
	return tc
}

// dialTLS connects and handshakes at once (for -N, or -n with a program
// that starts TLS without a plaintext exchange).
func (s *server) dialTLS(t testing.TB, cfg *tls.Config) (*tls.Conn, *net.TCPConn) {
	t.Helper()
	raw := s.dialTCP(t)
	return s.startTLS(t, raw, cfg), raw
}

func localPort(c net.Conn) int {
	return c.LocalAddr().(*net.TCPAddr).Port
}

// expectLine reads one line and compares it.
func expectLine(t testing.TB, r *bufio.Reader, want string) {
	t.Helper()
	got, err := r.ReadString('\n')
	if err != nil || got != want {
		t.Fatalf("read %q (%v), want %q", got, err, want)
	}
}

// echoRoundTrip sends a line to an echoing program and expects it back.
func echoRoundTrip(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Fatalf("writing %q: %v", msg, err)
	}
	expectLine(t, bufio.NewReader(c), msg+"\n")
}

// goodSession proves the server still serves: a TLS session with the echo
// program (TLS at once; under -n the echo role starts it with y). It
// returns the session's pid after checking it ended with status 0.
func (s *server) goodSession(t testing.TB, msg string) int {
	t.Helper()
	tc, raw := s.dialTLS(t, nil)
	pid := s.sessionPID(t, localPort(raw))
	echoRoundTrip(t, tc, msg)
	tc.Close()
	if status := s.waitEnd(t, pid); status != 0 {
		t.Errorf("good session %d ended with status %d, want 0", pid, status)
	}
	return pid
}

// lineProc drives an external client line by line: the test writes to
// its stdin and waits for lines on its stdout, each wait bounded.
type lineProc struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	mu    sync.Mutex
	seen  []string // every stdout line so far, for failure messages
	done  chan struct{}
	err   error // valid once done is closed
}

func startLineProc(t testing.TB, name string, args ...string) *lineProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitTime)
	t.Cleanup(cancel)
	p := &lineProc{t: t, cmd: exec.CommandContext(ctx, name, args...),
		lines: make(chan string, 1000), done: make(chan struct{})}
	var stderr strings.Builder
	p.cmd.Stderr = &stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go p.readLines(stdout)
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(waitTime):
			t.Errorf("%s still running %v after SIGKILL", name, waitTime)
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, stderr.String())
		}
	})
	return p
}

func (p *lineProc) readLines(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		p.mu.Lock()
		p.seen = append(p.seen, sc.Text())
		p.mu.Unlock()
		p.lines <- sc.Text()
	}
	close(p.lines)
	p.err = p.cmd.Wait()
	close(p.done)
}

func (p *lineProc) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("writing %q to %s: %v", line, p.cmd.Path, err)
	}
}

// expect reads lines until one matches pattern and returns it.
func (p *lineProc) expect(pattern string) string {
	p.t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.After(waitTime)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("%s ended (%v) before a line matching %q; output:\n%s", p.cmd.Path, p.wait(), re, p.output())
			}
			if re.MatchString(line) {
				return line
			}
		case <-deadline:
			p.t.Fatalf("no line matching %q from %s within %v; output:\n%s", re, p.cmd.Path, waitTime, p.output())
		}
	}
}

// wait closes stdin and waits for the process to end, draining (and
// keeping in seen) whatever it still prints.
func (p *lineProc) wait() error {
	p.stdin.Close()
	lines := p.lines
	deadline := time.After(waitTime)
	for {
		select {
		case <-p.done:
			return p.err
		case _, ok := <-lines:
			if !ok {
				lines = nil
			}
		case <-deadline:
			return fmt.Errorf("%s did not exit within %v", p.cmd.Path, waitTime)
		}
	}
}

func (p *lineProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.seen, "\n")
}
