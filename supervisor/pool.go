package supervisor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
)

// readyWait bounds a new worker's start: exec, configuration, confinement.
const readyWait = 10 * time.Second

// workerPool keeps confined TLS workers started ahead of demand, so the
// cost of exec and confinement leaves the accept path. A worker serves
// at most `sessions` sessions one after another (1 by default: an address
// space per connection) and none after one that failed.
type workerPool struct {
	srv      *Server
	target   int // idle workers to keep ready
	sessions int // sessions per worker
	mu       sync.Mutex
	idle     []*pooledWorker
	all      map[*pooledWorker]struct{} // every worker not yet reaped
	starting int
	stopped  bool
	warned   bool // a failed start was logged; don't repeat it for every retry

	told sync.Once // the sandbox line is logged for the first ready worker
}

// pooledWorker is one started worker and its channel.
type pooledWorker struct {
	proc   Process
	ch     *protocol.Channel
	khID   uint32   // its name at the key holder, for grants
	khGen  int      // which key holder has its key channel
	set    *certSet // the certificates it was configured with
	served int
	gone   chan struct{} // closed when reaped
	state  ExitState     // valid once gone is closed

	layers *protocol.WorkerReady // the sandbox layers it reported
}

// poolSettings reads SSL_PREFORK (idle workers kept ready; default 4, at
// most -c) and SSL_WORKER_SESSIONS (sessions per worker; default 1).
func poolSettings(get getenv, maxConn int) (target, sessions int, err error) {
	target, err = envInt(get, "SSL_PREFORK", 4, 0, 1024)
	if err != nil {
		return 0, 0, err
	}
	sessions, err = envInt(get, "SSL_WORKER_SESSIONS", 1, 1, 65535)
	return min(target, maxConn), sessions, err
}

func envInt(get getenv, name string, def, lo, hi int) (int, error) {
	v := get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s=%q is not a number from %d to %d", name, v, lo, hi)
	}
	return n, nil
}

// get returns a ready worker: an idle one, or one started now.
func (p *workerPool) get() (*pooledWorker, error) {
	defer p.refillLater()
	p.mu.Lock()
	for len(p.idle) > 0 {
		w := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if !w.alive() {
			continue
		}
		if !p.srv.kh.current(w.khGen) { // its key channel leads to a dead key holder
			w.retire()
			continue
		}
		p.mu.Unlock()
		return w, nil
	}
	p.mu.Unlock()
	return p.start()
}

// handOverTries bounds the workers one session is offered to.
const handOverTries = 3

// handOver gives session seq and its descriptors to a ready worker. A
// worker that dies before it is ready, or before it has the session, is
// replaced by another, up to handOverTries in all; a key holder that is
// still down after restartWait is not waited for again.
func (p *workerPool) handOver(seq uint32, files []*os.File) (*pooledWorker, error) {
	var err error
	for try := 0; try < handOverTries; try++ {
		var w *pooledWorker
		if w, err = p.get(); errors.Is(err, errKeyHolderDown) {
			return nil, err
		}
		if err != nil {
			continue
		}
		if err = w.give(seq, files); err == nil {
			return w, nil
		}
		var broke *brokeProtocol
		if errors.As(err, &broke) {
			p.srv.log.Warning("TLS worker %d broke the protocol: %v", w.proc.Pid(), err)
		}
		w.kill()
	}
	return nil, err
}

// rekey answers a worker's KeyHolderLost: once the worker's key holder
// is gone (the supervisor may learn it a moment after the worker), the
// worker gets a channel to the next one, good for one signature. A worker
// whose key holder still runs after restartWait has asked out of turn.
func (p *workerPool) rekey(w *pooledWorker) error {
	kh := p.srv.kh
	if !kh.waitGone(w.khGen, restartWait) {
		return &brokeProtocol{"a new key channel while its key holder runs"}
	}
	khW, ref, err := kh.newChannel()
	if err != nil {
		return err
	}
	defer khW.Close()
	if ref.set != w.set {
		// The next key holder's keys are not those of the worker's
		// certificates: the worker can only go.
		return errors.New("its certificates were replaced by a reload")
	}
	if err := w.ch.Send(&protocol.KeyChannel{}, khW); err != nil {
		return err
	}
	w.khID, w.khGen = ref.id, ref.gen
	return nil
}

