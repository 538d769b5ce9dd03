package supervisor

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ucspi-tls/sslserver/env"
	"github.com/ucspi-tls/sslserver/protocol"
)

const (
	// handlerWait bounds how long a session waits for an idle handler:
	// there are as many handlers as session slots, so only a handler
	// being replaced can make a session wait at all.
	handlerWait = 30 * time.Second
	// handlerRespawn is the least time between two starts of one
	// handler slot, so a handler that dies at start does not spin.
	handlerRespawn = time.Second
)

// handlerPool is sslhandle's program side: n long-lived handler
// processes (this binary with argv[0] protocol.HandlerArgv0, under the
// program's ids), each serving one session at a time. A handler that
// dies is replaced.
type handlerPool struct {
	srv  *Server
	n    int
	args []string // a handler's argv
	env  []string // a handler's environment at start: no session yet
	seq  atomic.Uint32
	wg   sync.WaitGroup // one per live handler's watcher

	mu       sync.Mutex
	live     map[*handler]struct{}
	idle     []*handler    // oldest first; a handler that dies is taken out
	changed  chan struct{} // closed (and replaced) when a handler becomes idle
	stopping bool
}

// errHandlersStopping: a handler finished starting after end began.
var errHandlersStopping = errors.New("handlers are stopping")

// handler is one handler process and the supervisor's end of its channel.
type handler struct {
	proc  Process
	ch    *protocol.Channel
	born  time.Time
	gone  chan struct{} // closed once reaped; state is then set
	state ExitState
}

func newHandlerPool(s *Server) *handlerPool {
	o := s.opt
	return &handlerPool{
		srv: s, n: o.MaxConn, args: append([]string{protocol.HandlerArgv0}, o.Program[1:]...),
		env: env.Set(s.environ), live: map[*handler]struct{}{}, changed: make(chan struct{}),
	}
}

// begin starts all the handlers; one that cannot start stops sslhandle.
func (p *handlerPool) begin() error {
	for i := 0; i < p.n; i++ {
		if err := p.spawn(); err != nil {
			p.end()
			return fmt.Errorf("unable to start a handler: %w", err)
		}
	}
	return nil
}

// spawn starts one handler and makes it idle. Its fd map:
//
//	0 /dev/null  1 /dev/null  2 stderr  3 channel (protocol.HandlerFdSupervisor)
func (p *handlerPool) spawn() error {
	mine, theirs, err := protocol.Pair("handler")
	if err != nil {
		return err
	}
	pr, err := p.srv.spawn.Start(&ProcSpec{Path: p.srv.exe, Args: p.args, Env: p.env,
		Extra: []*os.File{theirs}, Cred: programCred(p.srv.opt)})
	theirs.Close()
	if err != nil {
		mine.Close()
		return err
	}
	ch, err := protocol.NewChannel(mine, protocol.HandlerReports)
	if err != nil {
		pr.Signal(os.Kill)
		pr.Wait()
		return err
	}
	h := &handler{proc: pr, ch: ch, born: time.Now(), gone: make(chan struct{})}
	// end takes its list of handlers to stop under mu: a replacement
	// that started after that is not on it, and would never be told.
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		h.kill()
		pr.Wait()
		return errHandlersStopping
	}
	p.live[h] = struct{}{}
	p.wg.Add(1)
	p.mu.Unlock()
	go p.watch(h)
	p.srv.log.Info("handler %d started", pr.Pid())
	p.put(h)
	return nil
}

// put makes h idle and wakes whoever waits for a handler.
func (p *handlerPool) put(h *handler) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.idle = append(p.idle, h)
	close(p.changed)
	p.changed = make(chan struct{})
}

// watch reaps a handler and, unless sslhandle is stopping, starts
// another in its place.
func (p *handlerPool) watch(h *handler) {
	defer p.wg.Done()
	h.state = h.proc.Wait()
	close(h.gone)
	h.ch.Close()
	p.mu.Lock()
	delete(p.live, h)
	p.idle = slices.DeleteFunc(p.idle, func(x *handler) bool { return x == h })
	stopping := p.stopping
	p.mu.Unlock()
	if stopping {
		return
	}
	p.srv.log.Warning("handler %d ended (%s); starting another", h.proc.Pid(), describe(h.state))
	if wait := handlerRespawn - time.Since(h.born); wait > 0 {
		time.Sleep(wait)
	}
	for p.respawn() {
		time.Sleep(handlerRespawn)
	}
}

// respawn starts a replacement; true means try again later.
func (p *handlerPool) respawn() bool {
	p.mu.Lock()
	stopping := p.stopping
	p.mu.Unlock()
	if stopping {
		return false
	}
	if err := p.spawn(); errors.Is(err, errHandlersStopping) {
		return false
	} else if err != nil {
		p.srv.log.Warning("unable to start a handler: %v", err)
		return true
	}
	return false
}

