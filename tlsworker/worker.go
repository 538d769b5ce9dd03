package tlsworker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/env"
	"github.com/ucspi-tls/sslserver/protocol"
)

// workerMaxFiles is the worker's RLIMIT_NOFILE once confined: its
// channel, one session's five descriptors and their duplicates, what the
// Go runtime opens, and a margin.
const workerMaxFiles = 32

// signWait bounds one round trip to the key holder.
const signWait = 10 * time.Second

// verdictWait bounds the wait, under -n -z, for the supervisor's verdict
// on the client's name: it has the names already and answers at once.
const verdictWait = 10 * time.Second

// worker is one TLS worker process. Its states, in order:
//
//	configured -> confined (WorkerReady sent) -> idle -> in session -> idle ... -> exit
//
// In the idle state it accepts Session, and ProgramExited for the
// session that just ended (the two may cross); in a session it accepts
// ProgramExited for that session only, and under -n -z one
// ClientVerdict for it after its HandshakeDone. Anything else ends the
// process.
// It serves cfg.Sessions sessions at most, and none after one that
// failed.
type worker struct {
	cfg   *protocol.WorkerConfig
	sup   *protocol.Channel
	kh    *keyLink           // to the key holder, which allows one signature per session
	certs []*tls.Certificate // with the key holder's signer in place of a key
	peers *clientVerifier    // -z, -m; nil under -Z
	tix   *ticketClient      // session tickets, sealed and opened by the key holder
	msgs  chan supMsg        // from readSupervisor
	then  func()             // see WorkerMainThen
}

// supMsg is one message from the supervisor, or the error that ended
// the channel.
type supMsg struct {
	m     protocol.Message
	files []*os.File
	err   error
}

// failure is an error with the session exit code it causes. told says
// the supervisor decided it and logged why: no SessionFailed is sent.
type failure struct {
	code   int
	reason string
	told   bool
}

func (f *failure) Error() string { return f.reason }

func failf(code int, format string, args ...any) *failure {
	return &failure{code: code, reason: fmt.Sprintf(format, args...)}
}

// WorkerMain runs one TLS worker and returns its exit code.
func WorkerMain() int { return WorkerMainThen(nil) }

// WorkerMainThen is WorkerMain that runs then, when not nil, once the
// worker is confined and sandboxed and before it says it is ready. The
// sslserver binary passes nil; the integration tests pass a hostile
// step, to prove what the sandbox stops inside a real worker started by
// a real sslserver.
func WorkerMainThen(then func()) int {
	w, err := newWorker()
	if err != nil {
		return fail(protocol.WorkerArgv0, err)
	}
	w.then = then
	if err := w.start(); err != nil {
		w.sup.Send(&protocol.SessionFailed{Code: protocol.ExitTemp, Reason: err.Error()})
		return fail(protocol.WorkerArgv0, err)
	}
	return w.serveSessions()
}

func newWorker() (*worker, error) {
	sup, err := protocol.NewChannel(os.NewFile(protocol.WorkerFdSupervisor, "supervisor"), protocol.SupervisorOrders)
	if err != nil {
		return nil, err
	}
	kh, err := protocol.NewChannel(os.NewFile(protocol.WorkerFdKeyHolder, "keyholder"), protocol.SignReplies)
	if err != nil {
		sup.Close()
		return nil, err
	}
	m, _, err := recvFirst(sup, protocol.MsgWorkerConfig, "the configuration")
	if err != nil {
		return nil, err
	}
	return &worker{cfg: m.(*protocol.WorkerConfig), sup: sup, kh: newKeyLink(kh, sup), msgs: make(chan supMsg)}, nil
}

