package integration

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
)

// probeTickets is a hostile worker's go at the key holder's ticket
// keys, on its own key channel, within one session's grant: it seals a
// state, tries a tampered ticket, opens its own, and asks once more than
// allowed. Each outcome is a line on stderr, which the supervisor logs.
func probeTickets() {
	kh, err := protocol.NewChannel(os.NewFile(protocol.WorkerFdKeyHolder, "keyholder"), protocol.SignReplies)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tickets: %v\n", err)
		return
	}
	ask := func(m protocol.Message) protocol.Message {
		kh.SetDeadline(time.Now().Add(waitTime))
		if err := kh.Send(m); err != nil {
			return nil
		}
		r, _, _ := kh.Recv()
		return r
	}
	state := []byte("hostile session state")
	t, ok := ask(&protocol.SealTicket{State: state}).(*protocol.Ticket)
	if !ok {
		fmt.Fprintln(os.Stderr, "tickets: seal failed")
		return
	}
	fmt.Fprintln(os.Stderr, "tickets: sealed")
	forged := bytes.Clone(t.Ticket)
	forged[len(forged)/2] ^= 0x80
	if r, ok := ask(&protocol.OpenTicket{Ticket: forged}).(*protocol.TicketState); ok && len(r.State) == 0 {
		fmt.Fprintln(os.Stderr, "tickets: tampered ticket opens to nothing")
	}
	if r, ok := ask(&protocol.OpenTicket{Ticket: t.Ticket}).(*protocol.TicketState); ok && bytes.Equal(r.State, state) {
		fmt.Fprintln(os.Stderr, "tickets: own ticket opens")
	}
	switch r := ask(&protocol.OpenTicket{Ticket: t.Ticket}).(type) {
	case *protocol.SignRefused:
		fmt.Fprintf(os.Stderr, "tickets: third open refused: %s\n", r.Reason)
	default:
		fmt.Fprintf(os.Stderr, "tickets: third open answered %T\n", r)
	}
}

// TestHostileWorkerTickets: a real hostile worker under a real
// supervisor and key holder gets one session's worth of ticket work and
// no more, and cannot pass a tampered ticket off; the key holder serves
// the next, real, worker as before.
func TestHostileWorkerTickets(t *testing.T) {
	needRoot(t)
	uid := hostileUID(t)
	s := startServer(t, serverConfig{hostile: uid, role: "echo", env: []string{"SSL_PREFORK=0"}})
	s.goodSession(t, "before the attack")
	end := setPlan(t, uid, "tickets")
	c := s.dialTCP(t)
	for _, line := range []string{"sealed", "tampered ticket opens to nothing", "own ticket opens",
		"third open refused: no more tickets to open for this session"} {
		s.waitLog(t, regexp.MustCompile(`^sslserver: worker \d+: tickets: `+regexp.QuoteMeta(line)+`$`))
	}
	c.Close()
	end()
	s.goodSession(t, "after the attack")
}
