package supervisor

import (
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
)

// slowRestarts makes every key holder after the first take d to start.
func slowRestarts(sp *fakeSpawner, d time.Duration) {
	sp.set(func(s *fakeSpawner) {
		inner := s.keyHolder
		var started atomic.Int32
		s.keyHolder = func(p *fakeProc) ExitState {
			if started.Add(1) > 1 {
				time.Sleep(d)
			}
			return inner(p)
		}
	})
}

// TestSessionsWaitForKeyHolderRestart: sessions that arrive while the
// key holder is being restarted wait for the new one and are served;
// none is dropped.
func TestSessionsWaitForKeyHolderRestart(t *testing.T) {
	sp := spawnerWith(goodWorker, programExits(ExitState{}))
	h := newServer(t, sp, "-v")
	slowRestarts(sp, 300*time.Millisecond)
	h.start()
	kh := h.next(sp.keyHolders, "key holder")
	kh.Signal(syscall.SIGKILL)
	h.waitLine(fmt.Sprintf("sslserver: warning: key holder %d ended (signal 9), starting another", kh.pid))
	const n = 5
	for i := 0; i < n; i++ {
		h.dial()
	}
	next := h.next(sp.keyHolders, "second key holder")
	h.waitLine(fmt.Sprintf("sslserver: keyholder pid %d", next.pid))
	waitFor(t, "the sessions to end", func() bool { return h.countLinePrefix("sslserver: end ") >= n })
	if got := h.countLinePrefix("sslserver: end ") - strings.Count(h.log.String(), " status 0\n"); got != 0 {
		t.Errorf("%d sessions ended other than with status 0; log:\n%s", got, h.log.String())
	}
	if strings.Contains(h.log.String(), "dropping connection") {
		t.Errorf("a session was dropped; log:\n%s", h.log.String())
	}
	if got := h.kh.attachedTo(next.pid); got < n {
		t.Errorf("%d workers attached to the new key holder, want at least %d", got, n)
	}
}

func (h *harness) countLinePrefix(prefix string) int {
	c := 0
	for _, l := range h.lines() {
		if strings.HasPrefix(l, prefix) {
			c++
		}
	}
	return c
}

// dieBeforeReady makes the workers numbered in die (counting starts from
// 1) exit before they are ready; the others play w.
func dieBeforeReady(w workerScript, die func(n int32) bool) workerScript {
	var started atomic.Int32
	w.notReady = func(*fakeProc, *protocol.Channel) bool { return die(started.Add(1)) }
	return w
}

// TestHandOverReplacesAWorkerThatDies: a worker that dies before it is
// ready, or that is found dead when its session is handed over, is
// replaced, and the session is served by another.
func TestHandOverReplacesAWorkerThatDies(t *testing.T) {
	w := dieBeforeReady(goodWorker, func(n int32) bool { return n == 2 || n == 3 })
	sp := spawnerWith(w, programExits(ExitState{}))
	h := newServerEnv(t, sp, map[string]string{"SSL_PREFORK": "0"}, "-v").start()
	h.worker()
	h.dial() // the ready worker takes it
	h.waitLine(fmt.Sprintf("sslserver: end %d status 0", h.session().proc.pid))
	h.dial() // workers 2 and 3 die before they are ready; 4 serves
	fs := h.session()
	h.waitLine(fmt.Sprintf("sslserver: end %d status 0", fs.proc.pid))
	died := []*fakeProc{h.worker(), h.worker()}
	if fourth := h.worker(); fs.proc != fourth {
		t.Errorf("session served by %d, want the fourth worker %d", fs.proc.pid, fourth.pid)
	}
	for _, p := range died {
		if st := waitDone(t, p, "worker"); st.Code != 111 {
			t.Errorf("worker %d: %+v", p.pid, st)
		}
	}

	// A ready worker found dead at the hand-over.
	sp2 := spawnerWith(goodWorker, programExits(ExitState{}))
	h2 := newServer(t, sp2, "-v").start()
	idle := h2.worker()
	idle.Signal(syscall.SIGKILL)
	// Dead before the connection comes, as a killed process is at once:
	// the fake's goroutine could otherwise still take the session.
	waitDone(t, idle, "killed idle worker")
	h2.dial()
	fs2 := h2.session()
	h2.waitLine(fmt.Sprintf("sslserver: end %d status 0", fs2.proc.pid))
	for _, hh := range []*harness{h, h2} {
		if strings.Contains(hh.log.String(), "dropping connection") {
			t.Errorf("a session was dropped; log:\n%s", hh.log.String())
		}
	}
}

// TestHandOverGivesUp: after handOverTries workers that die before they
// are ready, the session is dropped with the last one's reason.
func TestHandOverGivesUp(t *testing.T) {
	w := dieBeforeReady(goodWorker, func(n int32) bool { return n > 1 })
	sp := spawnerWith(w, programExits(ExitState{}))
	h := newServerEnv(t, sp, map[string]string{"SSL_PREFORK": "0"}, "-v").start()
	h.worker()
	h.dial()
	h.waitLine(fmt.Sprintf("sslserver: end %d status 0", h.session().proc.pid))
	h.program()
	h.dial()
	h.waitLinePrefix("sslserver: warning: dropping connection from 127.0.0.1, unable to start TLS worker: worker ")
	for i := 0; i < handOverTries; i++ {
		waitDone(t, h.worker(), "worker")
	}
	h.none(sp.workers, "a fourth worker for the session", 100*time.Millisecond)
	h.none(sp.programs, "program", 10*time.Millisecond)
}