// start confines the worker, parses its certificates and says it is
// ready.
func (w *worker) start() error {
	jail := Jail{UID: w.cfg.UID, GID: w.cfg.GID, Root: w.cfg.Root, RootFD: protocol.WorkerFdRoot, MaxFiles: workerMaxFiles}
	if err := Confine(jail); err != nil {
		return err
	}
	layers, err := Sandbox()
	if err != nil {
		return err
	}
	if w.then != nil {
		w.then()
	}
	for _, c := range w.cfg.Certs {
		leaf, err := x509.ParseCertificate(c.Chain[0])
		if err != nil {
			return fmt.Errorf("certificate %q: %w", c.Name, err)
		}
		signer := &remoteSigner{pub: leaf.PublicKey, key: c.Key, ch: w.kh.ch, timeout: signWait, renew: w.kh.renew}
		w.certs = append(w.certs, &tls.Certificate{Certificate: c.Chain, PrivateKey: signer, Leaf: leaf})
	}
	w.tix = &ticketClient{link: w.kh, timeout: signWait}
	if w.peers, err = newClientVerifier(w.cfg); err != nil {
		return err
	}
	go w.readSupervisor()
	return w.sup.Send(&protocol.WorkerReady{Seccomp: layers.Seccomp, Landlock: layers.Landlock})
}

// readSupervisor is the channel's only reader; the state machine takes
// its messages from w.msgs, the key link its new channels.
func (w *worker) readSupervisor() {
	for {
		m, files, err := w.sup.Recv()
		if _, ok := m.(*protocol.KeyChannel); ok {
			w.kh.deliver(files[0])
			continue
		}
		w.msgs <- supMsg{m: m, files: files, err: err}
		if err != nil {
			return
		}
	}
}

// serveSessions is the idle state: it waits for sessions and serves them
// one after another. It returns the exit code.
func (w *worker) serveSessions() int {
	var last uint32 // the session that just ended; 0: none yet
	for served := 0; served < int(w.cfg.Sessions); served++ {
		s, err := w.nextSession(last)
		if err != nil {
			return fail(protocol.WorkerArgv0, err)
		}
		if s == nil {
			return protocol.ExitOK // the supervisor retired us
		}
		code := s.run()
		last = s.seq
		if w.sup.Send(&protocol.SessionEnd{Seq: s.seq, Code: uint8(code)}) != nil || code != 0 {
			return code
		}
	}
	return protocol.ExitOK
}

// nextSession waits for a Session; nil when the supervisor hangs up.
func (w *worker) nextSession(last uint32) (*session, error) {
	for sm := range w.msgs {
		switch m := sm.m.(type) {
		case nil:
			if errors.Is(sm.err, io.EOF) {
				return nil, nil
			}
			return nil, sm.err
		case *protocol.ProgramExited:
			if m.Seq != last || last == 0 {
				return nil, fmt.Errorf("program of session %d exited while idle", m.Seq)
			}
		case *protocol.Session:
			return w.takeSession(m.Seq, sm.files)
		default:
			closeFiles(sm.files)
			return nil, fmt.Errorf("message type %d while idle", m.Type())
		}
	}
	return nil, nil
}

// takeSession takes over a session's descriptors and tells the
// supervisor so: until then it may give the session to another worker.
// If it cannot tell, the supervisor is gone and the worker exits.
func (w *worker) takeSession(seq uint32, files []*os.File) (*session, error) {
	s, err := w.newSession(seq, files)
	if err == nil {
		err = w.sup.Send(&protocol.SessionTaken{Seq: seq})
	}
	return s, err
}

// session is one connection as the worker sees it.
type session struct {
	w        *worker
	seq      uint32
	conn     *os.File // untouched until the handshake: see newSession
	ctl      net.Conn
	toProg   *os.File
	fromProg *os.File
	chosen   *x509.Certificate // the leaf we presented
	peerErr  error             // why the client's certificate failed verification
	exited   chan struct{}     // closed when the program is gone
	done     chan struct{}     // closed when the session is over
	reported atomic.Bool       // HandshakeDone is sent: a ClientVerdict may come
	verdict  chan bool         // the supervisor's ClientVerdict (-n -z)
}

