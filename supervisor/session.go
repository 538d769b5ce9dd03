package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ucspi-tls/sslserver/env"
	"github.com/ucspi-tls/sslserver/protocol"
)

// termGrace is how long a program has after SIGTERM before SIGKILL.
const termGrace = 10 * time.Second

// session is one connection: a TLS worker and a program, both children
// of the supervisor, and the bookkeeping between them.
type session struct {
	srv  *Server
	conn *net.TCPConn
	ep   env.Endpoints
	f    sessionFiles
	sup  *protocol.Channel

	ruleEnv   []env.Var     // from -x or -y
	reading   chan struct{} // closed when readWorker stops; nil if it never ran
	handshook bool          // the worker reported its handshake (only once)

	mu      sync.Mutex
	worker  Process
	program Process
	failed  *protocol.SessionFailed // what the worker reported
	killed  bool
}

// sessionFiles are the descriptors made for one session. The worker gets
// (see protocol.WorkerFd*):
//
//	3 supW  4 keyW  5 conn  6 ctlW  7 inW  8 outR
//
// and the program (see protocol.ProgramFd*), under -n:
//
//	0 conn  1 conn  3 ctlP  4 inR  5 outW
//
// and under -N:
//
//	0 inR   1 outW  3 ctlP  4 inR  5 outW
type sessionFiles struct {
	supW, supS *os.File // supervisor channel: worker end, our end
	keyW, keyK *os.File // key channel: worker end, key holder end
	ctlW, ctlP *os.File // $SSLCTLFD: worker end, program end
	inR, inW   *os.File // client -> program plaintext
	outR, outW *os.File // program -> client plaintext
	conn       *os.File
}

func (f *sessionFiles) open(c *net.TCPConn) error {
	var err error
	steps := []func() error{
		func() error { f.supW, f.supS, err = protocol.Pair("supervisor"); return err },
		func() error { f.keyW, f.keyK, err = protocol.Pair("keyholder"); return err },
		func() error { f.ctlW, f.ctlP, err = protocol.StreamPair("ctl"); return err },
		func() error { f.inR, f.inW, err = os.Pipe(); return err },
		func() error { f.outR, f.outW, err = os.Pipe(); return err },
		func() error { f.conn, err = c.File(); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			f.closeAll()
			return err
		}
	}
	return nil
}

func (f *sessionFiles) closeAll() {
	closeFiles([]*os.File{f.supW, f.supS, f.keyW, f.keyK, f.ctlW, f.ctlP, f.inR, f.inW, f.outR, f.outW, f.conn})
}

func (f *sessionFiles) worker() []*os.File {
	return []*os.File{f.supW, f.keyW, f.conn, f.ctlW, f.inW, f.outR}
}

// program returns stdin, stdout and the extra files of the program.
func (f *sessionFiles) program(delayed bool) (in, out *os.File, extra []*os.File) {
	extra = []*os.File{f.ctlP, f.inR, f.outW}
	if delayed {
		return f.conn, f.conn, extra
	}
	return f.inR, f.outW, extra
}

func (ss *session) run() {
	ss.ep = endpoints(ss.conn)
	ss.setNoDelay()
	if !ss.admit() {
		ss.conn.Close()
		return
	}
	defer ss.srv.releaseIP(ss.ep.RemoteIP)
	ss.writeBanner()
	if err := ss.f.open(ss.conn); err != nil {
		ss.srv.log.Warning("dropping connection from %s, %v", ss.ep.RemoteIP, err)
		ss.conn.Close()
		return
	}
	ss.conn.Close() // the worker and the program hold their own copies
	if err := ss.startWorker(); err != nil {
		ss.srv.log.Warning("dropping connection from %s, unable to start TLS worker: %v", ss.ep.RemoteIP, err)
		ss.f.closeAll()
		ss.abandonWorker()
		return
	}
	ss.srv.log.Pid(ss.worker.Pid(), ss.ep.RemoteIP.String())
	ss.finish(ss.startProgram())
}

