package supervisor

import (
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/internal/testutil"
	"github.com/ucspi-tls/sslserver/protocol"
	"github.com/ucspi-tls/sslserver/tlsworker"
)

// ports returns the server's and the client's port of c.
func ports(c *net.TCPConn) (local, remote int) {
	return c.RemoteAddr().(*net.TCPAddr).Port, c.LocalAddr().(*net.TCPAddr).Port
}

func TestSessionLifecycleAndLogLines(t *testing.T) {
	h := newServer(t, spawnerWith(goodWorker, programUntilTold), "-v").start()
	c := h.dial()
	fs, p := h.session(), h.program()
	sport, cport := ports(c)
	pid := fs.proc.pid
	h.waitLine(fmt.Sprintf("sslserver: tls %d accept", pid))
	p.exit <- ExitState{Code: 0}
	waitClosed(t, fs.exited, "ProgramExited at the worker")
	h.waitLine(fmt.Sprintf("sslserver: end %d status 0", pid))
	h.waitLineCount("sslserver: status: 0/40", 2)

	lines := h.lines()
	order := []string{
		"sslserver: status: 0/40",
		"sslserver: status: 1/40",
		fmt.Sprintf("sslserver: pid %d from 127.0.0.1", pid),
		fmt.Sprintf("sslserver: ok %d :127.0.0.1:%d :127.0.0.1::%d", pid, sport, cport),
		fmt.Sprintf("sslserver: end %d status 0", pid),
	}
	last := -1
	for _, want := range order {
		i := slices.Index(lines, want)
		if i <= last {
			t.Fatalf("line %q missing or out of order; log:\n%s", want, h.log.String())
		}
		last = i
	}
	if !p.wasWaited() {
		t.Error("the program was not reaped")
	}
	// One session per worker: the worker is let go, and reaped.
	if st := waitDone(t, fs.proc, "worker"); st != (ExitState{}) {
		t.Errorf("the worker ended with %+v", st)
	}
	waitFor(t, "the worker to be reaped", fs.proc.wasWaited)
}

func TestWorkerSpecAndConfig(t *testing.T) {
	h := newServer(t, spawnerWith(goodWorker, programUntilTold), "-v", "-T", "7", "-w", "60", "-B", "hello").start()
	w := h.worker()
	if w.spec.Path != h.srv.exe || !reflect.DeepEqual(w.spec.Args, []string{protocol.WorkerArgv0}) {
		t.Errorf("worker started as %q %q", w.spec.Path, w.spec.Args)
	}
	if len(w.spec.Extra) != 3 || w.spec.Cred != nil || w.spec.Stdin != nil || w.spec.Stdout != nil {
		t.Errorf("worker spec: %d extra files, cred %v, stdin %v, stdout %v", len(w.spec.Extra), w.spec.Cred, w.spec.Stdin, w.spec.Stdout)
	}
	if w.spec.Said == nil {
		t.Error("the worker would share the supervisor's stderr: its spec has no Said")
	}
	wantSys := tlsworker.StartAttr(tlsworker.Jail{UID: 65534, GID: 65533})
	if !reflect.DeepEqual(w.spec.Sys, wantSys) {
		t.Errorf("worker started with %+v, want %+v", w.spec.Sys, wantSys)
	}
	waitFor(t, "a NewWorker at the key holder", func() bool { return h.kh.workerCount() >= 1 })
	if nw := h.kh.worker(0); nw.Signs != 1 || nw.WaitMsec != uint32(grantWait/time.Millisecond) || nw.ID == 0 {
		t.Errorf("key holder got %+v, want a nonzero ID, 1 signature and a wait of %v for grants", nw, grantWait)
	}
	for _, kv := range w.spec.Env {
		if slices.Contains(h.srv.environ, kv) {
			t.Errorf("the worker inherits the server's %s", kv)
		}
	}
	cfg := configOf(t, w)
	want := &protocol.WorkerConfig{UID: 65534, GID: 65533, Root: h.srv.tls.root, Sessions: 1, HandshakeMsec: 7000,
		IdleMsec: 60000, Certs: h.srv.tls.certs, Banner: []byte("hello")}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("worker config:\n got %+v\nwant %+v", cfg, want)
	}
	h.dial()
	fs, p := h.session(), h.program()
	defer func() { p.exit <- ExitState{} }()
	if len(fs.files) != protocol.SessionFiles {
		t.Errorf("a session came with %d descriptors, want %d", len(fs.files), protocol.SessionFiles)
	}
}

