package supervisor

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ucspi-tls/sslserver/env"
	"github.com/ucspi-tls/sslserver/internal/proc"
	"github.com/ucspi-tls/sslserver/protocol"
)

// termGrace is how long a program has after SIGTERM before SIGKILL.
const termGrace = 10 * time.Second

// session is one connection: a TLS worker (from the pool) and a
// program (a child of the supervisor), and the bookkeeping between them.
type session struct {
	srv  *Server
	conn *net.TCPConn
	ep   env.Endpoints
	f    sessionFiles
	w    *pooledWorker
	seq  uint32

	ruleEnv []env.Var      // from -x or -y
	decided bool           // the rules' verdict came before any lookup
	hsVars  chan []env.Var // the SSL_* variables, once the handshake is done
	ended   chan struct{}  // closed when the worker ended the session, or died
	endCode int            // from SessionEnd; -1 when the worker died or broke the protocol

	mu        sync.Mutex
	program   Process
	failed    *protocol.SessionFailed // what the worker reported
	handshook bool                    // the worker reported its handshake (only once)
	killed    bool
	rejected  bool // -z: the client's certificate does not name the remote host
	judged    bool // -n -z: the ClientVerdict is sent
	exitSent  bool // ProgramExited is sent: no ClientVerdict may follow
}

// sessionFiles are the descriptors made for one session. The worker gets
// (with MsgSession, in the order of protocol.SessionFd*):
//
//	conn  ctlW  inW  outR
//
// and the program (see protocol.ProgramFd*), under -n:
//
//	0 conn  1 conn  3 ctlP  4 inR  5 outW
//
// and under -N:
//
//	0 inR   1 outW  3 ctlP  4 inR  5 outW
type sessionFiles struct {
	ctlW, ctlP *os.File // $SSLCTLFD: worker end, program end
	inR, inW   *os.File // client -> program plaintext
	outR, outW *os.File // program -> client plaintext
	conn       *os.File
}

