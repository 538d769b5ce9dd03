package supervisor

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/protocol"
)

// The supervisor's bookkeeping is tested through its Spawner seam: a
// fake spawner whose "processes" are goroutines working on real
// descriptors. Start duplicates every file it is handed, as fork does,
// so the supervisor is free to close its own copies; a fake process's
// descriptors are closed when it "exits", before Wait returns, as the
// kernel does.

// behaviour is what a fake process does; its result is how it exits.
type behaviour func(p *fakeProc) ExitState

// fakeProc is one fake child.
type fakeProc struct {
	pid    int
	argv0  string
	ch     *protocol.Channel // Extra[0] of a worker, key holder or handler
	spec   ProcSpec          // with the spawner's own copies of the files
	sigs   chan os.Signal
	exit   chan ExitState // the test tells a program to exit
	killed chan struct{}  // closed on SIGKILL
	done   chan struct{}  // closed once exited
	state  ExitState

	mu      sync.Mutex
	closers []io.Closer
	signals []os.Signal
	waited  bool
	killOne sync.Once

	config chan *protocol.WorkerConfig // filled in by a fake worker
}

func (p *fakeProc) Pid() int { return p.pid }

func (p *fakeProc) Wait() ExitState {
	<-p.done
	p.mu.Lock()
	p.waited = true
	p.mu.Unlock()
	return p.state
}

func (p *fakeProc) Signal(s os.Signal) error {
	select {
	case <-p.done:
		return os.ErrProcessDone
	default:
	}
	p.mu.Lock()
	p.signals = append(p.signals, s)
	p.mu.Unlock()
	if s == syscall.SIGKILL {
		p.killOne.Do(func() { close(p.killed) })
		return nil
	}
	select {
	case p.sigs <- s:
	default:
	}
	return nil
}

func (p *fakeProc) gotSignals() []os.Signal {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]os.Signal(nil), p.signals...)
}

func (p *fakeProc) wasWaited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waited
}

// own registers something the process closes when it exits.
func (p *fakeProc) own(c io.Closer) {
	p.mu.Lock()
	p.closers = append(p.closers, c)
	p.mu.Unlock()
}