// admit applies -y, looks up names and IDENT, applies -x and the
// per-IP limit; false drops the client. A -y deny needs no lookup.
func (ss *session) admit() bool {
	v, decided, err := ss.srv.checkIPRules(ss.ep)
	if err == nil && !(decided && v.deny) {
		ss.srv.identify(context.Background(), &ss.ep)
		if !decided {
			v, err = ss.srv.checkRules(ss.ep)
		}
	}
	if err != nil {
		ss.srv.log.Warning("dropping connection from %s, unable to read rules: %v", ss.ep.RemoteIP, err)
		return false
	}
	if v.deny {
		ss.srv.log.Deny(0, ss.localInfo(), ss.remoteInfo())
		return false
	}
	ss.ruleEnv = v.env
	if limit := ss.srv.perIP.limitFor(v.env); !ss.srv.admitIP(ss.ep.RemoteIP, limit) {
		ss.srv.log.Warning("dropping connection from %s, per-IP limit of %d reached", ss.ep.RemoteIP, limit)
		return false
	}
	return true
}

// writeBanner sends -B in plaintext under -n, before anything else; under
// -N the worker sends it over TLS.
func (ss *session) writeBanner() {
	o := ss.srv.opt
	if !o.Delayed || o.Banner == "" {
		return
	}
	ss.conn.SetWriteDeadline(time.Now().Add(o.Handshake))
	ss.conn.Write([]byte(o.Banner))
	ss.conn.SetWriteDeadline(time.Time{})
}

// abandonWorker kills and reaps a worker whose session could not start.
func (ss *session) abandonWorker() {
	if ss.sup != nil {
		ss.sup.Close()
	}
	if ss.worker != nil {
		ss.worker.Signal(syscall.SIGKILL)
		ss.worker.Wait()
	}
}

func (ss *session) setNoDelay() {
	ss.conn.SetNoDelay(ss.srv.opt.NoDelay)
}

func endpoints(c *net.TCPConn) env.Endpoints {
	l := c.LocalAddr().(*net.TCPAddr).AddrPort()
	r := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	return env.Endpoints{LocalIP: l.Addr().Unmap(), LocalPort: l.Port(), RemoteIP: r.Addr().Unmap(), RemotePort: r.Port()}
}

// startWorker execs the TLS worker, hands its key channel to the key
// holder and sends its configuration.
func (ss *session) startWorker() error {
	s := ss.srv
	p, err := s.spawn.Start(&ProcSpec{Path: s.exe, Args: []string{protocol.WorkerArgv0}, Env: confinedEnv, Extra: ss.f.worker()})
	closeFiles([]*os.File{ss.f.supW, ss.f.keyW, ss.f.ctlW, ss.f.inW, ss.f.outR})
	ss.f.supW, ss.f.keyW, ss.f.ctlW, ss.f.inW, ss.f.outR = nil, nil, nil, nil, nil
	if err != nil {
		return err
	}
	ss.worker = p
	if ss.sup, err = protocol.NewChannel(ss.f.supS); err != nil {
		return err
	}
	ss.f.supS = nil
	err = s.kh.attach(ss.f.keyK, s.keyWait())
	ss.f.keyK.Close()
	ss.f.keyK = nil
	if err != nil {
		return err
	}
	return ss.sup.Send(s.workerConfig())
}

// workerConfig is what every worker is told; setup checks once that it
// passes the worker's own decoder, so no session fails on it.
func (s *Server) workerConfig() *protocol.WorkerConfig {
	o, t := s.opt, s.tls
	c := &protocol.WorkerConfig{
		UID: t.uid, GID: t.gid, Root: t.root, Delayed: o.Delayed, SSLEnv: o.SSLEnv,
		HandshakeMsec: uint32(o.Handshake / time.Millisecond), IdleMsec: uint32(o.Idle / time.Millisecond),
		Certs: t.certs, CipherSuites: t.suites,
	}
	if !o.Delayed {
		c.Banner = []byte(o.Banner)
	}
	return c
}

// startProgram writes a -n banner in plaintext, waits for the handshake
// first when the program wants the SSL_* variables (-N -s), and execs
// the program. It returns nil when there is no program to run.
func (ss *session) startProgram() Process {
	o := ss.srv.opt
	defer ss.f.closeAll()
	var tlsVars []env.Var
	if !o.Delayed && o.SSLEnv {
		vars, ok := ss.awaitHandshake()
		if !ok {
			return nil
		}
		tlsVars = vars
	}
	ss.reading = make(chan struct{})
	go ss.readWorker()
	return ss.exec(tlsVars)
}

