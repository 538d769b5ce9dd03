package integration

// The server's life: SIGTERM and the connection limit.

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// SIGTERM stops accepting, lets the running session finish, exits 0.
func TestSIGTERM(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{role: "echo"})
	tc, raw := s.dialTLS(t, nil)
	pid := s.sessionPID(t, localPort(raw))
	echoRoundTrip(t, tc, "before SIGTERM")
	if err := syscall.Kill(s.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitRefused(t, s.addr)
	echoRoundTrip(t, tc, "after SIGTERM")
	select {
	case <-s.exited:
		t.Fatalf("sslserver exited (%v) while a session was running", s.exitErr)
	default:
	}
	tc.Close()
	select {
	case <-s.exited:
	case <-time.After(waitTime):
		t.Fatalf("sslserver still running %v after its last session ended", waitTime)
	}
	if s.exitErr != nil {
		t.Errorf("sslserver exited with %v after SIGTERM, want status 0", s.exitErr)
	}
	if status := s.waitEnd(t, pid); status != 0 {
		t.Errorf("session ended with status %d, want 0", status)
	}
}

// waitRefused waits until connecting to addr is refused.
func waitRefused(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		} else if errors.Is(err, syscall.ECONNREFUSED) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections %v after SIGTERM (last: %v)", addr, waitTime, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// -c 1: a second connection waits, unserved, until the first ends.
func TestConnectionLimit(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{flags: []string{"-c", "1"}, role: "echo"})
	first, raw1 := s.dialTLS(t, nil)
	pid1 := s.sessionPID(t, localPort(raw1))
	echoRoundTrip(t, first, "first")

	raw2 := s.dialTCP(t) // the kernel completes it; sslserver must not accept it yet
	second := tls.Client(raw2, s.clientConfig())
	done := make(chan error, 1)
	go handshakeAsync(second, done)
	select {
	case err := <-done:
		t.Fatalf("a second handshake finished (%v) while the only slot was taken", err)
	case <-time.After(time.Second):
	}
	if ok := s.log.matches(regexp.MustCompile(`^sslserver: ok `)); len(ok) != 1 {
		t.Fatalf("%d sessions started with -c 1 and one running, want 1", len(ok))
	}
	first.Close()
	if status := s.waitEnd(t, pid1); status != 0 {
		t.Errorf("first session ended with status %d, want 0", status)
	}
	if err := <-done; err != nil {
		t.Fatalf("second handshake: %v", err)
	}
	s.sessionPID(t, localPort(raw2))
	echoRoundTrip(t, second, "second")
	s.waitLog(t, regexp.MustCompile(`^sslserver: status: 1/1$`))
	if over := s.log.matches(regexp.MustCompile(`^sslserver: status: ([2-9]|\d\d+)/1$`)); len(over) > 0 {
		t.Errorf("over the limit: %q", over[0][0])
	}
}

func handshakeAsync(c *tls.Conn, done chan<- error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTime)
	defer cancel()
	done <- c.HandshakeContext(ctx)
}