// TestWorkerGetsANewKeyChannel: a worker in session whose key channel
// died with the key holder asks for another and gets one, attached to
// the new key holder; its session goes on.
func TestWorkerGetsANewKeyChannel(t *testing.T) {
	got := make(chan int, 1)
	khc := make(chan *fakeProc, 1) // the key holder, for the worker to kill
	w := goodWorker
	w.session.waitExited = false // the hook may read the program's exit
	w.session.do = func(fs *fakeSession) {
		(<-khc).Signal(syscall.SIGKILL)
		if fs.proc.ch.Send(&protocol.KeyHolderLost{}) != nil {
			return
		}
		m, files, err := fs.proc.ch.Recv()
		if _, exited := m.(*protocol.ProgramExited); exited {
			m, files, err = fs.proc.ch.Recv()
		}
		if _, ok := m.(*protocol.KeyChannel); !ok || err != nil {
			t.Errorf("the worker got %T, %v", m, err)
			return
		}
		got <- len(files)
		closeFiles(files)
	}
	sp := spawnerWith(w, programExits(ExitState{}))
	h := newServer(t, sp, "-v").start()
	khc <- h.next(sp.keyHolders, "key holder")
	h.dial()
	fs := h.session()
	select {
	case n := <-got:
		if n != 1 {
			t.Errorf("KeyChannel came with %d files", n)
		}
	case <-time.After(waitLimit):
		t.Fatalf("no KeyChannel; log:\n%s", h.log.String())
	}
	next := h.next(sp.keyHolders, "second key holder")
	h.waitLine(fmt.Sprintf("sslserver: end %d status 0", fs.proc.pid))
	if n := h.kh.attachedTo(next.pid); n < 1 {
		t.Errorf("the new key holder got %d workers", n)
	}
}

// TestKeyHolderLostOutOfTurn: a worker that asks for a new key channel
// while its key holder runs is killed once restartWait has passed.
func TestKeyHolderLostOutOfTurn(t *testing.T) {
	w := goodWorker
	w.session.do = func(fs *fakeSession) { fs.proc.ch.Send(&protocol.KeyHolderLost{}); <-fs.proc.killed }
	sp := spawnerWith(w, programExits(ExitState{}))
	h := newServer(t, sp, "-v").start()
	h.dial()
	fs := h.session()
	start := time.Now()
	h.waitLine(fmt.Sprintf("sslserver: warning: TLS worker %d broke the protocol: a new key channel while its key holder runs", fs.proc.pid))
	if d := time.Since(start); d < restartWait-100*time.Millisecond {
		t.Errorf("killed after %v, before restartWait", d)
	}
	if st := waitDone(t, fs.proc, "worker"); st.Signal != int(syscall.SIGKILL) {
		t.Errorf("worker ended with %+v", st)
	}
}

// TestAttachWaitsForAKeyHolderNotYetReaped: a key holder whose channel
// is gone but which the supervisor has not reaped yet (it dies slowly
// here) fails the NewWorker send; that counts as down, and the session
// waits for the next key holder instead of being dropped.
func TestAttachWaitsForAKeyHolderNotYetReaped(t *testing.T) {
	sp := spawnerWith(goodWorker, programExits(ExitState{}))
	h := newServerEnv(t, sp, map[string]string{"SSL_PREFORK": "0"}, "-v")
	hangUp := make(chan struct{})
	sp.set(func(s *fakeSpawner) {
		inner := s.keyHolder
		var started atomic.Int32
		s.keyHolder = func(p *fakeProc) ExitState {
			if started.Add(1) > 1 {
				return inner(p)
			}
			go func() { <-hangUp; p.ch.Close() }()
			inner(p) // returns once its channel is closed
			time.Sleep(300 * time.Millisecond)
			return ExitState{Code: 1}
		}
	})
	h.start()
	kh := h.next(sp.keyHolders, "key holder")
	h.worker()
	h.dial() // the ready worker
	h.waitLine(fmt.Sprintf("sslserver: end %d status 0", h.session().proc.pid))
	close(hangUp)
	time.Sleep(50 * time.Millisecond) // the channel is closed, the process not yet gone
	h.dial()                          // needs a new worker, attached to the next key holder
	fs := h.session()
	h.waitLine(fmt.Sprintf("sslserver: end %d status 0", fs.proc.pid))
	if strings.Contains(h.log.String(), "dropping connection") {
		t.Errorf("a session was dropped; log:\n%s", h.log.String())
	}
	h.waitLine(fmt.Sprintf("sslserver: warning: key holder %d ended (exit status 1), starting another", kh.pid))
}
