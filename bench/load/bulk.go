package load

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Direction is which way bulk data flows.
type Direction int

const (
	// Upload sends to a program that discards its input (cat >/dev/null).
	Upload Direction = iota
	// Echo sends to a program that writes its input back (cat), and
	// reads it all back at the same time.
	Echo
)

// bulkChunk is what one Write carries; crypto/tls cuts it into records.
const bulkChunk = 64 << 10

// closeGrace bounds the wait for the server's end after the client has
// stopped sending.
const closeGrace = 30 * time.Second

// echoDrain bounds the wait for the last of an echo, which is at most
// what the socket buffers and the program's pipes hold.
const echoDrain = 10 * time.Second

// BulkResult is the payload moved through one session.
type BulkResult struct {
	Bytes   int64         // payload bytes sent (Upload) or received back (Echo)
	Elapsed time.Duration // from after the handshake to the server's end
}

// MiBps is the throughput in MiB per second.
func (b *BulkResult) MiBps() float64 {
	if b.Elapsed <= 0 {
		return 0
	}
	return float64(b.Bytes) / (1 << 20) / b.Elapsed.Seconds()
}

// Bulk sends data through one session for limit (or until max bytes,
// 0: 64 GiB), then half-closes and waits for the server to end the
// session, which proves the program read all of it.
func Bulk(ctx context.Context, t Target, dir Direction, limit time.Duration, max int64) (*BulkResult, error) {
	if max <= 0 {
		max = 64 << 30
	}
	c, err := dial(t.Addr, time.Now().Add(limit+closeGrace))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	conn, err := bulkConn(c, t.TLS)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var res BulkResult
	if dir == Echo {
		res.Bytes, err = echo(conn, start.Add(limit), max)
	} else {
		res.Bytes, err = upload(conn, start.Add(limit), max)
	}
	res.Elapsed = time.Since(start)
	return &res, err
}

// halfCloser is a connection that can end its sending side alone.
type halfCloser interface {
	io.ReadWriter
	CloseWrite() error
	SetDeadline(time.Time) error
}

// tlsHalf ends the TLS stream with close_notify and then the TCP stream
// with a FIN, as a UCSPI client does on EOF.
type tlsHalf struct {
	*tls.Conn
	tcp *net.TCPConn
}

func (h tlsHalf) CloseWrite() error {
	if err := h.Conn.CloseWrite(); err != nil {
		return err
	}
	return h.tcp.CloseWrite()
}

func bulkConn(c *net.TCPConn, cfg *tls.Config) (halfCloser, error) {
	if cfg == nil {
		return c, nil
	}
	tc, err := handshake(c, cfg)
	if err != nil {
		return nil, err
	}
	return tlsHalf{Conn: tc, tcp: c}, nil
}

// send writes chunks until the deadline or max, then, with closeWrite,
// half-closes.
func send(w halfCloser, until time.Time, max int64, closeWrite bool) (int64, error) {
	buf := make([]byte, bulkChunk)
	var n int64
	for n < max && time.Now().Before(until) {
		k, err := w.Write(buf[:min(int64(len(buf)), max-n)])
		n += int64(k)
		if err != nil {
			return n, fmt.Errorf("sending after %d bytes: %w", n, err)
		}
	}
	if !closeWrite {
		return n, nil
	}
	return n, w.CloseWrite()
}

func upload(c halfCloser, until time.Time, max int64) (int64, error) {
	n, err := send(c, until, max, true)
	if err != nil {
		return n, err
	}
	got, err := io.Copy(io.Discard, c)
	if err != nil {
		return n, fmt.Errorf("waiting for the end after sending %d bytes: %w", n, err)
	}
	if got != 0 {
		return n, fmt.Errorf("a discarding program sent %d bytes back", got)
	}
	return n, nil
}

// echo sends and receives at once; the figure ends when all that went
// has come back, which must happen. Only then does the client
// half-close: some servers (stunnel) end the whole session on the
// client's close_notify and drop what the program still had to say.
func echo(c halfCloser, until time.Time, max int64) (int64, error) {
	e := &echoCount{want: -1, done: make(chan struct{})}
	go e.receive(c)
	n, err := send(c, until, max, false)
	if err != nil {
		return e.total(), err
	}
	c.SetDeadline(time.Now().Add(echoDrain))
	if got, ok := e.expect(n); !ok {
		return got, fmt.Errorf("sent %d bytes, %d came back before the server ended (%v)", n, got, e.err)
	}
	c.CloseWrite()
	return n, nil
}

// echoCount counts what comes back and says when it has all come.
type echoCount struct {
	mu       sync.Mutex
	got      int64
	want     int64 // -1 while the client is still sending
	err      error
	done     chan struct{} // closed when got reaches want, or reading ends
	doneOnce sync.Once
}

func (e *echoCount) receive(r io.Reader) {
	buf := make([]byte, bulkChunk)
	for {
		n, err := r.Read(buf)
		e.mu.Lock()
		e.got += int64(n)
		if err != nil {
			e.err = err
		}
		complete := err != nil || (e.want >= 0 && e.got >= e.want)
		e.mu.Unlock()
		if complete {
			e.doneOnce.Do(e.closeDone)
		}
		if err != nil {
			return
		}
	}
}

func (e *echoCount) closeDone() { close(e.done) }

// expect waits, bounded by the connection's deadline, until n bytes
// have come back.
func (e *echoCount) expect(n int64) (int64, bool) {
	e.mu.Lock()
	e.want = n
	if e.got >= n {
		e.doneOnce.Do(e.closeDone)
	}
	e.mu.Unlock()
	<-e.done
	got := e.total()
	return got, got == n
}

func (e *echoCount) total() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.got
}
