package integration

import (
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestClientGoneMidEcho: a client that vanishes with data in flight both
// ways (it writes without reading, so the program's output backs up and
// the program blocks writing it) ends its session promptly; the worker
// does not wait for the idle timeout, and nothing is left behind.
func TestClientGoneMidEcho(t *testing.T) {
	s := startServer(t, serverConfig{flags: []string{"-w", "3600"}, program: []string{"/bin/cat"}})
	tc, raw := s.dialTLS(t, nil)
	pid := s.sessionPID(t, localPort(raw))
	go writeForever(tc)
	time.Sleep(500 * time.Millisecond) // let both directions fill up
	raw.SetLinger(0)
	raw.Close()
	start := time.Now()
	// cat dies of SIGPIPE writing to the closed pipe, or ends at EOF.
	s.waitLog(t, regexp.MustCompile(`^sslserver: end `+strconv.Itoa(pid)+` (status|signal) \d+$`))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the session ended %v after the client vanished", d)
	}
	s.waitChildren(t)
}

func writeForever(c interface{ Write([]byte) (int, error) }) {
	buf := make([]byte, 64<<10)
	for {
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}
