package tlsworker

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Session tickets are sealed and opened here, in the key holder, never
// in a worker: a worker hands over the session state and gets the
// ticket, or hands over a client's ticket and gets the state. A worker
// that is taken over can therefore neither read other clients' tickets
// nor forge one, and a ticket sealed for one worker opens for the next.

// TicketKeySize is the size of one key of TICKETKEYFILE, as in haproxy's
// tls-ticket-keys: 16 bytes that name the key in each ticket, 32 of
// AES-256-GCM key, and 32 more that haproxy uses for HMAC and we leave
// unused (GCM authenticates).
const TicketKeySize = 80

const (
	ticketNameSize = 16
	ticketRotate   = 24 * time.Hour // a key of our own seals for a day...
	ticketKeep     = 3              // ...and opens for two more
	maxTicketFile  = 64 << 10
)

// ticketKey is one key: its name and its cipher.
type ticketKey struct {
	name [ticketNameSize]byte
	aead cipher.AEAD
}

func newTicketKey(raw []byte) (*ticketKey, error) {
	if len(raw) != TicketKeySize {
		return nil, fmt.Errorf("a key of %d bytes, want %d", len(raw), TicketKeySize)
	}
	block, err := aes.NewCipher(raw[ticketNameSize : ticketNameSize+32])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k := &ticketKey{aead: aead}
	copy(k.name[:], raw)
	return k, nil
}

// ticketKeys are the key holder's ticket keys: the first seals, all
// open. Keys of its own are made at start and rotated daily; keys from
// TICKETKEYFILE are the operator's to rotate (a reload reads the file
// again).
type ticketKeys struct {
	mu    sync.Mutex
	keys  []*ticketKey
	fixed bool      // from TICKETKEYFILE
	made  time.Time // when keys[0] was made, for rotation
	now   func() time.Time
}

// randomTicketKeys makes a key of our own.
func randomTicketKeys() (*ticketKeys, error) {
	t := &ticketKeys{now: time.Now}
	return t, t.rotate()
}

func (t *ticketKeys) rotate() error {
	raw := make([]byte, TicketKeySize)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	k, err := newTicketKey(raw)
	if err != nil {
		return err
	}
	t.keys = append([]*ticketKey{k}, t.keys[:min(len(t.keys), ticketKeep-1)]...)
	t.made = t.now()
	return nil
}

// readTicketKeys reads TICKETKEYFILE from f: one key a line, each the
// standard base64 of TicketKeySize bytes; blank lines are skipped.
func readTicketKeys(f *os.File) (*ticketKeys, error) {
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTicketFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxTicketFile {
		return nil, fmt.Errorf("larger than %d bytes", maxTicketFile)
	}
	t := &ticketKeys{fixed: true, now: time.Now}
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(string(line))
		if err == nil {
			var k *ticketKey
			if k, err = newTicketKey(raw); err == nil {
				t.keys = append(t.keys, k)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", i+1, err)
		}
	}
	if len(t.keys) == 0 {
		return nil, errors.New("no key (want lines of base64 from: openssl rand 80 | openssl base64 -A)")
	}
	return t, nil
}

// seal makes a ticket: the key's name, a random nonce, and the state
// sealed with AES-256-GCM, the name authenticated too.
func (t *ticketKeys) seal(state []byte) ([]byte, error) {
	t.mu.Lock()
	if !t.fixed && t.now().Sub(t.made) >= ticketRotate {
		if err := t.rotate(); err != nil {
			t.mu.Unlock()
			return nil, err
		}
	}
	k := t.keys[0]
	t.mu.Unlock()
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := make([]byte, 0, ticketNameSize+len(nonce)+len(state)+k.aead.Overhead())
	out = append(append(out, k.name[:]...), nonce...)
	return k.aead.Seal(out, nonce, state, k.name[:]), nil
}

// open returns a ticket's state, or nil when no key of ours opens it.
func (t *ticketKeys) open(ticket []byte) []byte {
	t.mu.Lock()
	keys := t.keys
	t.mu.Unlock()
	for _, k := range keys {
		n := k.aead.NonceSize()
		if len(ticket) < ticketNameSize+n+k.aead.Overhead() || !bytes.Equal(ticket[:ticketNameSize], k.name[:]) {
			continue
		}
		state, err := k.aead.Open(nil, ticket[ticketNameSize:ticketNameSize+n], ticket[ticketNameSize+n:], k.name[:])
		if err == nil {
			return state
		}
	}
	return nil
}
