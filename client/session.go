package client

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/env"
	"github.com/ucspi-tls/sslserver/internal/proc"
	"github.com/ucspi-tls/sslserver/protocol"
	"github.com/ucspi-tls/sslserver/tlsworker/keys"
)

const (
	// startupWait bounds the TLS process's start: exec, trust anchors,
	// confinement, the client key.
	startupWait = 30 * time.Second
	// reportMargin is added to the handshake deadline when waiting for
	// the TLS process's report, which it sends once the deadline passes.
	reportMargin = 5 * time.Second
	// termGrace is how long a program has after SIGTERM before SIGKILL.
	termGrace = 10 * time.Second
)

// session is the one connection: the TLS process and the program, both
// children of sslclient, and the bookkeeping between them.
type session struct {
	c       *invocation
	s       *settings
	ep      env.Endpoints
	f       sessionFiles
	ch      *protocol.Channel
	worker  *os.Process
	program *os.Process
	reading chan struct{} // closed when readWorker stops
	tlsVars []env.Var     // -s, without -y

	mu        sync.Mutex
	failed    *protocol.SessionFailed // what the TLS process reported
	handshook bool
}

// sessionFiles are the descriptors made for the session. The TLS process
// gets (see protocol.ClientWorkerFd*):
//
//	0 null  1 null  2 stderr  3 chW  4 conn  5 ctlW (-y) or null  6 inW  7 outR
//
// and the program, under -y (see protocol.ProgramFd* and
// protocol.ClientProgramFd*):
//
//	0 1 2 sslclient's  3 ctlP  4 inR  5 outW  6 conn  7 conn
//
// and without -y:
//
//	0 1 2 sslclient's  6 inR  7 outW
type sessionFiles struct {
	chW, chS   *os.File // channel: TLS process end, our end
	ctlW, ctlP *os.File // $SSLCTLFD: TLS process end, program end (-y only)
	inR, inW   *os.File // server -> program plaintext
	outR, outW *os.File // program -> server plaintext
	conn, null *os.File
}

func (f *sessionFiles) open(conn *os.File, delayed bool) error {
	f.conn = conn
	var err error
	steps := []func() error{
		func() error { f.chW, f.chS, err = protocol.Pair("tlsworker"); return err },
		func() error { f.inR, f.inW, err = os.Pipe(); return err },
		func() error { f.outR, f.outW, err = os.Pipe(); return err },
		func() error { f.null, err = os.OpenFile(os.DevNull, os.O_RDWR, 0); return err },
	}
	if delayed {
		steps = append(steps, func() error { f.ctlW, f.ctlP, err = protocol.StreamPair("ctl"); return err })
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
	for _, p := range []**os.File{&f.chW, &f.chS, &f.ctlW, &f.ctlP, &f.inR, &f.inW, &f.outR, &f.outW, &f.conn, &f.null} {
		if *p != nil {
			(*p).Close()
			*p = nil
		}
	}
}

func (f *sessionFiles) worker(stderr *os.File) []*os.File {
	ctl := f.ctlW
	if ctl == nil {
		ctl = f.null
	}
	errFile := inherited(stderr)
	if errFile == nil {
		errFile = f.null // never a free fd 2 that a later descriptor could take
	}
	return []*os.File{f.null, f.null, errFile, f.chW, f.conn, ctl, f.inW, f.outR}
}

func (f *sessionFiles) program(stderr *os.File, delayed bool) []*os.File {
	files := []*os.File{inherited(os.Stdin), inherited(os.Stdout), inherited(stderr)}
	if delayed {
		return append(files, f.ctlP, f.inR, f.outW, f.conn, f.conn)
	}
	return append(files, nil, nil, nil, f.inR, f.outW)
}

// inherited returns f when its descriptor is open, else nil: the
// program then starts with that descriptor closed too, as it would
// under tcpclient, rather than not at all.
func inherited(f *os.File) *os.File {
	if _, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0); err != nil {
		return nil
	}
	return f
}