func (ss *session) exec(tlsVars []env.Var) Process {
	o, s := ss.srv.opt, ss.srv
	in, out, extra := ss.f.program(o.Delayed)
	environ := env.Program(s.environ, ss.ep, env.Options{TCPVars: o.TCPVars}, tlsVars, ss.ruleEnv)
	environ = env.Set(environ, fdVars()...) // the fd map has the last word
	p, err := s.spawn.Start(&ProcSpec{Path: lookPath(o.Program[0]), Args: o.Program, Env: environ,
		Stdin: in, Stdout: out, Extra: extra, Cred: programCred(o)})
	if err != nil {
		s.log.Warning("unable to run %s: %v", o.Program[0], err)
		return nil
	}
	s.log.OK(ss.worker.Pid(), ss.localInfo(), ss.remoteInfo())
	return p
}

func fdVars() []env.Var {
	return []env.Var{
		{Name: "SSLCTLFD", Value: strconv.Itoa(protocol.ProgramFdCtl)},
		{Name: "SSLREADFD", Value: strconv.Itoa(protocol.ProgramFdRead)},
		{Name: "SSLWRITEFD", Value: strconv.Itoa(protocol.ProgramFdWrite)},
	}
}

func programCred(o *Options) *syscall.Credential {
	if o.UID == nil && o.GID == nil {
		return nil
	}
	c := &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
	if o.GID != nil {
		c.Gid = *o.GID
		c.Groups = []uint32{*o.GID}
	}
	if o.UID != nil {
		c.Uid = *o.UID
		if o.GID == nil {
			c.Groups = []uint32{c.Gid}
		}
	}
	return c
}

// localInfo and remoteInfo are the "ok" line's host:ip:port and
// host:ip:info:port.
func (ss *session) localInfo() string {
	return fmt.Sprintf("%s:%s:%d", ss.ep.LocalHost, ss.ep.LocalIP, ss.ep.LocalPort)
}

func (ss *session) remoteInfo() string {
	return fmt.Sprintf("%s:%s:%s:%d", ss.ep.RemoteHost, ss.ep.RemoteIP, ss.ep.RemoteInfo, ss.ep.RemotePort)
}

// awaitHandshake waits for the worker's first report (bounded by the
// handshake deadline and a margin).
func (ss *session) awaitHandshake() ([]env.Var, bool) {
	ss.sup.SetReadDeadline(time.Now().Add(ss.srv.opt.Handshake + 5*time.Second))
	defer ss.sup.SetReadDeadline(time.Time{})
	m, _, err := ss.sup.Recv()
	if err != nil {
		return nil, false
	}
	if !ss.handle(m) {
		return nil, false
	}
	done, ok := m.(*protocol.HandshakeDone)
	if !ok {
		return nil, false
	}
	vars, err := protocol.DecodeBlock(done.Block)
	if err != nil {
		return nil, false
	}
	return sslVars(vars), true
}

// sslVars keeps only the SSL_* names of a worker's block: a worker is
// untrusted, and must not be able to set RELAYCLIENT, LD_PRELOAD or
// TCPREMOTEIP in the program's environment.
func sslVars(vars []protocol.Var) []env.Var {
	var out []env.Var
	for _, v := range vars {
		if strings.HasPrefix(v.Name, "SSL_") {
			out = append(out, env.Var{Name: v.Name, Value: v.Value})
		}
	}
	return out
}

// readWorker logs what the worker reports until it hangs up.
func (ss *session) readWorker() {
	defer close(ss.reading)
	for {
		m, _, err := ss.sup.Recv()
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			ss.outOfTurn(err.Error())
		}
		if err != nil || !ss.handle(m) {
			return
		}
	}
}

// outOfTurn ends a session whose worker broke the protocol.
func (ss *session) outOfTurn(what string) {
	ss.srv.log.Warning("TLS worker %d broke the protocol: %s", ss.worker.Pid(), what)
	ss.worker.Signal(syscall.SIGKILL)
}

