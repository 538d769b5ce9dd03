package supervisor

import (
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
)

// handlerSession is one session as a fake handler saw it; the test ends
// it with a status on end.
type handlerSession struct {
	proc  *fakeProc
	msg   *protocol.HandlerSession
	files []*os.File
	end   chan uint8
}

// fakeHandler serves the sessions that come over its channel (fd 3,
// Extra[0]) one at a time, as sslhandle's handlers do, reporting each
// on sessions; it exits 0 when the supervisor hangs up.
func fakeHandler(sessions chan<- *handlerSession) behaviour {
	return func(p *fakeProc) ExitState {
		ch, err := p.channel()
		if err != nil {
			return ExitState{Code: protocol.ExitTemp}
		}
		for {
			m, files, err := ch.Recv()
			if err != nil {
				return ExitState{}
			}
			if hs, ok := m.(*protocol.HandlerSession); ok {
				serveFakeSession(p, ch, hs, files, sessions)
			}
		}
	}
}

func serveFakeSession(p *fakeProc, ch *protocol.Channel, hs *protocol.HandlerSession, files []*os.File, sessions chan<- *handlerSession) {
	s := &handlerSession{proc: p, msg: hs, files: files, end: make(chan uint8, 1)}
	sessions <- s
	code := <-s.end
	closeFiles(files)
	ch.Send(&protocol.HandlerEnd{Seq: hs.Seq, Code: code})
}

func nextHandlerSession(t *testing.T, h *harness, sessions <-chan *handlerSession) *handlerSession {
	t.Helper()
	select {
	case s := <-sessions:
		return s
	case <-time.After(waitLimit):
	}
	t.Fatalf("no session reached a handler; log:\n%s", h.log.String())
	return nil
}

// newHandleServer is the harness with sslhandle's program side: -c
// handlers, started before the first client.
func newHandleServer(t *testing.T, sessions chan *handlerSession, args ...string) *harness {
	t.Helper()
	h := newServer(t, spawnerWith(goodWorker, fakeHandler(sessions)), args...)
	h.srv.opt.SSLEnv = true // sslhandle's default
	h.srv.program = newHandlerPool(h.srv)
	h.start()
	if err := h.srv.program.begin(); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestHandlerPoolSessions: the handlers are started once, with the
// program's arguments and a session-free environment; a session reaches
// one with the program's descriptors and environment (less the fd
// numbers), and its status is the session's end line.
func TestHandlerPoolSessions(t *testing.T) {
	sessions := make(chan *handlerSession, 4)
	h := newHandleServer(t, sessions, "-v", "-c", "2")
	for i := 0; i < 2; i++ {
		p := h.program()
		if !slices.Equal(p.spec.Args, []string{protocol.HandlerArgv0, "arg1"}) || p.spec.Path != h.srv.exe || envHas(p.spec.Env, "PROTO=SSL") {
			t.Errorf("handler %d started as %q %q with %q", p.pid, p.spec.Path, p.spec.Args, p.spec.Env)
		}
	}
	h.none(h.sp.programs, "a third handler", 100*time.Millisecond)
	for want := uint8(0); want < 3; want++ {
		h.dial()
		fs := h.session()
		s := nextHandlerSession(t, h, sessions)
		environ, err := s.msg.Environ()
		if err != nil || !envHas(environ, "PROTO=SSL") || len(envNames(environ, "SSLCTLFD")) > 0 || s.msg.Delayed || len(s.files) != 3 {
			t.Fatalf("session %+v with %d files, environment %q (%v)", s.msg, len(s.files), environ, err)
		}
		s.end <- want
		h.waitLine(fmt.Sprintf("sslserver: end %d status %d", fs.proc.pid, want))
	}
	h.none(h.sp.programs, "another handler", 100*time.Millisecond)
}

// TestHandlerPoolReplacesADeadHandler: a handler killed in a session ends
// that session with its death and is replaced; the next session is
// served.
func TestHandlerPoolReplacesADeadHandler(t *testing.T) {
	sessions := make(chan *handlerSession, 4)
	h := newHandleServer(t, sessions, "-v", "-c", "2")
	h.program()
	h.program()
	h.dial()
	fs := h.session()
	s := nextHandlerSession(t, h, sessions)
	s.proc.Signal(syscall.SIGKILL)
	h.waitLine(fmt.Sprintf("sslserver: end %d signal 9", fs.proc.pid))
	h.waitLine(fmt.Sprintf("sslserver: warning: handler %d ended (signal 9); starting another", s.proc.pid))
	if p := h.program(); !slices.Equal(p.spec.Args, []string{protocol.HandlerArgv0, "arg1"}) {
		t.Errorf("replacement started as %q", p.spec.Args)
	}
	h.dial()
	fs = h.session()
	next := nextHandlerSession(t, h, sessions)
	if next.proc == s.proc {
		t.Fatal("a session went to the dead handler")
	}
	next.end <- 0
	h.waitLine(fmt.Sprintf("sslserver: end %d status 0", fs.proc.pid))
}

// TestHandlerPoolEndDuringRespawn: a replacement handler whose start is
// under way when sslhandle stops is not left running with its channel
// open, so end returns rather than waiting for it for ever.
func TestHandlerPoolEndDuringRespawn(t *testing.T) {
	sessions := make(chan *handlerSession, 4)
	h := newHandleServer(t, sessions, "-c", "1")
	first := h.program()
	starting, release := make(chan struct{}), make(chan struct{})
	h.sp.set(func(s *fakeSpawner) {
		s.refuse = func(spec *ProcSpec) error {
			if spec.Args[0] == protocol.HandlerArgv0 {
				close(starting)
				<-release
			}
			return nil
		}
	})
	first.Signal(syscall.SIGKILL)
	select {
	case <-starting:
	case <-time.After(waitLimit):
		t.Fatalf("no replacement handler was started; log:\n%s", h.log.String())
	}
	ended := make(chan struct{})
	go func() {
		h.srv.program.end()
		close(ended)
	}()
	time.Sleep(100 * time.Millisecond) // end has marked the pool stopping
	close(release)
	select {
	case <-ended:
	case <-time.After(termGrace + 5*time.Second):
		t.Fatal("end did not return: the handler started meanwhile was left running")
	}
	if p := h.program(); !p.wasWaited() {
		t.Errorf("the handler started during end was not reaped")
	}
}