func TestSessionProgramSpecAndEnvironment(t *testing.T) {
	h := newServer(t, spawnerWith(goodWorker, programUntilTold), "-u", "1001", "-g", "1002").start()
	c := h.dial()
	p := h.program()
	defer func() { p.exit <- ExitState{} }()
	sport, cport := ports(c)
	if !reflect.DeepEqual(p.spec.Args, []string{"prog", "arg1"}) || p.spec.Path != "prog" {
		t.Errorf("program started as %q %q", p.spec.Path, p.spec.Args)
	}
	if p.spec.Cred == nil || p.spec.Cred.Uid != 1001 || p.spec.Cred.Gid != 1002 || !reflect.DeepEqual(p.spec.Cred.Groups, []uint32{1002}) {
		t.Errorf("program credential %+v, want 1001:1002 with groups [1002]", p.spec.Cred)
	}
	for _, kv := range []string{"PROTO=SSL", "SSLCTLFD=3", "SSLREADFD=4", "SSLWRITEFD=5",
		"SSLREMOTEIP=127.0.0.1", "SSLREMOTEPORT=" + strconv.Itoa(cport), "SSLLOCALIP=127.0.0.1",
		"SSLLOCALPORT=" + strconv.Itoa(sport), "TCPREMOTEIP=127.0.0.1", "PATH=/usr/bin:/bin", "LANG=C"} {
		if !envHas(p.spec.Env, kv) {
			t.Errorf("program environment lacks %s: %q", kv, p.spec.Env)
		}
	}
	if got := envNames(p.spec.Env, "SSL_"); got != nil {
		t.Errorf("without -s the program got %q", got)
	}
	if len(p.spec.Extra) != 3 {
		t.Errorf("program has %d extra files, want 3 (fds 3, 4, 5)", len(p.spec.Extra))
	}
}

func TestSessionNoTCPVarsWithE(t *testing.T) {
	h := newServer(t, spawnerWith(goodWorker, programUntilTold), "-E").start()
	h.dial()
	p := h.program()
	defer func() { p.exit <- ExitState{} }()
	if got := envNames(p.spec.Env, "TCP"); got != nil {
		t.Fatalf("with -E the program got %q", got)
	}
}

// TestSessionImmediatePlumbing follows bytes through every descriptor of
// the fd maps under -N: the worker holds the client connection and the
// worker's ends of the pipes and control socket; the program has the
// pipes on 0, 1, 4 and 5 and the control socket on 3.
func TestSessionImmediatePlumbing(t *testing.T) {
	w := goodWorker
	w.session.do = plumbingWorker
	h := newServer(t, spawnerWith(w, plumbingProgram)).start()
	c := h.dial()
	fs, p := h.session(), h.program()
	c.SetReadDeadline(time.Now().Add(waitLimit))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "worker to client|program out|ctl Y|" {
		t.Fatalf("the client read %q, %v", got, err)
	}
	if st := waitDone(t, p, "program"); st.Code != 0 {
		t.Fatalf("the program failed: %+v", st)
	}
	waitClosed(t, fs.ended, "the end of the session")
}

// plumbingWorker writes to the program's input, reads the program's
// output and control byte, and reports to the client on the TCP
// connection.
func plumbingWorker(fs *fakeSession) {
	conn, ctl := fs.files[protocol.SessionFdConn], fs.files[protocol.SessionFdCtl]
	toProg, fromProg := fs.files[protocol.SessionFdToProgram], fs.files[protocol.SessionFdFromProgram]
	conn.Write([]byte("worker to client|"))
	toProg.Write([]byte("to program"))
	toProg.Close()
	out := make([]byte, len("program out"))
	io.ReadFull(fromProg, out)
	var cmd [1]byte
	io.ReadFull(ctl, cmd[:])
	conn.Write([]byte(string(out) + "|ctl " + string(cmd[:]) + "|"))
	conn.Close()
}