// handle logs one worker report; false means stop listening.
func (ss *session) handle(m protocol.Message) bool {
	switch m := m.(type) {
	case *protocol.HandshakeDone:
		if ss.handshook {
			ss.outOfTurn("a second handshake report")
			return false
		}
		ss.handshook = true
		ss.srv.log.TLS(ss.worker.Pid(), m.Protocol, m.Cipher)
		return true
	case *protocol.SessionFailed:
		ss.mu.Lock()
		ss.failed = m
		ss.mu.Unlock()
		ss.srv.log.Warning("dropping connection from %s, %s", ss.ep.RemoteIP, m.Reason)
		return false
	}
	ss.outOfTurn(fmt.Sprintf("message type %d out of turn", m.Type()))
	return false
}

// finish reaps the worker and the program and logs the session's end.
// When the program exits first, the worker is told, so it can flush and
// stop; when the worker fails, the program is ended.
func (ss *session) finish(prog Process) {
	ss.mu.Lock()
	ss.program = prog
	killed := ss.killed
	ss.mu.Unlock()
	if killed {
		ss.kill()
	}
	progDone, progGone := make(chan ExitState, 1), make(chan struct{})
	if prog != nil {
		go reap(prog, progDone, progGone)
	} else {
		ss.sup.Send(&protocol.ProgramExited{})
	}
	workerDone := make(chan ExitState, 1)
	go reap(ss.worker, workerDone, nil)
	ws, ps := ss.wait(prog, progDone, progGone, workerDone)
	if ss.reading != nil {
		<-ss.reading // the worker is gone, so its last report is already queued
	}
	ss.sup.Close()
	ss.logEnd(ws, ps, prog != nil)
}

// reap waits for p, sends its state on done and closes gone (if any).
func reap(p Process, done chan<- ExitState, gone chan struct{}) {
	done <- p.Wait()
	if gone != nil {
		close(gone)
	}
}

func (ss *session) wait(prog Process, progDone chan ExitState, progGone chan struct{}, workerDone chan ExitState) (ws, ps ExitState) {
	gotWorker, gotProg := false, prog == nil
	for !gotWorker || !gotProg {
		select {
		case ps = <-progDone:
			gotProg = true
			ss.sup.Send(&protocol.ProgramExited{})
		case ws = <-workerDone:
			gotWorker = true
			if !gotProg && (ws.Code != 0 || ws.Signal != 0) {
				go terminate(prog, progGone)
			}
		}
	}
	return ws, ps
}

// terminate sends SIGTERM, and SIGKILL if the program is still there
// after termGrace.
func terminate(p Process, gone <-chan struct{}) {
	p.Signal(syscall.SIGTERM)
	t := time.NewTimer(termGrace)
	defer t.Stop()
	select {
	case <-t.C:
		p.Signal(syscall.SIGKILL)
	case <-gone:
	}
}

// logEnd: the worker's failure code if it failed, else the program's
// status; a worker that died without saying why is a temporary failure.
func (ss *session) logEnd(ws, ps ExitState, ran bool) {
	pid := ss.worker.Pid()
	ss.mu.Lock()
	failed := ss.failed
	ss.mu.Unlock()
	switch {
	case ws.Signal != 0 || ws.Code != 0 && failed == nil:
		ss.srv.log.Warning("TLS worker %d for %s ended with %s", pid, ss.ep.RemoteIP, describe(ws))
		ss.srv.log.End(pid, "status", protocol.ExitTemp)
	case ws.Code != 0:
		ss.srv.log.End(pid, "status", ws.Code)
	case !ran:
		ss.srv.log.End(pid, "status", protocol.ExitTemp)
	case ps.Signal != 0:
		ss.srv.log.End(pid, "signal", ps.Signal)
	default:
		ss.srv.log.End(pid, "status", ps.Code)
	}
}

// kill ends a session at shutdown: the program gets SIGTERM, the worker
// SIGKILL.
func (ss *session) kill() {
	ss.mu.Lock()
	ss.killed = true
	prog, worker := ss.program, ss.worker
	ss.mu.Unlock()
	if prog != nil {
		prog.Signal(syscall.SIGTERM)
		time.AfterFunc(termGrace, func() { prog.Signal(syscall.SIGKILL) })
	}
	if worker != nil {
		worker.Signal(syscall.SIGKILL)
	}
}