// end closes every handler's channel, which tells it to exit, and
// waits for them, bounded.
func (p *handlerPool) end() {
	p.mu.Lock()
	p.stopping = true
	live := make([]*handler, 0, len(p.live))
	for h := range p.live {
		live = append(live, h)
	}
	p.mu.Unlock()
	for _, h := range live {
		h.ch.Close()
	}
	done := make(chan struct{})
	go waitGroup(&p.wg, done)
	select {
	case <-done:
	case <-time.After(termGrace):
		for _, h := range live {
			h.proc.Signal(os.Kill)
		}
		<-done
	}
}

// get takes the idle handler idle longest, waiting for one if need be.
func (p *handlerPool) get() (*handler, error) {
	t := time.NewTimer(handlerWait)
	defer t.Stop()
	for {
		h, changed := p.takeIdle()
		if h != nil {
			return h, nil
		}
		select {
		case <-changed:
		case <-t.C:
			return nil, errors.New("no handler free")
		}
	}
}

// takeIdle takes the first live idle handler, or says what to wait for.
func (p *handlerPool) takeIdle() (*handler, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.idle) > 0 {
		h := p.idle[0]
		p.idle = p.idle[1:]
		if h.alive() {
			return h, nil
		}
	}
	return nil, p.changed
}

func (h *handler) alive() bool { return !isClosed(h.gone) }

func (h *handler) kill() {
	h.proc.Signal(os.Kill)
	h.ch.Close()
}

// Start hands a session to an idle handler: the descriptors a program
// would get (see sessionFiles.program) and its environment, less the fd
// numbers, which mean nothing in the handler.
func (p *handlerPool) Start(spec *ProcSpec) (Process, error) {
	block, err := protocol.EnvBlock(withoutVars(spec.Env, protocol.EnvCtlFD, protocol.EnvReadFD, protocol.EnvWriteFD))
	if err != nil {
		return nil, err
	}
	m := &protocol.HandlerSession{Seq: p.seq.Add(1), Delayed: p.srv.opt.Delayed, Env: block}
	files := slices.Clip(spec.Extra) // ctl, read, write: protocol.HandlerFd*
	if m.Delayed {
		files = append(files, spec.Stdin)
	}
	for try := 0; ; try++ {
		h, err := p.get()
		if err != nil {
			return nil, err
		}
		if err = h.ch.Send(m, files...); err == nil {
			return &handlerRun{p: p, h: h, seq: m.Seq}, nil
		}
		h.kill() // its replacement comes from watch
		if try == 2 {
			return nil, err
		}
	}
}

// handlerRun is one session in a handler, seen by the session as its
// program.
type handlerRun struct {
	p   *handlerPool
	h   *handler
	seq uint32

	mu   sync.Mutex
	over bool // the handler has ended this session: signals no longer apply
}

func (r *handlerRun) Pid() int { return r.h.proc.Pid() }

// Wait waits for the handler's HandlerEnd of this session and puts the
// handler back to idle. Anything else from the handler, or its death,
// ends the session as a program's death would; a handler that broke the
// protocol is killed.
func (r *handlerRun) Wait() ExitState {
	m, files, err := r.h.ch.Recv()
	closeFiles(files)
	end, ok := m.(*protocol.HandlerEnd)
	if err == nil && ok && end.Seq == r.seq {
		r.finish()
		r.p.put(r.h)
		return ExitState{Code: int(end.Code)}
	}
	if what := handlerFault(m, err); what != "" {
		r.p.srv.log.Warning("handler %d broke the protocol: %s", r.Pid(), what)
	}
	r.h.kill()
	<-r.h.gone
	r.finish()
	if st := r.h.state; st.Signal != 0 || st.Code != 0 {
		return st
	}
	return ExitState{Code: protocol.ExitTemp} // exited 0 in the middle of a session
}

// handlerFault says what was wrong with what a handler sent, or "" if
// it just hung up (it died).
func handlerFault(m protocol.Message, err error) string {
	switch {
	case err == nil:
		return fmt.Sprintf("message type %d out of turn", m.Type())
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return ""
	}
	return err.Error()
}

func (r *handlerRun) finish() {
	r.mu.Lock()
	r.over = true
	r.mu.Unlock()
}

// Signal ends the session early: SIGKILL kills the handler (it did not
// end the session when asked), any other signal asks it to end the
// session with HandlerAbort. Once the session is over, it does nothing:
// the handler may already serve another.
func (r *handlerRun) Signal(sig os.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.over {
		return nil
	}
	if sig == syscall.SIGKILL {
		return r.h.proc.Signal(sig)
	}
	return r.h.ch.Send(&protocol.HandlerAbort{Seq: r.seq})
}