// give hands w the session and waits, at most readyWait, until w says it
// holds the session's descriptors. An error means w has not taken it
// (nothing of the session has been touched): w is dead or broken, and
// the session may go to another worker.
func (w *pooledWorker) give(seq uint32, files []*os.File) error {
	if err := w.ch.Send(&protocol.Session{Seq: seq}, files...); err != nil {
		return err
	}
	w.ch.SetReadDeadline(time.Now().Add(readyWait))
	defer w.ch.SetReadDeadline(time.Time{})
	m, _, err := w.ch.Recv()
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("worker %d did not take the session: %w", w.proc.Pid(), err)
	case err != nil:
		return &brokeProtocol{err.Error()}
	}
	if t, ok := m.(*protocol.SessionTaken); !ok || t.Seq != seq {
		return &brokeProtocol{fmt.Sprintf("message type %d before it took session %d", m.Type(), seq)}
	}
	return nil
}

// brokeProtocol is a worker's message out of turn, as opposed to its
// death.
type brokeProtocol struct{ what string }

func (b *brokeProtocol) Error() string { return b.what }

func (p *workerPool) refillLater() { go p.refill() }

// refill starts workers until target are idle or starting.
func (p *workerPool) refill() {
	for {
		p.mu.Lock()
		if p.stopped || len(p.idle)+p.starting >= p.target {
			p.mu.Unlock()
			return
		}
		p.starting++
		p.mu.Unlock()
		w, err := p.start()
		if !p.add(w, err) {
			return
		}
	}
}

// add files a worker started by refill; false stops refilling.
func (p *workerPool) add(w *pooledWorker, err error) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.starting--
	if err != nil {
		if !p.warned {
			p.srv.log.Warning("unable to start a TLS worker ahead of time: %v", err)
			p.warned = true
		}
		return false
	}
	p.warned = false
	if p.stopped {
		w.retire()
		return false
	}
	p.idle = append(p.idle, w)
	return true
}

// keep files a ready worker as idle.
func (p *workerPool) keep(w *pooledWorker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.idle = append(p.idle, w)
}

// start execs a worker with its channels to the supervisor and to the
// key holder, configures it and waits until it is confined.
func (p *workerPool) start() (*pooledWorker, error) {
	s := p.srv
	ours, theirs, err := protocol.Pair("supervisor")
	if err != nil {
		return nil, err
	}
	khW, ref, err := s.kh.newChannel()
	var proc Process
	if err == nil {
		proc, err = s.spawn.Start(&ProcSpec{Path: s.exe, Args: []string{protocol.WorkerArgv0}, Env: workerEnv,
			Extra: []*os.File{theirs, khW, s.tls.rootDir}, Sys: s.tls.startAttr(), Bare: true, Said: s.log.Child("worker")})
		khW.Close()
	}
	theirs.Close()
	if err != nil {
		ours.Close()
		return nil, err
	}
	w := &pooledWorker{proc: proc, khID: ref.id, khGen: ref.gen, set: ref.set, gone: make(chan struct{})}
	p.track(w)
	go p.reap(w)
	if w.ch, err = protocol.NewChannel(ours, protocol.WorkerReports); err == nil {
		err = w.configure(s.workerConfig(ref.set)) // the certificates of the key holder it is attached to
	}
	if err != nil {
		w.kill()
		return nil, err
	}
	p.told.Do(func() { s.log.Info("worker sandbox: %s", s.tls.sandbox(w.layers)) })
	return w, nil
}