func plumbingProgram(p *fakeProc) ExitState {
	in, err := io.ReadAll(p.spec.Stdin)
	if err != nil || string(in) != "to program" {
		return ExitState{Code: 1}
	}
	p.spec.Stdout.Write([]byte("program out"))
	p.spec.Extra[0].Write([]byte("Y"))
	return ExitState{}
}

// TestSessionDelayedPlumbing: under -n the program talks to the client
// in plaintext on fds 0 and 1, after the supervisor's banner; the TLS
// worker gets no banner.
func TestSessionDelayedPlumbing(t *testing.T) {
	h := newServer(t, spawnerWith(goodWorker, delayedProgram), "-n", "-B", "220 banner\r\n").start()
	w := h.worker()
	c := h.dial()
	br := make([]byte, len("220 banner\r\nplain hello"))
	c.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := io.ReadFull(c, br); err != nil || string(br) != "220 banner\r\nplain hello" {
		t.Fatalf("client read %q, %v", br, err)
	}
	c.Write([]byte("STARTTLS\r\n"))
	p := h.program()
	if st := waitDone(t, p, "program"); st.Code != 0 {
		t.Fatalf("the program did not read the client's plaintext on fd 0: %+v", st)
	}
	cfg := configOf(t, w)
	if !cfg.Delayed || len(cfg.Banner) != 0 {
		t.Fatalf("worker config under -n: delayed %v banner %q", cfg.Delayed, cfg.Banner)
	}
}

func delayedProgram(p *fakeProc) ExitState {
	p.spec.Stdout.Write([]byte("plain hello"))
	b := make([]byte, len("STARTTLS\r\n"))
	if _, err := io.ReadFull(p.spec.Stdin, b); err != nil || string(b) != "STARTTLS\r\n" {
		return ExitState{Code: 1}
	}
	return ExitState{}
}

// TestSessionImmediateBannerIsNotPlaintext: under -N the banner goes to
// the worker, to be sent over TLS; not one byte reaches the client in
// the clear.
func TestSessionImmediateBannerIsNotPlaintext(t *testing.T) {
	h := newServer(t, spawnerWith(goodWorker, programUntilTold), "-B", "220 banner\r\n").start()
	c := h.dial()
	p := h.program()
	defer func() { p.exit <- ExitState{} }()
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var b [64]byte
	if n, err := c.Read(b[:]); n > 0 || !os.IsTimeout(err) {
		t.Fatalf("the client read %q in plaintext (%v)", b[:n], err)
	}
}

func TestSessionNoDelay(t *testing.T) {
	for flag, want := range map[string]int{"-D": 1, "-d": 0} {
		got := make(chan int, 1)
		w := goodWorker
		w.session.do = func(fs *fakeSession) { got <- tcpNoDelay(fs.files[protocol.SessionFdConn]) }
		h := newServer(t, spawnerWith(w, programExits(ExitState{})), flag).start()
		h.dial()
		select {
		case v := <-got:
			if v != want {
				t.Errorf("%s: TCP_NODELAY on the worker's connection is %d, want %d", flag, v, want)
			}
		case <-time.After(waitLimit):
			t.Fatalf("%s: no session", flag)
		}
	}
}

func tcpNoDelay(f *os.File) int {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1
	}
	v := -1
	rc.Control(func(fd uintptr) { v, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY) })
	return v
}

func TestSessionEndLineIsTheProgramStatus(t *testing.T) {
	cases := map[string]struct {
		st   ExitState
		line string
	}{
		"exit 0":   {ExitState{Code: 0}, "status 0"},
		"exit 3":   {ExitState{Code: 3}, "status 3"},
		"exit 111": {ExitState{Code: 111}, "status 111"},
		"signal 9": {ExitState{Signal: 9}, "signal 9"},
	}
	for what, c := range cases {
		h := newServer(t, spawnerWith(goodWorker, programExits(c.st)), "-v").start()
		h.dial()
		fs := h.session()
		h.waitLine(fmt.Sprintf("sslserver: end %d %s", fs.proc.pid, c.line))
		if waitClosed(t, fs.ended, "the end of the session"); !isClosed(fs.exited) {
			t.Errorf("%s: the worker was not told that the program exited", what)
		}
	}
}