// newSession takes over a session's descriptors, except that the TCP
// connection stays as it came: under -n the program shares it, and it
// must stay blocking and untouched until the program hands it over.
func (w *worker) newSession(seq uint32, files []*os.File) (*session, error) {
	s := &session{w: w, seq: seq, conn: files[protocol.SessionFdConn], exited: make(chan struct{}), done: make(chan struct{}),
		verdict: make(chan bool, 1)}
	ctlFile := files[protocol.SessionFdCtl]
	var err error
	s.ctl, err = net.FileConn(ctlFile)
	ctlFile.Close()
	if err != nil {
		closeFiles(files)
		return nil, fmt.Errorf("control socket: %w", err)
	}
	s.toProg, err = nonblocking(files[protocol.SessionFdToProgram])
	if err == nil {
		s.fromProg, err = nonblocking(files[protocol.SessionFdFromProgram])
	}
	if err != nil {
		closeFiles(files)
		return nil, err
	}
	return s, nil
}

// nonblocking lets the runtime poller drive a pipe instead of a blocked
// thread. Only our end of each pipe is ours, so the program's
// descriptors keep their mode.
func nonblocking(f *os.File) (*os.File, error) {
	fd, err := unix.Dup(int(f.Fd()))
	name := f.Name()
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	unix.CloseOnExec(fd)
	unix.SetNonblock(fd, true)
	return os.NewFile(uintptr(fd), name), nil
}

// run serves the session and returns its status: 0, or the code of the
// SessionFailed it reported.
func (s *session) run() int {
	go s.watchSupervisor()
	defer s.close()
	err := s.serve()
	var f *failure
	if err != nil && !errors.As(err, &f) {
		f = &failure{code: protocol.ExitTemp, reason: err.Error()}
	}
	if f == nil {
		return protocol.ExitOK
	}
	if !f.told {
		s.w.sup.Send(&protocol.SessionFailed{Code: uint8(f.code), Reason: f.reason})
	}
	return f.code
}

// close ends the session's descriptors and waits until watchSupervisor
// has let go of the channel: only then may SessionEnd be sent, so the
// next Session cannot reach the old session's reader.
func (s *session) close() {
	close(s.done)
	<-s.exited
	s.ctl.Close()
	s.toProg.Close()
	s.fromProg.Close()
	s.conn.Close()
}

// watchSupervisor waits, during the session, for its program to exit,
// and passes on the verdict on the client's name (-n -z). The session's
// end stops it: it then leaves the channel to the idle state.
func (s *session) watchSupervisor() {
	defer close(s.exited)
	judged := false
	for {
		var sm supMsg
		select {
		case sm = <-s.w.msgs:
		case <-s.done:
			return
		}
		switch m := sm.m.(type) {
		case *protocol.ProgramExited:
			if m.Seq == s.seq {
				return
			}
		case *protocol.ClientVerdict:
			if m.Seq == s.seq && !judged && s.awaitsVerdict() && s.reported.Load() {
				judged = true
				s.verdict <- m.OK
				continue
			}
		}
		s.outOfTurn(sm)
	}
}

// outOfTurn ends the worker on a message the session does not take:
// the supervisor is gone or broken.
func (s *session) outOfTurn(sm supMsg) {
	closeFiles(sm.files)
	if sm.err == nil {
		fmt.Fprintf(os.Stderr, "%s: message type %d during a session\n", protocol.WorkerArgv0, sm.m.Type())
	}
	os.Exit(protocol.ExitTemp)
}

// awaitsVerdict: under -n -z the supervisor matches the client's names
// to the remote host while the program already runs, so the worker
// must hear the verdict before it answers the program.
func (s *session) awaitsVerdict() bool {
	return s.w.cfg.Delayed && s.w.cfg.ClientCert == protocol.ClientCertMatchHost
}

