package integration

// The boundary between sslserver's processes (SPEC section 6): no
// worker, key holder or program can use the supervisor's stderr to stop
// it, a log file to erase, a terminal to type into, or a pid to signal
// or trace the key holder or another session's worker. The attackers
// are real: a hostile worker (hostile_harness_test.go) started by the
// supervisor exactly as a real one is, and programs in helper roles.

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// logAttack is a hostile worker's attack on its fd 2, made while
// sslserver's stderr is of kind: the step's result in the worker, and
// what else must hold afterwards (first is the session before it).
type logAttack struct {
	name  string
	kind  stderrKind
	step  string
	want  string
	check func(t *testing.T, s *server, first int)
}

var logAttacks = []logAttack{
	{"socket shut down", stderrSocket, "shutdown", "ENOTSOCK", nil},
	{"log file truncated", stderrFile, "truncate", "EINVAL", logFileIntact},
	{"terminal input injected", stderrTTY, "tiocsti", "ENOTTY", noTerminalInput},
	{"stderr flooded", stderrPipe, "flood 20000", "ok", floodDropped},
}

// A hostile worker attacks its fd 2 as it would attack the supervisor's
// stderr: it gets only a pipe of its own, the attack fails, and the
// supervisor goes on serving and logging to the stderr it was given
// (goodSession waits for the session's lines in the log).
func TestHostileWorkerCannotTouchTheLog(t *testing.T) {
	for _, a := range logAttacks {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			s, uid := hostileServer(t, a.kind, "echo")
			first := s.goodSession(t, "before")
			fds := settledFDs(t, s.pid)
			if got := s.attackOnce(t, uid, a.step)[a.step]; got != a.want {
				t.Errorf("hostile worker's %s: %q, want %q", a.step, got, a.want)
			}
			s.goodSession(t, "after")
			if got := settledFDs(t, s.pid); got != fds {
				t.Errorf("the supervisor has %d descriptors after the attack, %d before", got, fds)
			}
			if a.check != nil {
				a.check(t, s, first)
			}
		})
	}
}

// logFileIntact: the file behind 2>> still starts with what was logged
// before the attack.
func logFileIntact(t *testing.T, s *server, first int) {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "sslserver: keyholder pid ") || !strings.Contains(string(b), "sslserver: end "+strconv.Itoa(first)+" status 0\n") {
		t.Errorf("the log file lost its first lines:\n%s", b)
	}
}

// noTerminalInput: nothing waits in the input of sslserver's controlling
// terminal, which a shell would read as typed commands.
func noTerminalInput(t *testing.T, s *server, _ int) {
	if st, err := readStat(s.pid); err != nil || st.tty == 0 {
		t.Fatalf("sslserver has no controlling terminal (%+v, %v): the test proves nothing", st, err)
	}
	if n := s.ttyInput(t); n != 0 {
		t.Errorf("%d bytes were pushed into the input of sslserver's terminal", n)
	}
}

// floodDropped: the relay kept a burst of the flood, counted the rest,
// and said so once the worker was gone.
func floodDropped(t *testing.T, s *server, _ int) {
	// Counted per worker: a worker that dies before it takes its
	// session is replaced, and the next one plays the plan too.
	m := s.waitLog(t, regexp.MustCompile(`^sslserver: worker (\d+): \[(\d+) lines dropped\]$`))
	kept := len(s.log.matches(regexp.MustCompile(`^sslserver: worker ` + m[1] + `: flood \d+$`)))
	if dropped, _ := strconv.Atoi(m[2]); kept+dropped != 20000 || kept > 200 {
		t.Errorf("of worker %s's flood of 20000 lines %d were logged and %s dropped", m[1], kept, m[2])
	}
}

