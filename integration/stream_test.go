package integration

// Integrity: random megabytes through a session both ways at once, with
// half-close, checked by sha256 on both ends.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"strconv"
	"testing"
	"time"
)

func TestIntegrity(t *testing.T) {
	const size = 8 << 20
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"immediate", nil},
		{"delayed", []string{"-n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, serverConfig{flags: tc.flags, role: "sha",
				roleEnv: []string{"ITEST_N=" + strconv.Itoa(size)}})
			conn, raw := s.dialTLS(t, nil)
			raw.SetDeadline(time.Now().Add(6 * waitTime))
			pid := s.sessionPID(t, localPort(raw))
			sent := make(chan sendResult, 1)
			go sendRandom(conn, size, sent)
			// The program's output must arrive whole after the client's
			// half-close, and end with close_notify (io.EOF, not a bare
			// TCP close).
			got, err := io.ReadAll(conn)
			if err != nil {
				t.Fatalf("reading after %d bytes: %v", len(got), err)
			}
			res := <-sent
			if res.err != nil {
				t.Fatalf("sending: %v", res.err)
			}
			checkSHAReport(t, got, size, res.sum)
			if status := s.waitEnd(t, pid); status != 0 {
				t.Errorf("session ended with status %d, want 0", status)
			}
		})
	}
}

type sendResult struct {
	sum []byte
	err error
}

// sendRandom writes n random bytes, then closes its write side only.
func sendRandom(c *tls.Conn, n int, done chan<- sendResult) {
	var seed [32]byte
	rand.Read(seed[:])
	src := mrand.NewChaCha8(seed)
	h := sha256.New()
	buf := make([]byte, 32<<10)
	for n > 0 {
		chunk := buf[:min(n, len(buf))]
		src.Read(chunk)
		h.Write(chunk)
		if _, err := c.Write(chunk); err != nil {
			done <- sendResult{err: err}
			return
		}
		n -= len(chunk)
	}
	done <- sendResult{sum: h.Sum(nil), err: c.CloseWrite()}
}

// checkSHAReport checks the sha role's output: size random bytes, then
// "READ sum count WROTE sum".
func checkSHAReport(t testing.TB, got []byte, size int, sentSum []byte) {
	t.Helper()
	if len(got) < size {
		t.Fatalf("received %d bytes, want %d and the report", len(got), size)
	}
	var read, wrote []byte
	var count int
	if _, err := fmt.Sscanf(string(got[size:]), "READ %x %d WROTE %x\n", &read, &count, &wrote); err != nil {
		t.Fatalf("report %q: %v", got[size:], err)
	}
	if count != size || !bytes.Equal(read, sentSum) {
		t.Errorf("the program read %d bytes with sha256 %x; sent %d with %x", count, read, size, sentSum)
	}
	if sum := sha256.Sum256(got[:size]); !bytes.Equal(sum[:], wrote) {
		t.Errorf("received sha256 %x, the program wrote %x", sum, wrote)
	}
}