// TestSessionWorkerFailureEndsProgram: when the worker reports a
// failure, the program gets SIGTERM and the end line carries the
// worker's code.
func TestSessionWorkerFailureEndsProgram(t *testing.T) {
	for _, code := range []uint8{protocol.ExitUsage, protocol.ExitClientCert, protocol.ExitTemp} {
		reason := fmt.Sprintf("failure number %d", code)
		w, started := gated(failingWorker(code, reason))
		h := newServer(t, spawnerWith(w, programUntilTold), "-v").start()
		h.dial()
		fs, p := h.session(), h.program()
		close(started)
		st := waitDone(t, p, "program")
		if st.Signal != int(syscall.SIGTERM) || !slices.Contains(p.gotSignals(), os.Signal(syscall.SIGTERM)) {
			t.Errorf("code %d: the program ended with %+v after signals %v, want SIGTERM", code, st, p.gotSignals())
		}
		h.waitLine("sslserver: warning: dropping connection from 127.0.0.1, " + reason)
		h.waitLine(fmt.Sprintf("sslserver: end %d status %d", fs.proc.pid, code))
		if st := waitDone(t, fs.proc, "worker"); st.Code != int(code) {
			t.Errorf("code %d: worker ended with %+v", code, st)
		}
		waitFor(t, "the failed worker to be reaped", fs.proc.wasWaited)
	}
}

// TestSessionWorkerDiesMidSession: a worker that dies without ending
// its session is a temporary failure; the program is ended.
func TestSessionWorkerDiesMidSession(t *testing.T) {
	for _, st := range []ExitState{{Code: 2}, {Signal: 6}} {
		w, started := gated(workerScript{session: sessionScript{send: []protocol.Message{handshakeDone()}, die: &st}})
		h := newServer(t, spawnerWith(w, programUntilTold), "-v").start()
		h.dial()
		fs, p := h.session(), h.program()
		close(started)
		if got := waitDone(t, p, "program"); got.Signal != int(syscall.SIGTERM) {
			t.Errorf("%+v: program ended with %+v, want SIGTERM", st, got)
		}
		h.waitLinePrefix(fmt.Sprintf("sslserver: warning: TLS worker %d ", fs.proc.pid))
		h.waitLine(fmt.Sprintf("sslserver: end %d status 111", fs.proc.pid))
		waitFor(t, "the dead worker to be reaped", fs.proc.wasWaited)
	}
}

// TestSessionFailureCodeWhenProgramExitedFirst: the program may be gone
// before the worker fails (it wrote an unknown command and exited).
// The end line must carry the worker's code however the goroutines are
// scheduled.
func TestSessionFailureCodeWhenProgramExitedFirst(t *testing.T) {
	w := failingWorker(protocol.ExitUsage, `unknown control command "x"`)
	w.session.afterExited = true
	h := newServer(t, spawnerWith(w, programExits(ExitState{})), "-v").start()
	const n = 40
	var pids []int
	for i := 0; i < n; i++ {
		h.dial()
		fs := h.session()
		pids = append(pids, fs.proc.pid)
		waitDone(t, fs.proc, "worker")
	}
	bad := 0
	for _, pid := range pids {
		h.waitLinePrefix(fmt.Sprintf("sslserver: end %d ", pid))
		if !h.hasLine(fmt.Sprintf("sslserver: end %d status 100", pid)) {
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d sessions logged an end line other than the worker's code 100; log:\n%s", bad, n, h.log.String())
	}
}

func TestSessionProgramThatCannotStart(t *testing.T) {
	sp := spawnerWith(goodWorker, programUntilTold)
	sp.refuse = func(p *ProcSpec) error {
		if p.Args[0] == "prog" {
			return errRefused
		}
		return nil
	}
	h := newServer(t, sp, "-v").start()
	h.dial()
	fs := h.session()
	h.waitLine("sslserver: warning: unable to run prog: " + errRefused.Error())
	waitClosed(t, fs.exited, "ProgramExited at the worker")
	h.waitLine(fmt.Sprintf("sslserver: end %d status 111", fs.proc.pid))
	if slices.ContainsFunc(h.lines(), func(l string) bool { return strings.HasPrefix(l, "sslserver: ok ") }) {
		t.Error("an ok line for a program that never ran")
	}
}

// TestSessionNoWorkerAvailable: when no worker can be started, the
// connection is dropped and closed, and no program runs.
func TestSessionNoWorkerAvailable(t *testing.T) {
	sp := spawnerWith(goodWorker, programUntilTold)
	var workers atomic.Int32
	sp.refuse = func(p *ProcSpec) error {
		if p.Args[0] == protocol.WorkerArgv0 && workers.Add(1) > 1 {
			return errRefused // every worker after the first
		}
		return nil
	}
	h := newServer(t, sp, "-v").start()
	h.dial()
	h.program().exit <- ExitState{}
	h.waitLineCount("sslserver: status: 0/40", 2)
	c := h.dial()
	h.waitLine("sslserver: warning: dropping connection from 127.0.0.1, unable to start TLS worker: " + errRefused.Error())
	h.none(sp.programs, "program", 100*time.Millisecond)
	c.SetReadDeadline(time.Now().Add(waitLimit))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the client's connection was not closed: read %d, %v", n, err)
	}
	if n := strings.Count(h.log.String(), "ahead of time"); n > 1 {
		t.Errorf("the failing refill was logged %d times", n)
	}
}