// run starts the TLS process, waits until it is ready (and, without -y,
// until the server is verified), runs the program and reaps both.
func (ss *session) run(conn *os.File) int {
	defer ss.f.closeAll()
	if err := ss.f.open(conn, ss.c.opt.Delayed); err != nil {
		conn.Close()
		return ss.c.fatal(err)
	}
	if err := ss.startWorker(); err != nil {
		return ss.abandon(err)
	}
	if err := ss.prepare(); err != nil {
		return ss.abandon(err)
	}
	// From the program's start on, SIGTERM is the program's: caught
	// before it can run, so none is lost in between.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	if err := ss.startProgram(); err != nil {
		return ss.abandon(err)
	}
	ss.f.closeAll() // the children hold their own copies
	ss.reading = make(chan struct{})
	go ss.readWorker()
	return ss.wait(sigs)
}

// startWorker execs the TLS process with its fd map, closes our copies
// of its ends and sends its configuration with the key file.
func (ss *session) startWorker() error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("unable to find my own binary: %w", err)
	}
	// A session of its own: the TLS process faces a server that may be
	// hostile, and must not have the user's terminal as its controlling
	// tty, through which it could push input into the shell (TIOCSTI).
	attr := &os.ProcAttr{Env: workerEnv(), Files: ss.f.worker(ss.c.stderr), Sys: &syscall.SysProcAttr{Setsid: true}}
	p, err := os.StartProcess(exe, []string{protocol.ClientWorkerArgv0}, attr)
	for _, fp := range []**os.File{&ss.f.chW, &ss.f.ctlW, &ss.f.inW, &ss.f.outR} {
		if *fp != nil {
			(*fp).Close()
			*fp = nil
		}
	}
	if err != nil {
		return fmt.Errorf("unable to start the TLS process: %w", err)
	}
	ss.worker = p
	ch, err := protocol.NewChannel(ss.f.chS, protocol.ClientReports)
	ss.f.chS = nil
	if err != nil {
		return err
	}
	ss.ch = ch
	return ss.sendConfig()
}

// workerEnv is the TLS process's whole environment: no cgroup files kept
// open by the Go runtime, and the variables Go reads for the system's
// trust anchors.
func workerEnv() []string {
	e := []string{"GODEBUG=containermaxprocs=0,updatemaxprocs=0"}
	for _, name := range []string{"SSL_CERT_FILE", "SSL_CERT_DIR"} {
		if v, ok := os.LookupEnv(name); ok {
			e = append(e, name+"="+v)
		}
	}
	return e
}

func (ss *session) sendConfig() error {
	cfg := ss.s.config(ss.c.opt)
	if !cfg.HasKey() {
		return ss.ch.Send(cfg)
	}
	defer keys.Wipe(ss.s.passphrase) // the TLS process has its own copy
	key, err := os.Open(ss.s.keyFile)
	if err != nil {
		return fmt.Errorf("unable to open the client key: %w", err)
	}
	defer key.Close()
	return ss.ch.Send(cfg, key)
}

// prepare waits for the TLS process to be ready and, without -y, for the
// handshake: the program starts only once the server is verified.
func (ss *session) prepare() error {
	if _, err := ss.await(startupWait, protocol.MsgClientReady); err != nil {
		return err
	}
	if ss.c.opt.Delayed {
		return nil
	}
	m, err := ss.await(ss.c.opt.Handshake()+reportMargin, protocol.MsgHandshakeDone)
	if err != nil {
		return err
	}
	vars, err := ss.handshakeDone(m.(*protocol.HandshakeDone))
	if err != nil {
		return err
	}
	if ss.c.opt.SSLEnv {
		ss.tlsVars = vars
	}
	return nil
}