// awaitVerdict waits, when the session needs one, for the supervisor's
// ClientVerdict. False with no error: the program exited first, and
// the session ends with nothing written or relayed.
func (s *session) awaitVerdict() (bool, error) {
	if !s.awaitsVerdict() {
		return true, nil
	}
	t := time.NewTimer(verdictWait)
	defer t.Stop()
	select {
	case ok := <-s.verdict:
		if !ok {
			return false, &failure{code: protocol.ExitClientCert, reason: "client certificate refused", told: true}
		}
		return true, nil
	case <-s.exited:
		return false, nil
	case <-t.C:
		return false, failf(protocol.ExitTemp, "no verdict on the client certificate from the supervisor within %v", verdictWait)
	}
}

// serve waits for the command under -n, does the handshake, answers the
// command, and relays.
func (s *session) serve() error {
	cmd := protocol.CmdStart
	if s.w.cfg.Delayed {
		c, err := s.awaitCommand()
		if err != nil || c == 0 {
			return err
		}
		cmd = c
	}
	tcp, err := tcpConn(s.conn, "client")
	if err != nil {
		return err
	}
	defer tcp.Close()
	conn, err := s.handshake(tcp)
	if err != nil {
		return err
	}
	rep, err := s.report(conn)
	if err != nil {
		return err
	}
	if ok, err := s.awaitVerdict(); !ok {
		return err
	}
	s.answer(cmd, rep)
	if len(s.w.cfg.Banner) > 0 {
		if _, err := conn.Write(s.w.cfg.Banner); err != nil {
			return nil
		}
	}
	r := &relay{tls: conn, tcp: tcp, toProg: s.toProg, fromProg: s.fromProg,
		idle: time.Duration(s.w.cfg.IdleMsec) * time.Millisecond, exited: s.exited}
	r.run()
	return nil
}

// awaitCommand reads the program's one control byte. It returns 0 when
// the program closed the control fd or exited without a command: the
// session then simply ends.
func (s *session) awaitCommand() (protocol.Command, error) {
	return readCommand(s.ctl, s.exited)
}

// readCommand reads the one control byte on ctl, giving up when exited
// closes; 0 means there was none. An unknown byte is a failure with exit
// code 100, refused before any handshake.
func readCommand(ctl net.Conn, exited <-chan struct{}) (protocol.Command, error) {
	go closeOnSignal(exited, ctl)
	var b [1]byte
	if _, err := io.ReadFull(ctl, b[:]); err != nil {
		return 0, nil
	}
	c, err := protocol.ParseCommand(b[0])
	if err != nil {
		return 0, failf(protocol.ExitUsage, "%v", err)
	}
	return c, nil
}

func closeOnSignal(ch <-chan struct{}, c io.Closer) {
	<-ch
	c.Close()
}

// tcpConn wraps the TCP connection for the runtime poller, which makes
// it non-blocking: only now, when TLS owns it.
func tcpConn(f *os.File, peer string) (*net.TCPConn, error) {
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s connection: %w", peer, err)
	}
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("%s connection is not TCP", peer)
	}
	return tcp, nil
}

func (s *session) handshake(tcp *net.TCPConn) (*tls.Conn, error) {
	conn := tls.Server(tcp, s.tlsConfig())
	limit := time.Duration(s.w.cfg.HandshakeMsec) * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		if s.peerErr != nil {
			return nil, failf(protocol.ExitClientCert, "client certificate verification failed: %v", s.peerErr)
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("handshake not done within %v", limit)
		}
		return nil, failf(protocol.ExitTemp, "unable to accept TLS: %v", err)
	}
	return conn, nil
}

func (s *session) tlsConfig() *tls.Config {
	c := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   s.w.cfg.CipherSuites,
		GetCertificate: s.getCertificate,
		// Tickets are sealed and opened by the key holder, whose keys
		// outlive the worker: a ticket comes back to whichever worker.
		WrapSession:   s.w.tix.wrap,
		UnwrapSession: s.w.tix.unwrap,
	}
	if s.w.peers != nil {
		s.w.peers.configure(c, &s.peerErr)
	}
	return c
}

// verifyValue is SSL_CLIENT_VERIFY: a session whose client certificate
// failed never gets this far.
func (s *session) verifyValue() string {
	if s.w.peers == nil {
		return "NONE"
	}
	return "SUCCESS"
}

