package tlsworker

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
)

// TestKeyHolderTicketBudget plays a worker against the key holder's
// loop: one session's grant seals one ticket and opens two, and the next
// request of a kind past its allowance is refused and the channel hung
// up. A ticket opens to the state sealed in it; a ticket with one bit
// changed, or sealed under another key, opens to nothing.
func TestKeyHolderTicketBudget(t *testing.T) {
	h := utStartHolderWith(t, nil, 1, 0, mustRandomTickets(t))
	state := []byte("a session state")
	sealed, ok := h.ask(t, &protocol.SealTicket{State: state}).(*protocol.Ticket)
	if !ok || bytes.Contains(sealed.Ticket, state) {
		t.Fatalf("seal: got %v, want a ticket that does not show the state", sealed)
	}
	if got := h.ask(t, &protocol.OpenTicket{Ticket: sealed.Ticket}).(*protocol.TicketState); !bytes.Equal(got.State, state) {
		t.Errorf("open: state %q, want %q", got.State, state)
	}
	forged := bytes.Clone(sealed.Ticket)
	forged[len(forged)-1] ^= 1
	if got := h.ask(t, &protocol.OpenTicket{Ticket: forged}).(*protocol.TicketState); len(got.State) != 0 {
		t.Errorf("a tampered ticket opened to %q", got.State)
	}
	utExpectRefused(t, h.ask(t, &protocol.OpenTicket{Ticket: sealed.Ticket}), "no more tickets to open")
	h.expectHangup(t)

	other := utStartHolderWith(t, nil, 1, 0, mustRandomTickets(t))
	if got := other.ask(t, &protocol.OpenTicket{Ticket: sealed.Ticket}).(*protocol.TicketState); len(got.State) != 0 {
		t.Errorf("another key opened the ticket to %q", got.State)
	}
	other.ask(t, &protocol.SealTicket{State: state})
	utExpectRefused(t, other.ask(t, &protocol.SealTicket{State: state}), "no more tickets to seal")
	other.expectHangup(t)
}

func mustRandomTickets(t *testing.T) *ticketKeys {
	t.Helper()
	k, err := randomTicketKeys()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestTicketKeyRotation: keys of our own are replaced after a day and
// the last three open; keys from a file seal with the first line and
// open with every line, and are never rotated here.
func TestTicketKeyRotation(t *testing.T) {
	now := time.Now()
	k := mustRandomTickets(t)
	k.now = func() time.Time { return now }
	var tickets [][]byte
	for day := 0; day < 4; day++ {
		now = now.Add(ticketRotate)
		tk, err := k.seal([]byte("state"))
		if err != nil {
			t.Fatal(err)
		}
		tickets = append(tickets, tk)
	}
	if len(k.keys) != ticketKeep || k.open(tickets[0]) != nil || k.open(tickets[1]) == nil || k.open(tickets[3]) == nil {
		t.Errorf("after 4 days: %d keys; the oldest ticket must not open, the last three must", len(k.keys))
	}

	dir := t.TempDir()
	first, second := bytes.Repeat([]byte{1}, TicketKeySize), bytes.Repeat([]byte{2}, TicketKeySize)
	write := func(keys ...[]byte) *os.File {
		var lines []string
		for _, raw := range keys {
			lines = append(lines, b64(raw))
		}
		p := filepath.Join(dir, "tickets")
		os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n\n"), 0o600)
		f, _ := os.Open(p)
		return f
	}
	old, err := readTicketKeys(write(second))
	if err != nil {
		t.Fatal(err)
	}
	oldTicket, _ := old.seal([]byte("state"))
	both, err := readTicketKeys(write(first, second))
	if err != nil {
		t.Fatal(err)
	}
	newTicket, _ := both.seal([]byte("state"))
	if both.open(oldTicket) == nil || !bytes.Equal(newTicket[:ticketNameSize], first[:ticketNameSize]) {
		t.Error("a file's second key must open, its first must seal")
	}
	for _, bad := range []string{"", "not base64!\n", b64(first[:79]) + "\n"} {
		p := filepath.Join(dir, "bad")
		os.WriteFile(p, []byte(bad), 0o600)
		f, _ := os.Open(p)
		if _, err := readTicketKeys(f); err == nil {
			t.Errorf("TICKETKEYFILE %q accepted", bad)
		}
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// BenchmarkTicketSeal and BenchmarkTicketOpen are the key holder's own
// cost per ticket (a Go server's session state without client
// certificates is about 200 bytes; 512 leaves room), beside the round
// trip on the key channel that BenchmarkChannelRoundTrip measures for
// signatures.
func BenchmarkTicketSeal(b *testing.B) {
	k, _ := randomTicketKeys()
	state := bytes.Repeat([]byte{7}, 512)
	for b.Loop() {
		if _, err := k.seal(state); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTicketOpen(b *testing.B) {
	k, _ := randomTicketKeys()
	ticket, _ := k.seal(bytes.Repeat([]byte{7}, 512))
	for b.Loop() {
		if k.open(ticket) == nil {
			b.Fatal("ticket did not open")
		}
	}
}