// A program keeps sslserver's stderr (UCSPI's convention) but not its
// terminal: it starts in a session of its own, so pushing input into the
// terminal on its stderr fails, as it would for any terminal that is
// not its own. The worker and the key holder have no terminal at all,
// and the program does not inherit the supervisor's handling of SIGPIPE.
func TestChildrenHaveNoTerminal(t *testing.T) {
	// -u: as root the program could push input into any terminal
	// (CAP_SYS_ADMIN); what stops one of another uid is having no
	// controlling terminal.
	s := startServer(t, serverConfig{stderr: stderrTTY, role: "tiocsti", flags: []string{"-u", "34567", "-g", "34567"}})
	tc, raw := s.dialTLS(t, nil)
	r := bufio.NewReaderSize(oneByteReader{tc}, 16)
	if line, err := r.ReadString('\n'); line != "TIOCSTI EPERM\n" {
		t.Errorf("the program's TIOCSTI: %q (%v), want EPERM", line, err)
	}
	prog := readReady(t, tc) // r read a byte at a time: nothing is left in it
	sup, err := readStat(s.pid)
	if err != nil || sup.tty == 0 {
		t.Fatalf("sslserver has no controlling terminal (%+v, %v): the test proves nothing", sup, err)
	}
	children := map[string]int{"program": prog, "worker": s.sessionPID(t, localPort(raw)), "key holder": s.keyHolder(t)}
	for name, pid := range children {
		st, err := readStat(pid)
		if err != nil {
			t.Fatalf("%s %d: %v", name, pid, err)
		}
		if st.session == sup.session || st.tty != 0 {
			t.Errorf("%s %d: session %d, tty %#x; want a session other than sslserver's %d, and no tty", name, pid, st.session, st.tty, sup.session)
		}
	}
	if n := s.ttyInput(t); n != 0 {
		t.Errorf("%d bytes were pushed into the input of sslserver's terminal", n)
	}
	if ign, _ := strconv.ParseUint(procStatus(t, prog)["SigIgn"], 16, 64); ign&(1<<(13-1)) != 0 {
		t.Errorf("the program starts with SIGPIPE ignored (SigIgn %#x)", ign)
	}
}

// A program that shuts down the write side of the stderr socket it
// shares with sslserver (as systemd's journal gives one) ends the log
// for everyone writing to that socket: the supervisor's writes fail with
// EPIPE from then on. It must not die of it (Go's runtime raises SIGPIPE
// for EPIPE on fd 2): it goes on serving, drops its lines, and exits
// normally on SIGTERM.
func TestProgramShutsSharedStderr(t *testing.T) {
	mark := filepath.Join(t.TempDir(), "mark")
	s := startServer(t, serverConfig{stderr: stderrSocket, role: "first", roleEnv: []string{"ITEST_FIRST=shutstderr", "ITEST_MARK=" + mark}})
	tc, _ := s.dialTLS(t, nil)
	expectLine(t, bufio.NewReader(tc), "SHUT ok\n")
	echoRoundTrip(t, tc, "after shutdown")
	tc.Close()
	for i := 0; i < 3; i++ {
		c, _ := s.dialTLS(t, nil)
		echoRoundTrip(t, c, "still served")
		c.Close()
	}
	if _, _, closed := s.log.snapshot(); !closed {
		t.Errorf("the log socket is still open after the program shut it down")
	}
	if !s.terminate() {
		t.Fatal("sslserver did not exit on SIGTERM")
	}
	if s.exitErr != nil {
		t.Errorf("sslserver ended with %v, want exit status 0", s.exitErr)
	}
}

// A hostile worker tries to kill and trace the key holder and another
// session's worker, all of the same uid, by their real pids (found here
// through /proc): in a PID namespace of its own it can name neither, so
// both attempts fail with ESRCH. The key holder and the other session
// live on, the session completes, and new handshakes (which need the key
// holder) succeed.
func TestWorkerCannotReachOthers(t *testing.T) {
	s, uid := hostileServer(t, stderrPipe, "readyecho")
	// The first session takes the worker started with the server: then
	// none is idle, and the descriptors counted are the steady ones.
	s.endHeld(t, s.holdFrom(t, "127.0.0.1"))
	fds := settledFDs(t, s.pid)
	held := s.holdFrom(t, "127.0.0.1")
	kh := s.keyHolder(t)
	targets := map[string]int{"key holder": kh, "worker": held.worker}
	var steps []string
	for _, pid := range targets {
		steps = append(steps, "kill "+strconv.Itoa(pid), "ptrace "+strconv.Itoa(pid))
	}
	results := s.attackOnce(t, uid, steps...)
	for _, step := range steps {
		if results[step] != "ESRCH" {
			t.Errorf("hostile worker's %s: %q, want ESRCH", step, results[step])
		}
	}
	for name, pid := range targets {
		if st, err := readStat(pid); err != nil || st.state == "Z" || st.state == "t" || st.state == "T" {
			t.Errorf("the %s %d was hit: %+v, %v", name, pid, st, err)
		}
	}
	echoRoundTrip(t, held.conn, "the other session goes on")
	s.endHeld(t, held)
	fresh := s.holdFrom(t, "127.0.0.1") // a new handshake, signed by the key holder
	echoRoundTrip(t, fresh.conn, "a new session")
	s.endHeld(t, fresh)
	if got := s.keyHolder(t); got != kh {
		t.Errorf("the key holder is now %d, was %d", got, kh)
	}
	if got := settledFDs(t, s.pid); got != fds {
		t.Errorf("the supervisor has %d descriptors after the attack, %d before", got, fds)
	}
}