func (p *fakeProc) closeAll() {
	p.mu.Lock()
	cs := p.closers
	p.closers = nil
	p.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// openChannel makes the channel at Extra[0] of a worker, the key holder
// or an sslhandle handler. It is done inside Start, so that a SIGKILL
// (which closes everything) never races with it.
func (p *fakeProc) openChannel() error {
	var accept protocol.Accepts
	switch p.argv0 {
	case protocol.WorkerArgv0:
		accept = protocol.SupervisorOrders
	case protocol.KeyHolderArgv0:
		accept = protocol.KeyHolderOrders
	case protocol.HandlerArgv0:
		accept = protocol.HandlerOrders
	default:
		return nil
	}
	ch, err := protocol.NewChannel(p.spec.Extra[0], accept)
	if err != nil {
		return err
	}
	p.ch = ch
	p.own(ch)
	return nil
}

// channel is the fake's channel to the supervisor.
func (p *fakeProc) channel() (*protocol.Channel, error) {
	if p.ch == nil {
		return nil, errors.New("no channel")
	}
	return p.ch, nil
}

// runFake runs b as process p: SIGKILL ends it at once, whatever b is
// doing; either way its descriptors are closed before it counts as
// exited.
func runFake(p *fakeProc, b behaviour) {
	result := make(chan ExitState, 1)
	go runBehaviour(p, b, result)
	var st ExitState
	select {
	case st = <-result:
	case <-p.killed:
		st = ExitState{Signal: int(syscall.SIGKILL)}
	}
	p.closeAll()
	p.state = st
	close(p.done)
}

func runBehaviour(p *fakeProc, b behaviour, result chan<- ExitState) {
	result <- b(p)
}

// fakeSpawner starts fake processes, choosing the behaviour by argv[0].
type fakeSpawner struct {
	mu        sync.Mutex
	pid       int
	worker    behaviour
	program   behaviour
	keyHolder behaviour
	refuse    func(*ProcSpec) error // nil: start everything

	workers, programs, keyHolders chan *fakeProc
	sessions                      chan *fakeSession
	all                           []*fakeProc
}

func newFakeSpawner() *fakeSpawner {
	return &fakeSpawner{pid: 4000, workers: make(chan *fakeProc, 100),
		programs: make(chan *fakeProc, 100), keyHolders: make(chan *fakeProc, 100),
		sessions: make(chan *fakeSession, 100)}
}

// spawnerWith returns a spawner whose workers play w and whose programs
// do program.
func spawnerWith(w workerScript, program behaviour) *fakeSpawner {
	sp := newFakeSpawner()
	sp.worker, sp.program = w.runner(sp.sessions), program
	return sp
}

// useWorker makes workers started from now on play w.
func (s *fakeSpawner) useWorker(w workerScript) {
	s.set(func(s *fakeSpawner) { s.worker = w.runner(s.sessions) })
}

func (s *fakeSpawner) Start(spec *ProcSpec) (Process, error) {
	s.mu.Lock()
	b, started, refuse := s.pick(spec.Args[0])
	if refuse != nil {
		if err := refuse(spec); err != nil {
			s.mu.Unlock()
			return nil, err
		}
	}
	s.pid++
	p := newFakeProc(s.pid, spec.Args[0])
	s.all = append(s.all, p)
	s.mu.Unlock()
	if err := p.copySpec(spec); err != nil {
		p.closeAll()
		return nil, err
	}
	if err := p.openChannel(); err != nil {
		p.closeAll()
		return nil, err
	}
	go runFake(p, b)
	started <- p
	return p, nil
}

func (s *fakeSpawner) pick(argv0 string) (behaviour, chan *fakeProc, func(*ProcSpec) error) {
	switch argv0 {
	case protocol.WorkerArgv0:
		return s.worker, s.workers, s.refuse
	case protocol.KeyHolderArgv0:
		return s.keyHolder, s.keyHolders, s.refuse
	}
	return s.program, s.programs, s.refuse
}

// signalAll signals every fake process started so far.
func (s *fakeSpawner) signalAll(sig os.Signal) {
	s.mu.Lock()
	all := append([]*fakeProc(nil), s.all...)
	s.mu.Unlock()
	for _, p := range all {
		if p.argv0 != protocol.KeyHolderArgv0 {
			p.Signal(sig)
		}
	}
}

func (s *fakeSpawner) set(f func(s *fakeSpawner)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func newFakeProc(pid int, argv0 string) *fakeProc {
	return &fakeProc{pid: pid, argv0: argv0, sigs: make(chan os.Signal, 16), exit: make(chan ExitState, 1),
		killed: make(chan struct{}), done: make(chan struct{}),
		config: make(chan *protocol.WorkerConfig, 1)}
}

// copySpec keeps the spec with duplicates of its files, as the child
// of a fork would have them.
func (p *fakeProc) copySpec(spec *ProcSpec) error {
	p.spec = *spec
	p.spec.Extra = make([]*os.File, len(spec.Extra))
	var err error
	for i, f := range spec.Extra {
		if p.spec.Extra[i], err = p.dup(f); err != nil {
			return err
		}
	}
	if p.spec.Stdin, err = p.dup(spec.Stdin); err != nil {
		return err
	}
	p.spec.Stdout, err = p.dup(spec.Stdout)
	return err
}

func (p *fakeProc) dup(f *os.File) (*os.File, error) {
	if f == nil {
		return nil, nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("dup %s: %w", f.Name(), err)
	}
	nfd, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("dup %s: %w", f.Name(), derr)
	}
	d := os.NewFile(uintptr(nfd), f.Name())
	p.own(d)
	return d, nil
}

// Behaviours.

// programUntilTold runs until the test sends it an exit state, or a
// signal ends it.
func programUntilTold(p *fakeProc) ExitState {
	select {
	case st := <-p.exit:
		return st
	case s := <-p.sigs:
		return ExitState{Signal: int(s.(syscall.Signal))}
	}
}

// programExits returns a program that exits at once with st.
func programExits(st ExitState) behaviour {
	return func(*fakeProc) ExitState { return st }
}

// workerScript is a fake TLS worker, speaking the pool protocol: it
// reads its configuration, says WorkerReady (or fails, with startFail),
// then serves each Session it gets with the session script, until the
// supervisor hangs up. Like the real worker, it exits after a session
// that ended with a nonzero code.
type workerScript struct {
	startFail  string // send SessionFailed with this reason instead of WorkerReady
	unfiltered bool   // say WorkerReady without the seccomp filter
	// notReady, when it returns true, has played something else instead
	// of WorkerReady, and the worker exits.
	notReady func(p *fakeProc, ch *protocol.Channel) bool
	session  sessionScript
}

// sessionScript is what a fake worker does in one session.
type sessionScript struct {
	do          func(fs *fakeSession) // first, with the session's descriptors
	afterExited bool                  // wait for ProgramExited before the reports
	send        []protocol.Message    // the reports
	waitExited  bool                  // wait for ProgramExited after the reports
	judged      bool                  // -n -z: wait for ClientVerdict after the reports; a refusal ends with 110
	die         *ExitState            // exit like this instead of ending the session
	endSeq      uint32                // a wrong sequence number in SessionEnd; 0: the right one
}

// fakeSession is one session as a fake worker saw it.
type fakeSession struct {
	proc    *fakeProc
	seq     uint32
	files   []*os.File // in the order of protocol.SessionFd*
	exited  chan struct{}
	ended   chan struct{}           // closed after SessionEnd was sent (or the worker died)
	verdict *protocol.ClientVerdict // what a judged session was told; nil: ProgramExited came first
}

func handshakeDone() *protocol.HandshakeDone {
	return &protocol.HandshakeDone{Protocol: "TLSv1.3", Cipher: "TLS_AES_128_GCM_SHA256", Block: []byte{0, 0}}
}

// goodWorker completes each handshake and ends the session once the
// program has exited.
var goodWorker = workerScript{session: sessionScript{send: []protocol.Message{handshakeDone()}, waitExited: true}}

// failingWorker reports a failure with code and ends the session.
func failingWorker(code uint8, reason string) workerScript {
	return workerScript{session: sessionScript{send: []protocol.Message{&protocol.SessionFailed{Code: code, Reason: reason}}}}
}

// gated makes w's sessions wait, before their reports, until the
// returned channel is closed: a test that must see the program ended by
// the worker's failure closes it once the program runs, since a worker
// that failed before would end the session with no program started.
func gated(w workerScript) (workerScript, chan struct{}) {
	gate := make(chan struct{})
	w.session.do = func(*fakeSession) { <-gate }
	return w, gate
}

// runner returns the behaviour that plays w, reporting sessions on
// sessions.
func (w workerScript) runner(sessions chan<- *fakeSession) behaviour {
	return func(p *fakeProc) ExitState { return w.run(p, sessions) }
}

func (w workerScript) run(p *fakeProc, sessions chan<- *fakeSession) ExitState {
	ch, err := p.channel()
	if err != nil || !recvConfig(p, ch) {
		return ExitState{Code: 111}
	}
	if w.startFail != "" {
		ch.Send(&protocol.SessionFailed{Code: 111, Reason: w.startFail})
		return ExitState{Code: 111}
	}
	if w.notReady != nil && w.notReady(p, ch) {
		return ExitState{Code: 111}
	}
	if ch.Send(&protocol.WorkerReady{Seccomp: !w.unfiltered}) != nil {
		return ExitState{Code: 111}
	}
	for {
		fs, ok := nextSession(p, ch)
		if !ok {
			return ExitState{} // retired
		}
		sessions <- fs
		if st, over := w.session.play(fs, ch); over {
			return st
		}
	}
}

// nextSession waits for a Session while idle; a ProgramExited of the
// session just ended may cross with it.
func nextSession(p *fakeProc, ch *protocol.Channel) (*fakeSession, bool) {
	for {
		m, files, err := ch.Recv()
		if err != nil {
			return nil, false
		}
		switch m := m.(type) {
		case *protocol.ProgramExited:
			continue
		case *protocol.Session:
			for _, f := range files {
				p.own(f)
			}
			if ch.Send(&protocol.SessionTaken{Seq: m.Seq}) != nil {
				return nil, false
			}
			return &fakeSession{proc: p, seq: m.Seq, files: files, exited: make(chan struct{}), ended: make(chan struct{})}, true
		}
		return nil, false
	}
}

// play runs one session; over says the worker exits, with st.
func (s sessionScript) play(fs *fakeSession, ch *protocol.Channel) (st ExitState, over bool) {
	defer close(fs.ended)
	defer closeFiles(fs.files)
	if s.do != nil {
		s.do(fs)
	}
	if s.afterExited && !fs.awaitExited(ch) {
		return ExitState{Code: 111}, true
	}
	code := uint8(0)
	for _, m := range s.send {
		if f, ok := m.(*protocol.SessionFailed); ok {
			code = f.Code
		}
		if ch.Send(m) != nil {
			return ExitState{Code: 111}, true
		}
	}
	refused := false
	if s.judged {
		if !fs.awaitVerdict(ch) {
			return ExitState{Code: 111}, true
		}
		if refused = fs.verdict != nil && !fs.verdict.OK; refused {
			code = protocol.ExitClientCert
		}
	}
	if s.waitExited && !refused && fs.exitPending() && !fs.awaitExited(ch) {
		return ExitState{Code: 111}, true
	}
	if s.die != nil {
		return *s.die, true
	}
	seq := fs.seq
	if s.endSeq != 0 {
		seq = s.endSeq
	}
	if ch.Send(&protocol.SessionEnd{Seq: seq, Code: code}) != nil {
		return ExitState{Code: 111}, true
	}
	return ExitState{Code: int(code)}, code != 0
}

// awaitExited reads until this session's ProgramExited (true) or the
// channel ends.
func (fs *fakeSession) awaitExited(ch *protocol.Channel) bool {
	for {
		m, _, err := ch.Recv()
		if err != nil {
			return false
		}
		if pe, ok := m.(*protocol.ProgramExited); ok && pe.Seq == fs.seq {
			close(fs.exited)
			return true
		}
	}
}

// awaitVerdict reads this session's ClientVerdict, or its
// ProgramExited, which ends the wait with no verdict, as in the real
// worker. False: the channel ended, or something else came.
func (fs *fakeSession) awaitVerdict(ch *protocol.Channel) bool {
	m, _, err := ch.Recv()
	if err != nil {
		return false
	}
	switch m := m.(type) {
	case *protocol.ClientVerdict:
		fs.verdict = m
		return m.Seq == fs.seq
	case *protocol.ProgramExited:
		close(fs.exited)
		return m.Seq == fs.seq
	}
	return false
}

// exitPending says the session still waits for ProgramExited: its
// verdict wait, if any, did not end with it.
func (fs *fakeSession) exitPending() bool {
	select {
	case <-fs.exited:
		return false
	default:
		return true
	}
}

func recvConfig(p *fakeProc, ch *protocol.Channel) bool {
	ch.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer ch.SetReadDeadline(time.Time{})
	m, _, err := ch.Recv()
	if err != nil {
		return false
	}
	cfg, ok := m.(*protocol.WorkerConfig)
	if ok {
		p.config <- cfg
	}
	return ok
}

// keyHolderRecord is what the fake key holders saw.
type keyHolderRecord struct {
	mu       sync.Mutex
	keys     *protocol.Keys
	keyData  []string
	workers  []*protocol.NewWorker
	attached map[int]int // NewWorkers by key holder pid
	grants   []*protocol.Grant
}

func (r *keyHolderRecord) workerCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.workers)
}

