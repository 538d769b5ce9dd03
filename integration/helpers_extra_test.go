package integration

// Helpers for the access, limit and resilience tests: clients bound to a
// chosen loopback source address, log counting and ordering, and checks
// on connections the server drops.

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dialFromAddr connects to addr from the local address src: every
// address of 127.0.0.0/8 reaches a listener on 127.0.0.1, so one machine
// can play several clients; src "" is any address. The connection gets
// a waitTime deadline.
func dialFromAddr(addr, src string) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: waitTime}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s from %s: %w", addr, src, err)
	}
	c.SetDeadline(time.Now().Add(waitTime))
	return c.(*net.TCPConn), nil
}

// dialFrom is dialFromAddr for a test; the connection is closed at cleanup.
func (s *server) dialFrom(t testing.TB, src string) *net.TCPConn {
	t.Helper()
	return dialVia(t, s.addr, src)
}

// dialVia connects to addr (sslserver, or a proxy in front of it) from
// src, with a deadline; the connection is closed at cleanup.
func dialVia(t testing.TB, front, src string) *net.TCPConn {
	t.Helper()
	c, err := dialFromAddr(front, src)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// holdVia starts a session of s (of the sleep or readyecho role)
// through addr, s's own or a proxy's, from src, and keeps it open.
func holdVia(t testing.TB, s *server, front, src string) heldSession {
	t.Helper()
	raw := dialVia(t, front, src)
	conn := s.startTLS(t, raw, nil)
	h := heldSession{conn: conn, clientPort: localPort(raw), worker: s.sessionPIDFrom(t, src, localPort(raw))}
	h.prog = readReady(t, conn)
	return h
}

// sessionPIDFrom finds the session pid from the "ok" line naming both
// the client's address and its port (ports may repeat across addresses).
func (s *server) sessionPIDFrom(t testing.TB, src string, clientPort int) int {
	t.Helper()
	re := regexp.MustCompile(`^sslserver: ok (\d+) \S+ [^:]*:` + regexp.QuoteMeta(src) + `:[^:]*:` +
		strconv.Itoa(clientPort) + `$`)
	pid, _ := strconv.Atoi(s.waitLog(t, re)[1])
	return pid
}

// holdFrom starts a session of a program that says "READY pid" (the
// sleep and readyecho roles) from src and keeps it open.
func (s *server) holdFrom(t testing.TB, src string) heldSession {
	t.Helper()
	return holdVia(t, s, s.addr, src)
}

// readReady reads the "READY pid" line and returns the pid. It reads a
// byte at a time, so nothing after the line is lost to a buffer.
func readReady(t testing.TB, c net.Conn) int {
	t.Helper()
	line, err := bufio.NewReaderSize(oneByteReader{c}, 16).ReadString('\n')
	pid, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "READY "))
	if err != nil || pid == 0 {
		t.Fatalf("program said %q (%v), want READY pid", line, err)
	}
	return pid
}

// oneByteReader hands out at most one byte per Read.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

// endHeld closes a held session's client side, expects status 0, and
// waits for the status line after its end line: the supervisor releases
// the session's per-IP count between the two.
func (s *server) endHeld(t testing.TB, h heldSession) {
	t.Helper()
	h.conn.Close()
	if status := s.waitEnd(t, h.worker); status != 0 {
		t.Errorf("session %d ended with status %d, want 0", h.worker, status)
	}
	s.waitSeq(t, endLine(h.worker), statusLine)
}

var statusLine = regexp.MustCompile(`^sslserver: status: \d+/\d+$`)

func endLine(pid int) *regexp.Regexp {
	return regexp.MustCompile(`^sslserver: end ` + strconv.Itoa(pid) + ` `)
}

// expectClosed: the server closes c without sending a byte, well before
// the connection's deadline.
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	got, err := io.ReadAll(c)
	switch {
	case isTimeout(err):
		t.Fatalf("the server kept the connection from %s open", c.LocalAddr())
	case len(got) > 0:
		t.Fatalf("the server sent %q to a client it should have dropped", got)
	}
}

// expectEOF: the server ends the TLS session (cleanly or not) before
// the deadline.
func expectEOF(t testing.TB, c net.Conn) {
	t.Helper()
	if _, err := io.ReadAll(c); isTimeout(err) {
		t.Fatalf("the session from %s is still open", c.LocalAddr())
	}
}

// countLog is how many log lines so far match re.
func (s *server) countLog(re *regexp.Regexp) int {
	return len(s.log.matches(re))
}

// waitCount waits until at least n log lines match re and returns their
// submatches.
func (s *server) waitCount(t testing.TB, re *regexp.Regexp, n int) [][]string {
	t.Helper()
	deadline := time.After(waitTime)
	for {
		lines, changed, closed := s.log.snapshot()
		var got [][]string
		for _, l := range lines {
			if m := re.FindStringSubmatch(l); m != nil {
				got = append(got, m)
			}
		}
		if len(got) >= n {
			return got
		}
		if closed {
			t.Fatalf("sslserver's log ended with %d lines matching %q, want %d; log:\n%s", len(got), re, n, s.log.text())
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%d log lines matching %q after %v, want %d; log:\n%s", len(got), re, waitTime, n, s.log.text())
		}
	}
}

// waitSeq waits until lines matching each pattern appear in this order
// (each after the one matching the previous pattern).
func (s *server) waitSeq(t testing.TB, res ...*regexp.Regexp) {
	t.Helper()
	deadline := time.After(waitTime)
	for {
		lines, changed, closed := s.log.snapshot()
		i := 0
		for _, l := range lines {
			if i < len(res) && res[i].MatchString(l) {
				i++
			}
		}
		if i == len(res) {
			return
		}
		if closed {
			t.Fatalf("sslserver's log ended before a line matching %q (in sequence %q); log:\n%s", res[i], res, s.log.text())
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no line matching %q (in sequence %q) within %v; log:\n%s", res[i], res, waitTime, s.log.text())
		}
	}
}

// pidLines matches "pid N from ip": a worker was started for ip.
func pidLines(ip string) *regexp.Regexp {
	return regexp.MustCompile(`^sslserver: pid \d+ from ` + regexp.QuoteMeta(ip) + `$`)
}

// handshakeFrom connects from src and runs a TLS handshake, bounded.
func handshakeFrom(addr, src string, cfg *tls.Config) (*tls.Conn, error) {
	raw, err := dialFromAddr(addr, src)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}

// processGone reports whether pid no longer exists (a zombie still does:
// it has not been reaped).
func processGone(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return os.IsNotExist(err)
}
