package tlsworker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
)

// ticketClient is the worker's side of session tickets: crypto/tls's
// WrapSession and UnwrapSession, each one round trip to the key holder,
// which holds the ticket keys. Each counts against the session's
// allowance there, as a signature does.
type ticketClient struct {
	link    *keyLink
	timeout time.Duration
	mu      sync.Mutex // one request in flight
}

// wrap hands the session state to the key holder to seal.
func (c *ticketClient) wrap(_ tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
	state, err := ss.Bytes()
	if err != nil {
		return nil, err
	}
	m, err := c.roundTrip(&protocol.SealTicket{State: state})
	if err != nil {
		return nil, err
	}
	switch m := m.(type) {
	case *protocol.Ticket:
		return m.Ticket, nil
	case *protocol.SignRefused:
		return nil, fmt.Errorf("key holder refused to seal a ticket: %s", m.Reason)
	}
	return nil, errors.New("key holder: unexpected answer to a ticket")
}

// unwrap asks the key holder to open a client's ticket; one that does
// not open means a full handshake (nil, nil).
func (c *ticketClient) unwrap(ticket []byte, _ tls.ConnectionState) (*tls.SessionState, error) {
	if len(ticket) == 0 || len(ticket) > protocol.MaxTicket {
		return nil, nil
	}
	m, err := c.roundTrip(&protocol.OpenTicket{Ticket: ticket})
	if err != nil {
		return nil, err
	}
	switch m := m.(type) {
	case *protocol.TicketState:
		if len(m.State) == 0 {
			return nil, nil
		}
		ss, err := tls.ParseSessionState(m.State)
		if err != nil {
			return nil, nil
		}
		return ss, nil
	case *protocol.SignRefused:
		return nil, fmt.Errorf("key holder refused to open a ticket: %s", m.Reason)
	}
	return nil, errors.New("key holder: unexpected answer to a ticket")
}

// roundTrip sends req on the current key channel and reads the answer
// within c.timeout, once more on a new channel if the key holder was
// restarted.
func (c *ticketClient) roundTrip(req protocol.Message) (protocol.Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.link.current()
	m, err := exchange(ch, req, c.timeout)
	if err != nil && hungUp(err) {
		if ch, err = c.link.renew(ch); err != nil {
			return nil, fmt.Errorf("key holder: %w", err)
		}
		m, err = exchange(ch, req, c.timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("key holder: %w", err)
	}
	return m, nil
}

// exchange is one request and its answer on ch, within timeout.
func exchange(ch *protocol.Channel, req protocol.Message, timeout time.Duration) (protocol.Message, error) {
	if err := ch.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	if err := ch.Send(req); err != nil {
		return nil, err
	}
	m, _, err := ch.Recv()
	return m, err
}