func (r *keyHolderRecord) worker(i int) *protocol.NewWorker {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.workers[i]
}

func (r *keyHolderRecord) attachedTo(pid int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attached[pid]
}

func (r *keyHolderRecord) grantCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.grants)
}

// fakeKeyHolder loads "keys" (it reads the files handed to it) and
// answers with public, then takes worker channels until it is told to
// stop by its channel closing.
func fakeKeyHolder(public [][]byte, rec *keyHolderRecord) behaviour {
	return func(p *fakeProc) ExitState {
		ch, err := p.channel()
		if err != nil {
			return ExitState{Code: 111}
		}
		if !loadFakeKeys(ch, rec) {
			return ExitState{Code: 111}
		}
		if ch.Send(&protocol.KeysLoaded{Public: public}) != nil {
			return ExitState{Code: 111}
		}
		takeWorkers(ch, rec, p.pid)
		return ExitState{}
	}
}

func loadFakeKeys(ch *protocol.Channel, rec *keyHolderRecord) bool {
	m, files, err := ch.Recv()
	if err != nil {
		return false
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.keys, _ = m.(*protocol.Keys)
	for _, f := range files {
		b, _ := io.ReadAll(f)
		rec.keyData = append(rec.keyData, string(b))
		f.Close()
	}
	return rec.keys != nil
}

func takeWorkers(ch *protocol.Channel, rec *keyHolderRecord, pid int) {
	for {
		m, files, err := ch.Recv()
		if err != nil {
			return
		}
		for _, f := range files {
			f.Close()
		}
		rec.mu.Lock()
		switch m := m.(type) {
		case *protocol.NewWorker:
			rec.workers = append(rec.workers, m)
			if rec.attached == nil {
				rec.attached = map[int]int{}
			}
			rec.attached[pid]++
		case *protocol.Grant:
			rec.grants = append(rec.grants, m)
		}
		rec.mu.Unlock()
	}
}

// harness is one Server on 127.0.0.1, port 0, with fake children.
type harness struct {
	t      *testing.T
	srv    *Server
	ln     *net.TCPListener
	log    *lockedBuffer
	sp     *fakeSpawner
	kh     *keyHolderRecord
	leaf   *x509.Certificate
	served chan struct{}
	once   sync.Once
}

const keyFileText = "stand-in key file: the fake key holder only reads it back"

// newServer builds a Server inside the package, without root and
// without exec. args are sslserver options, after -H -l 0 (no DNS);
// host, port and program are added. The worker pool keeps one worker
// ready, one session each, unless newServerEnv says otherwise.
func newServer(t *testing.T, sp *fakeSpawner, args ...string) *harness {
	t.Helper()
	return newServerEnv(t, sp, map[string]string{"SSL_PREFORK": "1"}, args...)
}

// newServerEnv is newServer with the pool's environment variables.
func newServerEnv(t *testing.T, sp *fakeSpawner, environ map[string]string, args ...string) *harness {
	t.Helper()
	args = append([]string{"-H", "-l", "0"}, args...)
	o, err := ParseArgs(append(args, "127.0.0.1", "0", "prog", "arg1"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, sp: sp, log: &lockedBuffer{}, kh: &keyHolderRecord{}, served: make(chan struct{})}
	h.srv = &Server{opt: o, log: NewLog(h.log, "sslserver", o.Verbosity, false), spawn: sp,
		exe: "/usr/sbin/sslserver-under-test", tls: h.tlsSetup(), environ: []string{"PATH=/usr/bin:/bin", "LANG=C"},
		sessions: map[*session]struct{}{}}
	h.srv.pool = &workerPool{srv: h.srv}
	get := func(k string) string { return environ[k] }
	if h.srv.pool.target, h.srv.pool.sessions, err = poolSettings(get, o.MaxConn); err != nil {
		t.Fatal(err)
	}
	h.srv.perIP.count = map[netip.Addr]int{}
	h.srv.slotFree = sync.NewCond(&h.srv.mu)
	h.srv.kh = &keyHolder{srv: h.srv, stop: make(chan struct{})}
	sp.set(func(s *fakeSpawner) {
		if s.keyHolder == nil {
			s.keyHolder = fakeKeyHolder([][]byte{h.leaf.RawSubjectPublicKeyInfo}, h.kh)
		}
	})
	return h
}

// start starts the key holder, binds and serves.
func (h *harness) start() *harness {
	h.t.Helper()
	if err := h.srv.kh.start(); err != nil {
		h.t.Fatalf("key holder: %v", err)
	}
	if err := h.srv.checkWorker(); err != nil {
		h.t.Fatalf("first worker: %v", err)
	}
	ln, err := Listen(h.srv.opt)
	if err != nil {
		h.t.Fatal(err)
	}
	h.ln = ln
	go serveAndSignal(h.srv, ln, h.served)
	h.t.Cleanup(h.stop)
	return h
}

func serveAndSignal(s *Server, ln *net.TCPListener, served chan<- struct{}) {
	s.serve(ln)
	close(served)
}

// stop closes the listener, ends every fake child still running and
// waits for serve to drain.
func (h *harness) stop() {
	h.once.Do(func() {
		h.ln.Close()
		h.sp.signalAll(syscall.SIGTERM)
		select {
		case <-h.served:
			return
		case <-time.After(3 * time.Second):
		}
		h.sp.signalAll(syscall.SIGKILL)
		select {
		case <-h.served:
		case <-time.After(20 * time.Second):
			h.t.Errorf("serve did not return after the listener closed; log:\n%s", h.log.String())
		}
	})
}

func (h *harness) tlsSetup() *tlsSetup {
	h.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		h.t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx.example.org"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		h.t.Fatal(err)
	}
	if h.leaf, err = x509.ParseCertificate(der); err != nil {
		h.t.Fatal(err)
	}
	dir := h.t.TempDir()
	keyPath := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(keyPath, []byte(keyFileText), 0o600); err != nil {
		h.t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	os.Mkdir(root, 0o555)
	set := &certSet{certs: []protocol.Cert{{Chain: [][]byte{der}}}, leaves: []*x509.Certificate{h.leaf},
		keyPaths: []string{keyPath}, keyVars: []string{"KEYFILE=" + keyPath}}
	return &tlsSetup{certSet: set, uid: 65534, gid: 65533, root: root}
}

// dial connects a client.
func (h *harness) dial() *net.TCPConn {
	h.t.Helper()
	c, err := net.DialTimeout("tcp", h.ln.Addr().String(), 5*time.Second)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

const waitLimit = 10 * time.Second

// next returns the next process started from ch.
func (h *harness) next(ch chan *fakeProc, what string) *fakeProc {
	h.t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(waitLimit):
		h.t.Fatalf("no %s started; log:\n%s", what, h.log.String())
	}
	return nil
}

func (h *harness) worker() *fakeProc { h.t.Helper(); return h.next(h.sp.workers, "TLS worker") }

// session returns the next session a fake worker was given.
func (h *harness) session() *fakeSession {
	h.t.Helper()
	select {
	case fs := <-h.sp.sessions:
		return fs
	case <-time.After(waitLimit):
		h.t.Fatalf("no session reached a worker; log:\n%s", h.log.String())
	}
	return nil
}
func (h *harness) program() *fakeProc { h.t.Helper(); return h.next(h.sp.programs, "program") }

// none checks that nothing starts from ch for a while.
func (h *harness) none(ch chan *fakeProc, what string, d time.Duration) {
	h.t.Helper()
	select {
	case p := <-ch:
		h.t.Fatalf("%s %d started; log:\n%s", what, p.pid, h.log.String())
	case <-time.After(d):
	}
}

// waitLine waits until the log has the line exactly.
func (h *harness) waitLine(line string) {
	h.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !h.hasLine(line) {
		if time.Now().After(deadline) {
			h.t.Fatalf("no log line %q; log:\n%s", line, h.log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) hasLine(line string) bool {
	for _, l := range h.lines() {
		if l == line {
			return true
		}
	}
	return false
}

func (h *harness) lines() []string {
	return strings.Split(strings.TrimSuffix(h.log.String(), "\n"), "\n")
}

// waitDone waits for a fake process to exit.
func waitDone(t *testing.T, p *fakeProc, what string) ExitState {
	t.Helper()
	select {
	case <-p.done:
		return p.state
	case <-time.After(waitLimit):
		t.Fatalf("%s %d did not exit", what, p.pid)
	}
	return ExitState{}
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func configOf(t *testing.T, w *fakeProc) *protocol.WorkerConfig {
	t.Helper()
	select {
	case c := <-w.config:
		return c
	case <-time.After(waitLimit):
		t.Fatalf("worker %d got no configuration", w.pid)
	}
	return nil
}

func envHas(env []string, kv string) bool {
	for _, e := range env {
		if e == kv {
			return true
		}
	}
	return false
}

func envNames(env []string, prefix string) []string {
	var out []string
	for _, e := range env {
		if strings.HasPrefix(e, prefix) {
			out = append(out, e)
		}
	}
	return out
}

var errRefused = errors.New("refused by the test")