func (w *pooledWorker) configure(cfg *protocol.WorkerConfig) error {
	if err := w.ch.Send(cfg); err != nil {
		return err
	}
	w.ch.SetReadDeadline(time.Now().Add(readyWait))
	defer w.ch.SetReadDeadline(time.Time{})
	m, _, err := w.ch.Recv()
	if err != nil {
		return fmt.Errorf("worker %d did not get ready: %w", w.proc.Pid(), err)
	}
	switch m := m.(type) {
	case *protocol.WorkerReady:
		if !m.Seccomp { // a worker that got no filter refuses to start: this one lies or is broken
			return fmt.Errorf("worker %d is ready without its seccomp filter", w.proc.Pid())
		}
		w.layers = m
		return nil
	case *protocol.SessionFailed:
		return errors.New(m.Reason)
	}
	return fmt.Errorf("worker %d sent message type %d before it was ready", w.proc.Pid(), m.Type())
}

func (p *workerPool) track(w *pooledWorker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.all == nil {
		p.all = map[*pooledWorker]struct{}{}
	}
	p.all[w] = struct{}{}
}

func (p *workerPool) reap(w *pooledWorker) {
	w.state = w.proc.Wait()
	close(w.gone)
	p.mu.Lock()
	delete(p.all, w)
	p.mu.Unlock()
}

// fate says how a worker that left a session without a report ended,
// waiting briefly for it to be reaped.
func (w *pooledWorker) fate() string {
	select {
	case <-w.gone:
		return describe(w.state)
	case <-time.After(time.Second):
		return "still running; killed"
	}
}

func (w *pooledWorker) alive() bool { return !isClosed(w.gone) }

// isClosed says whether ch is closed, without waiting.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// retireGrace is how long a retired worker has to exit by itself.
const retireGrace = 5 * time.Second

// retire lets a worker go: with its channel closed it exits by itself,
// and one that does not (a compromised worker holding its connection
// after the session was counted as over) is killed after retireGrace.
func (w *pooledWorker) retire() {
	if w.ch != nil {
		w.ch.Close()
	}
	go w.killLater()
}

func (w *pooledWorker) killLater() {
	t := time.NewTimer(retireGrace)
	defer t.Stop()
	select {
	case <-w.gone:
	case <-t.C:
		w.proc.Signal(os.Kill)
	}
}

// kill ends a worker that broke the protocol or could not start.
func (w *pooledWorker) kill() {
	w.proc.Signal(os.Kill)
	if w.ch != nil {
		w.ch.Close()
	}
}

// release takes a worker back after a session: it waits for the next
// one if it may serve more and the session went well; else it goes. A
// returning worker is kept even beyond the pool's target (there are at
// most -c of them) and is handed out first, before fresh ones.
//
// A kept worker is first granted its next session's signature: the grant
// reaches the key holder before the worker can be given that session.
func (p *workerPool) release(w *pooledWorker, ok bool) {
	w.served++
	if ok && w.served < p.sessions && w.alive() && p.srv.kh.grant(w.khID, w.khGen) == nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		if !p.stopped {
			p.idle = append(p.idle, w)
			return
		}
	}
	w.retire()
}

// retireStale retires the idle workers attached to a key holder that is
// no longer the running one: after a reload they hold the old
// certificates.
func (p *workerPool) retireStale() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	kept, n := p.idle[:0], 0
	for _, w := range p.idle {
		if p.srv.kh.current(w.khGen) {
			kept = append(kept, w)
			continue
		}
		w.retire()
		n++
	}
	clear(p.idle[len(kept):])
	p.idle = kept
	return n
}

// stop retires the idle workers, starts no more, and waits until every
// worker is reaped (each is killed after retireGrace at most).
func (p *workerPool) stop() {
	p.mu.Lock()
	p.stopped = true
	for _, w := range p.idle {
		w.retire()
	}
	p.idle = nil
	p.mu.Unlock()
	for {
		all, starting := p.remaining()
		if len(all) == 0 && starting == 0 {
			return
		}
		for _, w := range all {
			reapWithin(w.proc, w.gone, retireGrace)
		}
		if len(all) == 0 {
			time.Sleep(10 * time.Millisecond) // a worker being started will be retired by add
		}
	}
}

func (p *workerPool) remaining() ([]*pooledWorker, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var all []*pooledWorker
	for w := range p.all {
		all = append(all, w)
	}
	return all, p.starting
}