// await reads the next report, which must be of type want; a
// SessionFailed is logged and returned as errFailed.
func (ss *session) await(d time.Duration, want protocol.MsgType) (protocol.Message, error) {
	ss.ch.SetReadDeadline(time.Now().Add(d))
	defer ss.ch.SetReadDeadline(time.Time{})
	m, _, err := ss.ch.Recv()
	switch {
	case errors.Is(err, io.EOF):
		return nil, errors.New("the TLS process ended without saying why")
	case err != nil:
		return nil, fmt.Errorf("waiting for the TLS process: %w", err)
	}
	if f, ok := m.(*protocol.SessionFailed); ok {
		ss.fail(f)
		return nil, errFailed
	}
	if m.Type() != want {
		return nil, fmt.Errorf("the TLS process sent message type %d, want %d", m.Type(), want)
	}
	return m, nil
}

func (ss *session) fail(f *protocol.SessionFailed) {
	ss.mu.Lock()
	ss.failed = f
	ss.mu.Unlock()
	ss.c.log.Fatal("%s", f.Reason)
}

// handshakeDone logs the handshake and returns the SSL_* variables of
// its block, which must be a block env.TLS could have made: the TLS
// process has parsed the server's bytes and must not be able to set,
// say, LD_PRELOAD or SSL_CERT_FILE for the program.
func (ss *session) handshakeDone(m *protocol.HandshakeDone) ([]env.Var, error) {
	ss.mu.Lock()
	again := ss.handshook
	ss.handshook = true
	ss.mu.Unlock()
	if again {
		return nil, errors.New("the TLS process reported a second handshake")
	}
	block, err := protocol.DecodeBlock(m.Block)
	if err != nil {
		return nil, fmt.Errorf("the TLS process's report: %w", err)
	}
	vars := make([]env.Var, len(block))
	verify := ""
	for i, v := range block {
		vars[i] = env.Var{Name: v.Name, Value: v.Value}
		if v.Name == "SSL_SERVER_VERIFY" {
			verify = v.Value
		}
	}
	if err := env.CheckTLS(vars, false); err != nil {
		return nil, fmt.Errorf("the TLS process's report: %w", err)
	}
	ss.c.log.Info("tls %s:%s verify %s", m.Protocol, m.Cipher, verify)
	if reason, ok := strings.CutPrefix(verify, "FAILED:"); ok {
		ss.c.log.Warning("-X: going on with a certificate that failed verification: %s", reason)
	}
	return vars, nil
}

// startProgram execs the program with its fd map and environment.
func (ss *session) startProgram() error {
	o := ss.c.opt
	environ := env.Program(os.Environ(), ss.ep, env.Options{TCPVars: o.TCPVars}, ss.tlsVars, nil)
	if o.Delayed {
		environ = env.Set(environ, fdVars()...) // the fd map has the last word
	}
	attr := &os.ProcAttr{Env: environ, Files: ss.f.program(ss.c.stderr, o.Delayed)}
	p, err := os.StartProcess(proc.LookPath(o.Program[0]), o.Program, attr)
	if err != nil {
		return fmt.Errorf("unable to run %s: %w", o.Program[0], unwrapPath(err))
	}
	ss.program = p
	return nil
}

