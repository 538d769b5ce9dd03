package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Held is a set of open, idle sessions.
type Held struct {
	mu    sync.Mutex
	conns []io.Closer
}

// Len is how many sessions are open.
func (h *Held) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// Close ends every session.
func (h *Held) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
}

func (h *Held) add(c io.Closer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conns = append(h.conns, c)
}

// holdParallel is how many sessions are being opened at once.
const holdParallel = 8

// Hold opens n sessions to a program that echoes (cat), each proven
// live by one byte sent and read back, and leaves them open and idle.
// Each must open within timeout. On error no session is left open.
func Hold(ctx context.Context, t Target, n int, timeout time.Duration) (*Held, error) {
	if n < 1 || n > 100_000 {
		return nil, fmt.Errorf("cannot hold %d sessions", n)
	}
	h := &Held{}
	todo := make(chan struct{}, n)
	for range n {
		todo <- struct{}{}
	}
	close(todo)
	errs := make(chan error, holdParallel)
	for range holdParallel {
		go h.opener(ctx, t, timeout, todo, errs)
	}
	var err error
	for range holdParallel {
		err = errors.Join(err, <-errs)
	}
	if err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// opener opens sessions until todo is empty or one fails.
func (h *Held) opener(ctx context.Context, t Target, timeout time.Duration, todo <-chan struct{}, errs chan<- error) {
	for range todo {
		if err := ctx.Err(); err != nil {
			errs <- err
			return
		}
		c, err := openIdle(t, timeout)
		if err != nil {
			errs <- fmt.Errorf("session %d: %w", h.Len()+1, err)
			return
		}
		h.add(c)
	}
	errs <- nil
}

func openIdle(t Target, timeout time.Duration) (io.Closer, error) {
	c, err := dial(t.Addr, time.Now().Add(timeout))
	if err != nil {
		return nil, err
	}
	conn, err := bulkConn(c, t.TLS)
	if err == nil {
		err = echoOne(conn)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// echoOne proves the program runs and the relay is set up.
func echoOne(rw io.ReadWriter) error {
	if _, err := rw.Write([]byte{'x'}); err != nil {
		return fmt.Errorf("writing the probe byte: %w", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(rw, b[:]); err != nil {
		return fmt.Errorf("reading the probe byte back: %w", err)
	}
	if b[0] != 'x' {
		return fmt.Errorf("probe byte came back as %q", b[:])
	}
	return nil
}