// TestSessionWorkerThatCannotConfine: a worker that reports a failure
// instead of WorkerReady, or is ready without its seccomp filter, is
// never given a session, and is reaped.
func TestSessionWorkerThatCannotConfine(t *testing.T) {
	for _, tc := range []struct {
		bad  workerScript
		want string
	}{
		{workerScript{startFail: "unable to chroot: permission denied"}, "unable to chroot: permission denied"},
		{workerScript{unfiltered: true}, "is ready without its seccomp filter"},
	} {
		t.Run(tc.want, func(t *testing.T) { testWorkerNotReady(t, tc.bad, tc.want) })
	}
}

func testWorkerNotReady(t *testing.T, bad workerScript, want string) {
	sp := newFakeSpawner()
	good, badRun := goodWorker.runner(sp.sessions), bad.runner(sp.sessions)
	var started atomic.Bool
	sp.worker = func(p *fakeProc) ExitState {
		if started.CompareAndSwap(false, true) { // only the first worker is good
			return good(p)
		}
		return badRun(p)
	}
	sp.program = programUntilTold
	h := newServer(t, sp, "-v").start()
	h.dial()
	h.program().exit <- ExitState{}
	h.waitLineCount("sslserver: status: 0/40", 2)
	h.dial()
	h.waitLinePrefix("sslserver: warning: dropping connection from 127.0.0.1, unable to start TLS worker: ")
	if !strings.Contains(h.log.String(), want) {
		t.Errorf("the log does not give the reason %q:\n%s", want, h.log.String())
	}
	h.none(sp.programs, "program", 100*time.Millisecond)
	for _, w := range h.startedWorkers()[1:] {
		waitFor(t, fmt.Sprintf("worker %d to be reaped", w.pid), w.wasWaited)
	}
}

// TestSessionSSLEnvWaitsForTheHandshake: with -N -s the program starts
// only after the handshake, with the worker's SSL_* variables.
// (TestSessionRefusesHostileReports has the reports it may not send.)
func TestSessionSSLEnvWaitsForTheHandshake(t *testing.T) {
	release := make(chan struct{})
	block, _ := protocol.EncodeBlock([]protocol.Var{{Name: "SSL_PROTOCOL", Value: "TLSv1.3"},
		{Name: "SSL_CIPHER", Value: "TLS_AES_256_GCM_SHA384"}})
	w := workerScript{session: sessionScript{
		do:         func(*fakeSession) { <-release },
		send:       []protocol.Message{&protocol.HandshakeDone{Protocol: "TLSv1.3", Cipher: "TLS_AES_256_GCM_SHA384", Block: block}},
		waitExited: true,
	}}
	sp := spawnerWith(w, programExits(ExitState{}))
	h := newServer(t, sp, "-s", "-V").start()
	h.dial()
	fs := h.session()
	h.none(sp.programs, "program before the handshake", 200*time.Millisecond)
	close(release)
	p := h.program()
	for _, kv := range []string{"SSL_PROTOCOL=TLSv1.3", "SSL_CIPHER=TLS_AES_256_GCM_SHA384", "SSLCTLFD=3", "TCPREMOTEIP=127.0.0.1"} {
		if !envHas(p.spec.Env, kv) {
			t.Errorf("program environment lacks %s", kv)
		}
	}
	h.waitLine(fmt.Sprintf("sslserver: tls %d accept TLSv1.3:TLS_AES_256_GCM_SHA384", fs.proc.pid))
	h.waitLine(fmt.Sprintf("sslserver: end %d status 0", fs.proc.pid))
}

