package integration

// Resilience: the supervisor survives the death of the key holder, a TLS
// worker or a program, ends a program that ignores SIGTERM, and ends
// idle sessions (-w).

import (
	"bufio"
	"crypto/tls"
	"io"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// supervisorTermGrace is termGrace in supervisor/session.go: how long a
// program has between SIGTERM and SIGKILL.
const supervisorTermGrace = 10 * time.Second

// killCase: SIGKILL one process of a live session (held by the readyecho
// or hang role, after one echo) and check the session's fate.
type killCase struct {
	name    string
	role    string // the held session's program; later sessions echo
	victim  string // "key holder", "worker" or "program"
	warning string // the warning expected, {pid} the victim; "" none at all
	end     string // the session's end ("status 111"), "" if it goes on
}

var killCases = []killCase{
	{"key holder", "readyecho", "key holder",
		`^sslserver: warning: key holder {pid} ended \(signal 9\), starting another$`, ""},
	// The hang role stays after its input ends: the supervisor must end it.
	{"TLS worker", "hang", "worker",
		`^sslserver: warning: TLS worker {pid} for 127\.0\.0\.1 ended`, "status 111"},
	{"program", "hang", "program", "", "signal 9"},
}

func TestKillMidSession(t *testing.T) {
	for _, tc := range killCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, serverConfig{role: "first",
				roleEnv: []string{"ITEST_FIRST=" + tc.role, "ITEST_MARK=" + t.TempDir() + "/first"}})
			h := s.holdFrom(t, "127.0.0.1")
			echoRoundTrip(t, h.conn, "before the kill")
			victim := map[string]int{"key holder": s.keyHolder(t), "worker": h.worker, "program": h.prog}[tc.victim]
			killed := time.Now()
			if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
				t.Fatalf("killing the %s %d: %v", tc.victim, victim, err)
			}
			if tc.warning != "" {
				s.waitLog(t, regexp.MustCompile(strings.ReplaceAll(tc.warning, "{pid}", strconv.Itoa(victim))))
			}
			if tc.victim == "key holder" {
				checkNewKeyHolder(t, s, victim)
			}
			if tc.end == "" {
				echoRoundTrip(t, h.conn, "after the kill")
				s.endHeld(t, h)
			} else {
				checkKilledSession(t, s, h, tc.end, killed)
			}
			s.goodSession(t, "after killing the "+tc.victim)
			if tc.warning == "" {
				checkWarning(t, s, noWarning)
			}
			s.waitChildren(t)
		})
	}
}

// checkNewKeyHolder: another key holder runs, confined as the first was.
func checkNewKeyHolder(t testing.TB, s *server, old int) {
	t.Helper()
	re := regexp.MustCompile(`^sslserver: keyholder pid (\d+)$`)
	m := s.waitCount(t, re, 2)
	next, _ := strconv.Atoi(m[len(m)-1][1])
	if next == old || len(m) != 2 {
		t.Fatalf("key holder lines %q after %d was killed, want one new pid", m, old)
	}
	if kh := s.keyHolder(t); kh != next {
		t.Errorf("sslserver's key holder child is %d, its log says %d", kh, next)
	}
	uid, gid := nobodyIDs(t)
	checkIDs(t, "new key holder", next, uid, gid)
	checkRoot(t, "new key holder", next, "", false)
}

// checkKilledSession: the session ends as wanted, promptly (its program
// needs no SIGKILL), the client sees the connection end, and the program
// is gone.
func checkKilledSession(t testing.TB, s *server, h heldSession, end string, killed time.Time) {
	t.Helper()
	s.waitLog(t, regexp.MustCompile(`^sslserver: end `+strconv.Itoa(h.worker)+` `+end+`$`))
	if d := time.Since(killed); d > supervisorTermGrace/2 {
		t.Errorf("the session ended %v after the kill, want well within the %v grace", d, supervisorTermGrace)
	}
	expectEOF(t, h.conn)
	if !processGone(h.prog) {
		t.Errorf("program %d is still there after its session ended: %v", h.prog, describePIDs([]int{h.prog}))
	}
}

