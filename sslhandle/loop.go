package sslhandle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ucspi-tls/sslserver/protocol"
)

// loop is a handler process's life: sessions from the supervisor, one
// at a time, until the supervisor closes the channel.
type loop struct {
	h      Handler
	args   []string
	ch     *protocol.Channel
	stderr io.Writer
	msgs   chan received

	cur  *running // the session in progress, or nil
	last uint32   // the session ended last, which a late HandlerAbort may name
}

type received struct {
	m     protocol.Message
	files []*os.File
	err   error
}

// running is one session in progress.
type running struct {
	seq    uint32
	s      *Session
	cancel context.CancelFunc
	done   chan struct{}
	code   int
}

// serveHandler is the handler role: its channel is fd
// protocol.HandlerFdSupervisor.
func serveHandler(h Handler, args []string, stderr io.Writer) int {
	ch, err := protocol.NewChannel(os.NewFile(protocol.HandlerFdSupervisor, "supervisor"), protocol.HandlerOrders)
	if err != nil {
		fmt.Fprintf(stderr, "sslhandle handler: %v\n", err)
		return protocol.ExitTemp
	}
	return serveChannel(h, args, ch, stderr)
}

// serveChannel serves the sessions that come over ch until it closes.
func serveChannel(h Handler, args []string, ch *protocol.Channel, stderr io.Writer) int {
	l := &loop{h: h, args: args, ch: ch, stderr: stderr, msgs: make(chan received)}
	go l.receive()
	return l.run()
}

// receive passes on what the supervisor sends, until the first error.
func (l *loop) receive() {
	for {
		m, files, err := l.ch.Recv()
		l.msgs <- received{m, files, err}
		if err != nil {
			return
		}
	}
}

func (l *loop) run() int {
	for {
		select {
		case r := <-l.msgs:
			if code, stop := l.take(r); stop {
				return code
			}
		case <-l.curDone():
			if err := l.ch.Send(&protocol.HandlerEnd{Seq: l.cur.seq, Code: exitCode(l.cur.code)}); err != nil {
				return l.fail(err)
			}
			l.last, l.cur = l.cur.seq, nil
		}
	}
}

// curDone is the current session's end, or nil (never ready) when idle.
func (l *loop) curDone() <-chan struct{} {
	if l.cur == nil {
		return nil
	}
	return l.cur.done
}

// take acts on one message in the only order the supervisor may send
// them; anything else ends the handler, which the supervisor replaces.
// The supervisor closing the channel is the order to exit.
func (l *loop) take(r received) (code int, stop bool) {
	if r.err != nil {
		l.abort()
		if errors.Is(r.err, io.EOF) {
			return protocol.ExitOK, true
		}
		return l.fail(r.err), true
	}
	switch m := r.m.(type) {
	case *protocol.HandlerSession:
		if l.cur == nil {
			if err := l.start(m, r.files); err != nil {
				return l.fail(err), true
			}
			return 0, false
		}
	case *protocol.HandlerAbort:
		if l.cur != nil && m.Seq == l.cur.seq {
			l.abort()
			return 0, false
		}
		if m.Seq == l.last {
			return 0, false // it crossed our HandlerEnd
		}
	}
	closeFiles(r.files)
	l.abort()
	return l.fail(fmt.Errorf("message type %d out of turn", r.m.Type())), true
}

// start runs the handler on a new session; a malformed one stops the
// handler.
func (l *loop) start(m *protocol.HandlerSession, files []*os.File) error {
	s, err := newSession(m, files, l.args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cur = &running{seq: m.Seq, s: s, cancel: cancel, done: make(chan struct{})}
	go runHandler(ctx, l.h, l.cur)
	return nil
}

// runHandler is one session's goroutine.
func runHandler(ctx context.Context, h Handler, r *running) {
	defer close(r.done)
	defer r.s.close()
	defer r.cancel()
	r.code = h(ctx, r.s)
}

// abort ends the current session early and waits for its handler.
func (l *loop) abort() {
	if l.cur == nil {
		return
	}
	l.cur.cancel()
	l.cur.s.close()
	<-l.cur.done
}

func (l *loop) fail(err error) int {
	fmt.Fprintf(l.stderr, "sslhandle handler %d: %v\n", os.Getpid(), err)
	return protocol.ExitTemp
}

// exitCode maps a handler's status to a program's: 0 to 255, anything
// else is a temporary failure.
func exitCode(code int) uint8 {
	if code < 0 || code > 255 {
		return protocol.ExitTemp
	}
	return uint8(code)
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