func TestSessionSSLEnvHandshakeFailure(t *testing.T) {
	sp := spawnerWith(failingWorker(111, "unable to accept TLS: EOF"), programUntilTold)
	h := newServer(t, sp, "-s", "-v").start()
	h.dial()
	fs := h.session()
	h.waitLine(fmt.Sprintf("sslserver: end %d status 111", fs.proc.pid))
	h.none(sp.programs, "program after a failed handshake", 100*time.Millisecond)
	h.waitLine("sslserver: warning: dropping connection from 127.0.0.1, unable to accept TLS: EOF")
}

// TestSessionWorkerBreaksTheProtocol: a worker that sends what it may
// not send, when it may not, is killed, and its session ends as a
// temporary failure with the program ended.
func TestSessionWorkerBreaksTheProtocol(t *testing.T) {
	cases := map[string]sessionScript{
		"a key holder's message": {send: []protocol.Message{&protocol.KeysFailed{Reason: "hostile"}}, waitExited: true},
		"a second HandshakeDone": {send: []protocol.Message{handshakeDone(), handshakeDone()}, waitExited: true},
		"a second SessionFailed": {send: []protocol.Message{&protocol.SessionFailed{Code: 100, Reason: "a"},
			&protocol.SessionFailed{Code: 111, Reason: "b"}}, waitExited: true},
		"WorkerReady in a session": {send: []protocol.Message{&protocol.WorkerReady{}}, waitExited: true},
		"another session's end":    {send: []protocol.Message{handshakeDone()}, endSeq: 0xdead},
	}
	for what, s := range cases {
		h := newServer(t, spawnerWith(workerScript{session: s}, programUntilTold), "-v").start()
		h.dial()
		fs, p := h.session(), h.program()
		h.waitLinePrefix(fmt.Sprintf("sslserver: warning: TLS worker %d broke the protocol", fs.proc.pid))
		if st := waitDone(t, fs.proc, "worker"); st.Signal != int(syscall.SIGKILL) {
			t.Errorf("%s: worker ended with %+v, want SIGKILL", what, st)
		}
		if st := waitDone(t, p, "program"); st.Signal != int(syscall.SIGTERM) {
			t.Errorf("%s: program ended with %+v, want SIGTERM", what, st)
		}
		h.waitLine(fmt.Sprintf("sslserver: end %d status 111", fs.proc.pid))
		if n := strings.Count(h.log.String(), fmt.Sprintf("tls %d accept", fs.proc.pid)); n > 1 {
			t.Errorf("%s: %d tls lines for one session", what, n)
		}
	}
}

// TestMaxConnections: with -c 2 the third connection is accepted only
// after one of the first two ends, and the status lines count up and
// down.
func TestMaxConnections(t *testing.T) {
	sp := spawnerWith(goodWorker, programUntilTold)
	h := newServer(t, sp, "-v", "-c", "2").start()
	h.dial()
	h.dial()
	p1, p2 := h.program(), h.program()
	h.session()
	h.session()
	h.dial()
	h.none(sp.programs, "third program at the limit", 300*time.Millisecond)
	if len(sp.sessions) != 0 {
		t.Fatal("a third session started at the limit")
	}
	p1.exit <- ExitState{}
	h.waitLine(fmt.Sprintf("sslserver: end %d status 0", h.pidOf(p1)))
	p3 := h.program()
	p2.exit <- ExitState{Code: 2}
	h.waitLine(fmt.Sprintf("sslserver: end %d status 2", h.pidOf(p2)))
	p3.exit <- ExitState{}
	h.waitLine(fmt.Sprintf("sslserver: end %d status 0", h.pidOf(p3)))
	h.waitLineCount("sslserver: status: 0/2", 2)

	var status []string
	for _, l := range h.lines() {
		if s, ok := strings.CutPrefix(l, "sslserver: status: "); ok {
			status = append(status, s)
		}
	}
	want := []string{"0/2", "1/2", "2/2", "1/2", "2/2", "1/2", "0/2"}
	if !reflect.DeepEqual(status, want) {
		t.Fatalf("status lines %q, want %q", status, want)
	}
}