// A program that ignores SIGTERM after a failed handshake gets SIGKILL
// at the end of the grace period, and the server serves meanwhile.
func TestProgramIgnoringSIGTERM(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{role: "first",
		roleEnv: []string{"ITEST_FIRST=ignoreterm", "ITEST_MARK=" + t.TempDir() + "/first"}})
	c := s.dialTCP(t)
	worker := s.sessionPID(t, localPort(c))
	m := s.waitLog(t, regexp.MustCompile(`^itest: ignoreterm (\d+): ready$`))
	prog, _ := strconv.Atoi(m[1])
	io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
	expectEOF(t, c) // the worker is gone, whatever the program does
	s.waitLog(t, regexp.MustCompile(tlsWarning))
	s.waitLog(t, regexp.MustCompile(`^itest: ignoreterm `+m[1]+`: SIGTERM ignored$`))
	termed := time.Now()
	s.goodSession(t, "during the grace period")
	if st, err := readStat(prog); err != nil || st.state == "Z" {
		t.Fatalf("program %d gone (%v, state %q) before its grace period ended", prog, err, st.state)
	}
	end := s.log.wait(regexp.MustCompile(`^sslserver: end `+strconv.Itoa(worker)+` status 111$`), supervisorTermGrace+waitTime)
	d := time.Since(termed)
	if end == nil {
		t.Fatalf("no end line for session %d within %v of SIGTERM", worker, d)
	}
	if d < supervisorTermGrace-2*time.Second || d > supervisorTermGrace+3*time.Second {
		t.Errorf("the session ended %v after its program ignored SIGTERM, want about %v", d, supervisorTermGrace)
	}
	if !processGone(prog) {
		t.Errorf("program %d is still there after its session ended", prog)
	}
	s.waitChildren(t)
}

// idleCase: a session under -w 2 with traffic in one direction, or none.
type idleCase struct {
	name    string
	role    string
	roleEnv []string
	client  func(t testing.TB, c *tls.Conn)
	status  int // the session's end status; -1: not checked
}

var idleCases = []idleCase{
	{"silent", "sleep", nil, idleSilent, -1},
	{"client sends every 700ms", "sink", nil, idleClientSends, 0},
	{"program sends every 700ms", "tick", []string{"ITEST_TICKS=4", "ITEST_TICK_MS=700"}, idleProgramSends, 0},
}

func TestIdleTimeout(t *testing.T) {
	for _, tc := range idleCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, serverConfig{flags: []string{"-w", "2"}, role: tc.role, roleEnv: tc.roleEnv})
			conn, raw := s.dialTLS(t, nil)
			pid := s.sessionPID(t, localPort(raw))
			tc.client(t, conn)
			status := s.waitEnd(t, pid)
			if tc.status >= 0 && status != tc.status {
				t.Errorf("session %d ended with status %d, want %d", pid, status, tc.status)
			}
			s.waitChildren(t)
		})
	}
}

// idleSilent: after READY neither side sends; -w 2 ends the session
// about 2 s later.
func idleSilent(t testing.TB, c *tls.Conn) {
	readReady(t, c)
	start := time.Now()
	expectEOF(t, c)
	if d := time.Since(start); d < 1500*time.Millisecond || d > 6*time.Second {
		t.Errorf("the silent session ended %v after its last byte, want about 2 s (-w 2)", d)
	}
}

// idleClientSends: a byte every 700 ms for 2.8 s keeps the session alive
// though the program never answers; then the client's EOF ends it.
func idleClientSends(t testing.TB, c *tls.Conn) {
	r := bufio.NewReader(c)
	expectLine(t, r, "READY\n")
	start := time.Now()
	for i := 0; i < 4; i++ {
		time.Sleep(700 * time.Millisecond)
		if _, err := c.Write([]byte{'x'}); err != nil {
			t.Fatalf("write %d, %v after READY: %v", i+1, time.Since(start), err)
		}
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatalf("close_notify after %v: %v", time.Since(start), err)
	}
	expectLine(t, r, "GOT 4\n")
	expectEOF(t, c)
}

// idleProgramSends: the program writes a byte every 700 ms for 2.8 s while
// the client says nothing; the session lasts until the program is done.
func idleProgramSends(t testing.TB, c *tls.Conn) {
	start := time.Now()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "....\n" {
		t.Fatalf("read %q (%v) after %v, want four dots and a newline", got, err, time.Since(start))
	}
	if d := time.Since(start); d < 2500*time.Millisecond {
		t.Errorf("the program's output took only %v", d)
	}
}
