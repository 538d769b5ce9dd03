package integration

// A hostile sslhandle handler: this test binary, started in the role
// "sslhandle-hostile", is an sslhandle program (package sslhandle), and
// its handlers, the same binary again, serve echo sessions until a
// client asks them to attack the supervisor through their channel.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/protocol"
	"github.com/ucspi-tls/sslserver/sslhandle"
)

func init() { roles["sslhandle-hostile"] = roleHandleHostile }

func roleHandleHostile() int {
	return (&sslhandle.Server{Name: "sslhandle", Handler: hostileHandler}).Main()
}

// handlerAttacks are what a taken-over handler writes on its channel to
// the supervisor, named by the line the client sends.
var handlerAttacks = map[string][]byte{
	// The end of a session it is not serving: as if to free itself for
	// another client while it keeps this one.
	"forge": protocol.Encode(&protocol.HandlerEnd{Seq: 0xfffffff0, Code: 0}),
	// A message only the supervisor may send.
	"turn": protocol.Encode(&protocol.HandlerSession{Seq: 1, Env: []byte{0, 0}}),
	// Bytes that are no message at all.
	"garbage": {0xff, 1, 2, 3},
}

// hostileHandler echoes lines, and the rest at the client's end of
// data; a line naming an attack makes it send that attack and go on
// echoing.
func hostileHandler(ctx context.Context, s *sslhandle.Session) int {
	r := bufio.NewReader(s.Conn())
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			io.WriteString(s.Conn(), line)
			s.Conn().CloseWrite()
			return 0
		}
		if p, ok := handlerAttacks[strings.TrimSpace(line)]; ok {
			if err := writeChannel(p); err != nil {
				fmt.Fprintf(os.Stderr, "itest: hostile handler: %v\n", err)
			}
		}
		io.WriteString(s.Conn(), line)
	}
}

// writeChannel sends p on this process's SOCK_SEQPACKET socket: its
// channel with the supervisor, wherever the package put it.
func writeChannel(p []byte) error {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range entries {
		fd, _ := strconv.Atoi(e.Name())
		if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err == nil && typ == unix.SOCK_SEQPACKET {
			_, err := unix.Write(fd, p)
			return err
		}
	}
	return fmt.Errorf("no SOCK_SEQPACKET descriptor")
}

// TestHandleHostileHandler: a handler that forges or garbles messages to
// the supervisor is killed and replaced; its session ends; a session in
// another handler goes on untouched.
func TestHandleHostileHandler(t *testing.T) {
	for _, attack := range []string{"forge", "turn", "garbage"} {
		t.Run(attack, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, serverConfig{selfAs: "sslhandle-hostile", flags: []string{"-c", "2"}, program: []string{}})
			before := s.waitHandlers(t, 2)
			other := s.holdEcho(t)
			victim := s.holdEcho(t)
			if err := victim.roundTrip(attack + "\n"); err != nil {
				t.Logf("the attacking session: %v", err)
			}
			m := s.waitLog(t, regexp.MustCompile(`^sslhandle: warning: handler (\d+) broke the protocol: (.*)$`))
			pid, _ := strconv.Atoi(m[1])
			s.waitLog(t, regexp.MustCompile(fmt.Sprintf(`handler %d ended \(signal 9\); starting another`, pid)))
			if _, err := io.ReadAll(victim.conn); isTimeout(err) {
				t.Fatalf("the attacker's client was left hanging: %v", err)
			}
			if err := other.roundTrip("untouched\n"); err != nil {
				t.Fatalf("the other session broke: %v", err)
			}
			after := s.waitHandlers(t, 2)
			if !slices.Contains(before, pid) || slices.Contains(after, pid) {
				t.Errorf("handlers %v, then %v; the killed one %d", before, after, pid)
			}
			if err := s.echoSession(1000); err != nil {
				t.Errorf("a new session after the attack: %v", err)
			}
		})
	}
}