// pidOf finds the session (the worker's pid, as the log names it) that
// started program p, by the client port in its "ok" line.
func (h *harness) pidOf(p *fakeProc) int {
	h.t.Helper()
	var port string
	for _, kv := range p.spec.Env {
		if v, ok := strings.CutPrefix(kv, "SSLREMOTEPORT="); ok {
			port = v
		}
	}
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		for _, l := range h.lines() {
			if rest, ok := strings.CutPrefix(l, "sslserver: ok "); ok && strings.HasSuffix(l, "::"+port) {
				if pid, err := strconv.Atoi(strings.Fields(rest)[0]); err == nil {
					return pid
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("no ok line for client port %q; log:\n%s", port, h.log.String())
	return 0
}

func (h *harness) waitLineCount(line string, n int) {
	h.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for h.countLines(line) < n {
		if time.Now().After(deadline) {
			h.t.Fatalf("fewer than %d lines %q; log:\n%s", n, line, h.log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) countLines(line string) int {
	c := 0
	for _, l := range h.lines() {
		if l == line {
			c++
		}
	}
	return c
}

// waitLinePrefix waits for a line starting with prefix.
func (h *harness) waitLinePrefix(prefix string) {
	h.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !slices.ContainsFunc(h.lines(), func(l string) bool { return strings.HasPrefix(l, prefix) }) {
		if time.Now().After(deadline) {
			h.t.Fatalf("no log line starting %q; log:\n%s", prefix, h.log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestShutdownDrains: closing the listener stops accepting, waits for
// the running session, then lets the idle workers go and stops the key
// holder.
func TestShutdownDrains(t *testing.T) {
	sp := spawnerWith(goodWorker, programUntilTold)
	h := newServerEnv(t, sp, map[string]string{"SSL_PREFORK": "3"}, "-v").start()
	kh := h.next(sp.keyHolders, "key holder")
	h.dial()
	fs, p := h.session(), h.program()
	h.ln.Close()
	select {
	case <-h.served:
		t.Fatal("serve returned with a session still running")
	case <-time.After(200 * time.Millisecond):
	}
	if c, err := net.DialTimeout("tcp", h.ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("a client connected after the listener closed")
	}
	if isClosed(kh.done) {
		t.Fatal("the key holder stopped before the sessions drained")
	}
	p.exit <- ExitState{}
	waitClosed(t, h.served, "serve to return after the last session")
	h.waitLine(fmt.Sprintf("sslserver: end %d status 0", fs.proc.pid))
	if st := waitDone(t, kh, "key holder"); st != (ExitState{}) {
		t.Fatalf("key holder ended with %+v", st)
	}
	for _, w := range h.startedWorkers() {
		waitDone(t, w, "worker")
		waitFor(t, fmt.Sprintf("worker %d to be reaped", w.pid), w.wasWaited)
	}
	h.none(sp.keyHolders, "key holder restart at shutdown", 100*time.Millisecond)
}

// startedWorkers lists every fake worker started so far.
func (h *harness) startedWorkers() []*fakeProc {
	h.sp.mu.Lock()
	defer h.sp.mu.Unlock()
	var ws []*fakeProc
	for _, p := range h.sp.all {
		if p.argv0 == protocol.WorkerArgv0 {
			ws = append(ws, p)
		}
	}
	return ws
}

// noFinalizers turns the garbage collector off for the rest of the
// test: a descriptor the code forgot to close would otherwise be closed
// by its finalizer, and a leak counted away.
func noFinalizers(t *testing.T) {
	old := debug.SetGCPercent(-1)
	t.Cleanup(func() { debug.SetGCPercent(old) })
}

// waitFds waits until at most max descriptors are open.
func waitFds(t *testing.T, max int) {
	t.Helper()
	if n := testutil.FdsDownTo(t, os.Getpid(), max, waitLimit); n > max {
		t.Fatalf("%d descriptors open, want at most %d: a leak", n, max)
	}
}

// TestSessionsLeakNoDescriptors: once a session has ended, every
// descriptor made for it is closed in the supervisor.
func TestSessionsLeakNoDescriptors(t *testing.T) {
	sp := spawnerWith(goodWorker, programExits(ExitState{}))
	h := newServer(t, sp, "-v").start()
	session := func(i int) {
		c := h.dial()
		fs := h.session()
		h.waitLine(fmt.Sprintf("sslserver: end %d status 0", fs.proc.pid))
		waitDone(t, fs.proc, "worker")
		c.Close()
		h.waitLineCount("sslserver: status: 0/40", i+2)
	}
	session(0) // warm up: the runtime's own descriptors
	noFinalizers(t)
	before := testutil.OwnFdCount(t)
	for i := 1; i <= 10; i++ {
		session(i)
	}
	// The pool keeps one worker ready, as before.
	waitFds(t, before)
}

// TestSessionKeyHolderDown: a session that cannot reach the key holder
// is dropped; the idle worker, whose key channel died with the key
// holder, is let go rather than given the session, and nothing of the
// session stays open.
func TestSessionKeyHolderDown(t *testing.T) {
	sp := spawnerWith(goodWorker, programUntilTold)
	h := newServer(t, sp, "-v").start()
	kh := h.next(sp.keyHolders, "key holder")
	w := h.worker()
	sp.set(func(s *fakeSpawner) {
		s.refuse = func(p *ProcSpec) error {
			if p.Args[0] == protocol.KeyHolderArgv0 {
				return errRefused
			}
			return nil
		}
	})
	kh.Signal(syscall.SIGKILL)
	h.waitLine(fmt.Sprintf("sslserver: warning: key holder %d ended (signal 9), starting another", kh.pid))
	noFinalizers(t)
	before := testutil.OwnFdCount(t)
	h.dial().Close()
	h.waitLine("sslserver: warning: dropping connection from 127.0.0.1, unable to start TLS worker: key holder is not running")
	h.waitLineCount("sslserver: status: 0/40", 2)
	h.none(sp.programs, "program", 50*time.Millisecond)
	waitFor(t, "the idle worker of the dead key holder to be let go", w.wasWaited)
	if len(sp.sessions) != 0 {
		t.Error("a worker was given the session")
	}
	waitFds(t, before)
}

// TestSessionProgramIgnoringSIGTERM: a program that ignores SIGTERM
// after its worker failed gets SIGKILL once termGrace has passed.
func TestSessionProgramIgnoringSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for termGrace")
	}
	w, started := gated(failingWorker(111, "unable to accept TLS: EOF"))
	h := newServer(t, spawnerWith(w, programIgnoringTerm), "-v").start()
	h.dial()
	fs, p := h.session(), h.program()
	close(started)
	start := time.Now()
	select {
	case <-p.done:
	case <-time.After(termGrace + waitLimit):
		t.Fatal("the program was never killed")
	}
	if d := time.Since(start); d < termGrace-time.Second {
		t.Errorf("SIGKILL came after %v, before termGrace %v", d, termGrace)
	}
	if got := p.gotSignals(); !reflect.DeepEqual(got, []os.Signal{syscall.SIGTERM, syscall.SIGKILL}) {
		t.Errorf("the program got %v, want SIGTERM then SIGKILL", got)
	}
	h.waitLine(fmt.Sprintf("sslserver: end %d status 111", fs.proc.pid))
}

// programIgnoringTerm runs until SIGKILL (which the fake process
// applies by itself).
func programIgnoringTerm(p *fakeProc) ExitState {
	for {
		select {
		case <-p.sigs:
		case <-p.done:
			return ExitState{}
		}
	}
}