func fdVars() []env.Var {
	return []env.Var{
		{Name: "SSLCTLFD", Value: strconv.Itoa(protocol.ProgramFdCtl)},
		{Name: "SSLREADFD", Value: strconv.Itoa(protocol.ProgramFdRead)},
		{Name: "SSLWRITEFD", Value: strconv.Itoa(protocol.ProgramFdWrite)},
	}
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// abandon ends a session that could not start: the TLS process is
// killed and reaped, and the error (unless the TLS process's own failure,
// already logged) is logged.
func (ss *session) abandon(err error) int {
	if ss.ch != nil {
		ss.ch.Close()
	}
	if ss.worker != nil {
		ss.worker.Signal(syscall.SIGKILL)
		ss.worker.Wait()
	}
	if errors.Is(err, errFailed) {
		return int(ss.failed.Code)
	}
	return ss.c.fatal(err)
}

// readWorker handles what the TLS process reports once the program
// runs: under -y the handshake or its failure. Anything else breaks the
// protocol and ends the TLS process.
func (ss *session) readWorker() {
	defer close(ss.reading)
	for {
		m, _, err := ss.ch.Recv()
		if err != nil {
			return
		}
		if !ss.handle(m) {
			return
		}
	}
}

func (ss *session) handle(m protocol.Message) bool {
	why := fmt.Sprintf("the TLS process broke the protocol with message type %d", m.Type())
	switch m := m.(type) {
	case *protocol.HandshakeDone:
		if !ss.c.opt.Delayed {
			break
		}
		_, err := ss.handshakeDone(m)
		if err == nil {
			return true
		}
		why = err.Error()
	case *protocol.SessionFailed:
		ss.fail(m)
		return false
	}
	ss.fail(&protocol.SessionFailed{Code: protocol.ExitTemp, Reason: why})
	ss.worker.Signal(syscall.SIGKILL)
	return false
}

// wait reaps the program and the TLS process. When the program exits
// first, the TLS process is told, so it flushes and stops; when the TLS
// process fails, the program is ended. SIGTERM is passed on to the
// program; SIGINT, SIGHUP and SIGQUIT, which a terminal sends to the
// whole process group, reach it without our help.
func (ss *session) wait(sigs <-chan os.Signal) int {
	progDone, progGone := make(chan exitState, 1), make(chan struct{})
	workerDone := make(chan exitState, 1)
	go reap(ss.program, progDone, progGone)
	go reap(ss.worker, workerDone, nil)
	var ps, ws *exitState
	for ps == nil || ws == nil {
		select {
		case st := <-progDone:
			ps = &st
			ss.ch.Send(&protocol.ProgramExited{})
		case st := <-workerDone:
			ws = &st
			if ps == nil && !st.ok() {
				go proc.Terminate(ss.program, progGone, termGrace)
			}
		case sig := <-sigs:
			if sig == syscall.SIGTERM && ps == nil {
				ss.program.Signal(sig)
			}
		}
	}
	<-ss.reading // the TLS process is gone, so its last report is read
	ss.ch.Close()
	return ss.exitCode(*ws, *ps)
}

// exitState is how a child ended: Signal is 0 when it exited with Code;
// Code -1 means its status could not be read.
type exitState struct{ code, signal int }

func (e exitState) ok() bool { return e.code == 0 && e.signal == 0 }

func (e exitState) String() string {
	if e.signal != 0 {
		return fmt.Sprintf("signal %d", e.signal)
	}
	return fmt.Sprintf("status %d", e.code)
}

// reap waits for p, sends its state on done and closes gone (if any).
func reap(p *os.Process, done chan<- exitState, gone chan struct{}) {
	st, err := p.Wait()
	switch {
	case err != nil:
		done <- exitState{code: -1}
	case st.Sys().(syscall.WaitStatus).Signaled():
		done <- exitState{signal: int(st.Sys().(syscall.WaitStatus).Signal())}
	default:
		done <- exitState{code: st.ExitCode()}
	}
	if gone != nil {
		close(gone)
	}
}

// exitCode: the TLS process's failure code if it reported one; 111 if
// it died without saying why or the program was killed by a signal;
// else the program's exit code.
func (ss *session) exitCode(ws, ps exitState) int {
	ss.mu.Lock()
	failed := ss.failed
	ss.mu.Unlock()
	switch {
	case failed != nil:
		return int(failed.Code)
	case !ws.ok():
		ss.c.log.Fatal("the TLS process ended with %s", ws)
		return protocol.ExitTemp
	case ps.signal != 0 || ps.code < 0:
		ss.c.log.Info("end %s", ps)
		return protocol.ExitTemp
	}
	ss.c.log.Info("end %s", ps)
	return ps.code
}