// report sends the handshake's outcome to the supervisor and returns the
// reply block for the program.
func (s *session) report(conn *tls.Conn) (*reply, error) {
	r := &reply{cs: conn.ConnectionState(), own: s.chosen, verify: s.verifyValue()}
	proto, cipher := env.Names(&r.cs)
	done := &protocol.HandshakeDone{Protocol: proto, Cipher: cipher, Block: []byte{0, 0}}
	// -z: the supervisor matches the client's names from the block.
	if s.w.cfg.SSLEnv || s.w.cfg.ClientCert == protocol.ClientCertMatchHost {
		block, err := r.block()
		if err != nil {
			return nil, err
		}
		done.Block = block
	}
	s.reported.Store(true)
	return r, s.w.sup.Send(done)
}

// reply is the session's SSL_* variables as a reply block, made when
// first asked for: by -s, or by a program's "Y". Most sessions need
// neither, and the block (certificate PEM and names) is the larger part
// of a handshake report.
type reply struct {
	cs     tls.ConnectionState
	own    *x509.Certificate
	verify string // SSL_CLIENT_VERIFY
	once   sync.Once
	b      []byte
	err    error
}

func (r *reply) block() ([]byte, error) {
	r.once.Do(func() {
		r.b, r.err = protocol.EncodeBlock(toProtocol(env.TLS(&r.cs, r.own, true, r.verify)))
	})
	return r.b, r.err
}

func toProtocol(vars []env.Var) []protocol.Var {
	out := make([]protocol.Var, len(vars))
	for i, v := range vars {
		out[i] = protocol.Var{Name: v.Name, Value: v.Value}
	}
	return out
}

func lookup(vars []protocol.Var, name string) string {
	for _, v := range vars {
		if v.Name == name {
			return v.Value
		}
	}
	return ""
}

// answer completes the control protocol: after Y the block, then the
// control fd closes either way. In immediate mode the program may still
// ask later; it gets the same answer.
func (s *session) answer(cmd protocol.Command, r *reply) {
	if !s.w.cfg.Delayed {
		go answerLate(s.ctl, r)
		return
	}
	if cmd == protocol.CmdStartReply {
		if block, err := r.block(); err == nil {
			s.ctl.SetWriteDeadline(time.Now().Add(signWait))
			s.ctl.Write(block)
		}
	}
	s.ctl.Close()
}

func answerLate(ctl net.Conn, r *reply) {
	defer ctl.Close()
	var b [1]byte
	if _, err := ctl.Read(b[:]); err != nil {
		return
	}
	if protocol.Command(b[0]) != protocol.CmdStartReply {
		return
	}
	if block, err := r.block(); err == nil {
		ctl.SetWriteDeadline(time.Now().Add(signWait))
		ctl.Write(block)
	}
}

// getCertificate picks the certificate named for the client's SNI (the
// CERTFILE:name convention), else the unnamed one; of two for the same
// name (CERTFILE2), the first the client supports, say RSA for a client
// without ECDSA.
func (s *session) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cands := s.pick(strings.ToLower(strings.TrimSuffix(hello.ServerName, ".")))
	i := cands[0]
	for _, c := range cands {
		if hello.SupportsCertificate(s.w.certs[c]) == nil {
			i = c
			break
		}
	}
	s.chosen = s.w.certs[i].Leaf
	return s.w.certs[i], nil
}

// pick lists the indexes of the certificates for sni, in the order
// configured: those named sni, else the unnamed ones, else the first.
func (s *session) pick(sni string) []int {
	var named, def []int
	for i, c := range s.w.cfg.Certs {
		switch {
		case c.Name != "" && strings.EqualFold(c.Name, sni):
			named = append(named, i)
		case c.Name == "":
			def = append(def, i)
		}
	}
	switch {
	case len(named) > 0:
		return named
	case len(def) > 0:
		return def
	}
	return []int{0}
}