func (f *sessionFiles) open(c *net.TCPConn) error {
	var err error
	steps := []func() error{
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
	closeFiles([]*os.File{f.ctlW, f.ctlP, f.inR, f.inW, f.outR, f.outW, f.conn})
}

func (f *sessionFiles) worker() []*os.File {
	return []*os.File{f.conn, f.ctlW, f.inW, f.outR}
}

// program returns stdin, stdout and the extra files of the program.
func (f *sessionFiles) program(delayed bool) (in, out *os.File, extra []*os.File) {
	extra = []*os.File{f.ctlP, f.inR, f.outW}
	if delayed {
		return f.conn, f.conn, extra
	}
	return f.inR, f.outW, extra
}

// run is one session's admission and life. What the address alone
// decides (-y, the per-IP limit) is decided before anything else; then
// a worker is handed the session at once, so under -N the handshake runs
// while the names are looked up; -x, when the verdict may depend on the
// names, is applied once they are known, and only then does the program
// start.
func (ss *session) run() {
	ss.ep = endpoints(ss.conn)
	ss.setNoDelay()
	if !ss.takeProxyHeader() {
		ss.conn.Close()
		return
	}
	if !ss.admitAddress() {
		ss.conn.Close()
		return
	}
	defer ss.srv.releaseIP(ss.ep.RemoteIP)
	if err := ss.f.open(ss.conn); err != nil {
		ss.srv.log.Warning("dropping connection from %s, %v", ss.ep.RemoteIP, err)
		ss.conn.Close()
		return
	}
	if err := ss.startWorker(); err != nil {
		ss.srv.log.Warning("dropping connection from %s, unable to start TLS worker: %v", ss.ep.RemoteIP, err)
		ss.f.closeAll()
		ss.conn.Close()
		return
	}
	ss.srv.log.Pid(ss.w.proc.Pid(), ss.ep.RemoteIP.String())
	if !ss.srv.opt.Delayed {
		ss.conn.Close() // the worker holds its own copy; -B is its job
	}
	if !ss.admitNamed() {
		ss.refuse()
		return
	}
	ss.writeBanner()
	ss.conn.Close() // the worker and the program hold their own copies
	if ss.workerFailed() {
		ss.f.closeAll()
		ss.finish(nil)
		return
	}
	ss.finish(ss.startProgram())
}

// admitAddress applies, before any lookup, what the address alone
// decides: -y; -x too when no lookup can change its verdict (no -h, no
// -r); and the per-IP limit, the server's or the MAXCONIP of the rule the
// address matches by itself. False drops the client: no worker has seen
// it.
func (ss *session) admitAddress() bool {
	s := ss.srv
	ss.ep.LocalHost = localHost(s.opt.LocalName, "")
	v, decided, err := s.checkIPRules(ss.ep)
	if err == nil && !decided {
		v, err = s.checkRules(ss.ep) // no host or info yet
		decided = !s.namesMatter()
	}
	if err != nil {
		s.log.Warning("dropping connection from %s, unable to read rules: %v", ss.ep.RemoteIP, err)
		return false
	}
	if decided && v.deny {
		s.log.Deny(0, ss.localInfo(), ss.remoteInfo())
		return false
	}
	if decided {
		ss.ruleEnv, ss.decided = v.env, true
	}
	if limit := s.perIP.limitFor(v.env); !s.admitIP(ss.ep.RemoteIP, limit) {
		s.log.Warning("dropping connection from %s, per-IP limit of %d reached", ss.ep.RemoteIP, limit)
		return false
	}
	return true
}

// admitNamed looks up names and IDENT, while the worker holds the
// session, and then applies -x unless the address already decided.
// False means the rules refused the client (or could not be read).
func (ss *session) admitNamed() bool {
	ctx, cancel := context.WithCancel(context.Background())
	go cancelOnEnd(ss.ended, ctx.Done(), cancel)
	ss.srv.identify(ctx, &ss.ep)
	cancel()
	if ss.decided {
		return true
	}
	v, err := ss.srv.checkRules(ss.ep)
	if err != nil {
		ss.srv.log.Warning("dropping connection from %s, unable to read rules: %v", ss.ep.RemoteIP, err)
		return false
	}
	if v.deny {
		ss.srv.log.Deny(ss.w.proc.Pid(), ss.localInfo(), ss.remoteInfo())
		return false
	}
	ss.ruleEnv = v.env
	return true
}

// cancelOnEnd stops the lookups of a session that the worker has ended
// (a failed handshake, a client gone): nobody waits for their answers.
func cancelOnEnd(ended, done <-chan struct{}, cancel context.CancelFunc) {
	select {
	case <-ended:
		cancel()
	case <-done:
	}
}

// refuse ends a session that the rules refused once the names were
// known. The worker, which may be in the handshake, is killed, which
// closes the client's connection; the program never runs. The end line's
// status is 100, as tcpserver's for a refused client.
func (ss *session) refuse() {
	ss.conn.Close()
	ss.f.closeAll()
	ss.w.kill()
	<-ss.ended
	ss.srv.log.End(ss.w.proc.Pid(), "status", protocol.ExitUsage)
	ss.srv.pool.release(ss.w, false)
}

// workerFailed says the worker ended the session with a failure while the
// names were looked up: there is no program to start.
func (ss *session) workerFailed() bool {
	select {
	case <-ss.ended:
		return ss.endCode != 0
	default:
		return false
	}
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

func (ss *session) setNoDelay() {
	ss.conn.SetNoDelay(ss.srv.opt.NoDelay)
}

func endpoints(c *net.TCPConn) env.Endpoints {
	l := c.LocalAddr().(*net.TCPAddr).AddrPort()
	r := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	return env.Endpoints{LocalIP: l.Addr().Unmap(), LocalPort: l.Port(), RemoteIP: r.Addr().Unmap(), RemotePort: r.Port()}
}

// startWorker hands the session's descriptors to a ready worker (see
// workerPool.handOver).
func (ss *session) startWorker() error {
	s := ss.srv
	ss.seq = s.nextSeq()
	w, err := s.pool.handOver(ss.seq, ss.f.worker())
	closeFiles([]*os.File{ss.f.ctlW, ss.f.inW, ss.f.outR})
	ss.f.ctlW, ss.f.inW, ss.f.outR = nil, nil, nil
	if err != nil {
		return err
	}
	ss.mu.Lock()
	ss.w = w
	ss.mu.Unlock()
	ss.hsVars = make(chan []env.Var, 1)
	ss.ended = make(chan struct{})
	go ss.readWorker()
	return nil
}

// workerConfig is what every worker with the certificates of set is
// told; checkConfig checks, at start and at each reload, that it passes
// the worker's own decoder, so no session fails on it.
func (s *Server) workerConfig(set *certSet) *protocol.WorkerConfig {
	o, t := s.opt, s.tls
	c := &protocol.WorkerConfig{
		UID: t.uid, GID: t.gid, Root: t.root, Delayed: o.Delayed, SSLEnv: o.SSLEnv,
		HandshakeMsec: uint32(o.Handshake / time.Millisecond), IdleMsec: uint32(o.Idle / time.Millisecond),
		Certs: set.certs, CipherSuites: t.suites, Sessions: uint16(s.pool.sessions),
	}
	if !o.Delayed {
		c.Banner = []byte(o.Banner)
	}
	if set.client != nil {
		c.ClientCert = clientCertMode(o)
		c.ClientCAs, c.AdvertiseCAs, c.VerifyDepth = set.client.trusted, set.client.advertise, set.client.depth
	}
	return c
}

// checkConfig refuses a certificate set whose worker configuration a
// worker would refuse, or that does not fit in one message.
func (s *Server) checkConfig(set *certSet) error {
	b := protocol.Encode(s.workerConfig(set))
	if len(b) > protocol.MaxMsg {
		return fmt.Errorf("the certificates and CAs take %d bytes, more than the %d a worker is given: fewer CA certificates (CAFILE, CADIR)", len(b), protocol.MaxMsg)
	}
	if _, err := protocol.Decode(b); err != nil {
		return fmt.Errorf("TLS settings a worker would refuse: %w", err)
	}
	return nil
}

// startProgram waits for the handshake first when the program wants the
// SSL_* variables (-N -s), and execs the program. It returns nil when
// there is no program to run.
func (ss *session) startProgram() Process {
	o := ss.srv.opt
	defer ss.f.closeAll()
	var tlsVars []env.Var
	// With -z or -m the program starts only once the client's
	// certificate has verified: it may rely on who the client is.
	if !o.Delayed && (o.SSLEnv || o.ClientCert != 'Z') {
		vars, ok := ss.awaitHandshake()
		if !ok {
			return nil
		}
		if err := ss.matchClientName(vars); err != nil {
			ss.rejectClient(err)
			return nil
		}
		if o.SSLEnv {
			tlsVars = vars
		}
	}
	if ss.judging() {
		go ss.judgeClient()
	}
	return ss.exec(tlsVars)
}

func (ss *session) exec(tlsVars []env.Var) Process {
	o, s := ss.srv.opt, ss.srv
	in, out, extra := ss.f.program(o.Delayed)
	// The fd map has the last word: it comes after the rules' variables.
	last := append(slices.Clip(ss.ruleEnv), fdVars()...)
	environ := env.Program(s.environ, ss.ep, env.Options{TCPVars: o.TCPVars}, tlsVars, last)
	p, err := s.programs().Start(&ProcSpec{Path: proc.LookPath(o.Program[0]), Args: o.Program, Env: environ,
		Stdin: in, Stdout: out, Extra: extra, Cred: programCred(o)})
	if err != nil {
		s.log.Warning("unable to run %s: %v", o.Program[0], err)
		return nil
	}
	s.log.OK(ss.w.proc.Pid(), ss.localInfo(), ss.remoteInfo())
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
	return fmt.Sprintf("%s:%s:%s:%d", ss.ep.RemoteHost, ss.ep.RemoteIP, logSafe(ss.ep.RemoteInfo), ss.ep.RemotePort)
}

// logSafe writes '?' for every byte of an IDENT answer that could change
// a log line's fields: blanks, controls, non-ASCII and ':', as tcpserver
// does. The program's environment gets the answer as it came.
func logSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 33 || c > 126 || c == ':' {
			b[i] = '?'
		}
	}
	return string(b)
}
