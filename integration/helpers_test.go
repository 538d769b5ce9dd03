package integration

// Shared by the tests: starting sslserver, its log, and /proc look-ups.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitTime bounds every wait on sslserver, a session or a client.
const waitTime = 10 * time.Second

// needRoot skips a test that needs root; under CI=true it fails instead.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "root")
	}
}

// needTool returns the path of an external program, or skips (fails
// under CI=true) when it is not installed.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, name)
	}
	return p
}

func missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("this test needs %s (CI=true: a missing requirement is a failure)", what)
	}
	t.Skipf("this test needs %s", what)
}

// serverConfig describes one sslserver run.
type serverConfig struct {
	flags     []string   // options, e.g. "-n", "-s"
	env       []string   // NAME=value for sslserver beyond CERTFILE/KEYFILE
	host      string     // default 127.0.0.1
	port      string     // default 0: any free port
	cert      *testCert  // default a fresh ECDSA certificate
	keyInCert bool       // CERTFILE holds the key too, KEYFILE is empty
	role      string     // the program: this test binary in a role...
	roleEnv   []string   // ...with these NAME=value
	program   []string   // or any other program
	inherit   []*os.File // passed to sslserver as fds 3, 4, ...
	bin       string     // default "sslserver"
	stderr    stderrKind // what sslserver's stderr is; default a pipe
	wrap      []string   // a command that execs sslserver, as setpriv does
	hostile   int        // a uid: sslserver is this test binary, its workers of that uid follow setPlan
	selfAs    string     // the server is this test binary in this role of roles (an sslhandle program)
}

// stderrKind is what sslserver's stderr is: the test reads the log from
// the other end in every case.
type stderrKind int

const (
	stderrPipe   stderrKind = iota
	stderrSocket            // a UNIX stream socket, as systemd's journal gives
	stderrFile              // a file opened for appending, as 2>>file
	stderrTTY               // a pty, which is also sslserver's controlling terminal
)

// serverOnlyVars are read by sslserver and must never reach the program.
var serverOnlyVars = []string{"CERTFILE", "KEYFILE", "CERTCHAINFILE", "CAFILE", "CADIR", "CCAFILE",
	"VERIFYDEPTH", "CIPHERS", "DHFILE", "SSL_UID", "SSL_GID", "SSL_CHROOT", "MAXCONIP",
	"PROXYFROM", "REUSEPORT", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET",
	"TICKETKEYFILE", "CERTFILE2", "KEYFILE2"}

// server is a running sslserver started by startServer; test cleanup
// stops it and kills whatever is left in its process group.
type server struct {
	t       testing.TB
	cmd     *exec.Cmd
	pid     int
	addr    string // host:port for clients
	port    int
	cert    *testCert
	log     *logBook
	exited  chan struct{}
	exitErr error    // valid once exited is closed
	logPath string   // with stderrFile: the log file
	tty     *os.File // with stderrTTY: the terminal side of the pty
}

func startServer(t testing.TB, cfg serverConfig) *server {
	t.Helper()
	needRoot(t)
	if cfg.cert == nil {
		cfg.cert = newCert(t, keyECDSA)
	}
	if cfg.host == "" {
		cfg.host = "127.0.0.1"
	}
	if cfg.bin == "" {
		cfg.bin = "sslserver"
	}
	s := &server{t: t, cert: cfg.cert, log: newLogBook(), exited: make(chan struct{})}
	argv := slices.Concat(cfg.wrap, []string{binary(t, cfg.bin)}, serverArgs(cfg))
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Env = serverEnv(t, cfg)
	if cfg.hostile != 0 {
		s.hostile(cfg.hostile)
	}
	if cfg.selfAs != "" {
		s.cmd.Path = itestBin
		s.cmd.Env = append(s.cmd.Env, roleVar+"="+cfg.selfAs)
	}
	// Its own process group, so cleanup can kill every process it started.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, stdoutW := s.pipe()
	stderr, stderrW := s.stderr(cfg.stderr)
	s.cmd.Stdout, s.cmd.Stderr = stdoutW, stderrW
	s.cmd.ExtraFiles = cfg.inherit
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting sslserver: %v", err)
	}
	stdoutW.Close()
	stderrW.Close()
	s.pid = s.cmd.Process.Pid
	t.Cleanup(s.stop)
	go s.waitExit()
	if cfg.stderr == stderrFile {
		go tailLog(stderr, s.log, s.exited)
	} else {
		go collectLog(stderr, s.log)
	}
	s.port = s.readPort(stdout)
	s.addr = joinHostPort(cfg.host, s.port)
	return s
}

// hostile makes the server the hostile one of hostile_harness_test.go,
// its workers and key holder of uid.
func (s *server) hostile(uid int) {
	id := strconv.Itoa(uid)
	s.cmd.Path, s.cmd.Args[0] = itestBin, hostileArgv0
	s.cmd.Env = append(s.cmd.Env, "SSL_UID="+id, "SSL_GID="+id)
}

func serverArgs(cfg serverConfig) []string {
	// -H -l 0: no DNS at all; -v -V: every log line the tests read.
	args := append([]string{"-1", "-v", "-V", "-H", "-l", "0"}, cfg.flags...)
	port := cfg.port
	if port == "" {
		port = "0"
	}
	args = append(args, cfg.host, port)
	if cfg.program != nil {
		return append(args, cfg.program...)
	}
	return append(args, roleCommand(cfg.role, cfg.roleEnv...)...)
}

// noCgroupFiles keeps the Go runtime (1.25+) from holding the cgroup CPU
// files open, so a Go process's fds are only the ones it opened.
const noCgroupFiles = "GODEBUG=containermaxprocs=0,updatemaxprocs=0"

// roleCommand runs this test binary in a role. The role's variables go on
// the command line through env(1), so they reach it whatever environment
// sslserver builds.
func roleCommand(role string, env ...string) []string {
	cmd := []string{"/usr/bin/env", roleVar + "=" + role, noCgroupFiles}
	cmd = append(cmd, env...)
	return append(cmd, itestBin)
}

func serverEnv(t testing.TB, cfg serverConfig) []string {
	var env []string
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); !isServerOnly(name) && !isSessionVar(name) {
			env = append(env, kv)
		}
	}
	if cfg.keyInCert {
		env = append(env, "CERTFILE="+cfg.cert.combinedPath(t), "KEYFILE=")
	} else {
		env = append(env, "CERTFILE="+cfg.cert.certPath, "KEYFILE="+cfg.cert.keyPath)
	}
	return append(env, cfg.env...)
}

// isSessionVar: names sslserver sets for a session (SSL_*, TCP*, ...) or
// the tests do; left out of sslserver's environment so that whatever the
// program sees of them came from sslserver.
func isSessionVar(name string) bool {
	for _, p := range []string{"SSL", "TCP", "PROTO", "UCSPITLS", "ITEST_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func isServerOnly(name string) bool {
	for _, v := range serverOnlyVars {
		if name == v || strings.HasPrefix(name, v+":") {
			return true
		}
	}
	return false
}

// pipe makes a pipe; the read end is closed at cleanup.
func (s *server) pipe() (r, w *os.File) {
	r, w, err := os.Pipe()
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { r.Close() })
	return r, w
}

// readPort reads the line -1 prints, then drains stdout.
func (s *server) readPort(stdout *os.File) int {
	s.t.Helper()
	lines := make(chan string, 1)
	go readFirstLine(stdout, lines)
	select {
	case line := <-lines:
		port, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil || port <= 0 || port > 65535 {
			s.t.Fatalf("sslserver -1 printed %q, want a port number", line)
		}
		return port
	case <-s.exited:
		s.t.Fatalf("sslserver exited before printing its port: %v\n%s", s.exitErr, s.log.text())
	case <-time.After(waitTime):
		s.t.Fatalf("sslserver printed no port within %v\n%s", waitTime, s.log.text())
	}
	return 0
}

func readFirstLine(f *os.File, lines chan<- string) {
	r := bufio.NewReader(f)
	line, _ := r.ReadString('\n')
	lines <- line
	r.WriteTo(io.Discard)
}

func (s *server) waitExit() {
	s.exitErr = s.cmd.Wait()
	close(s.exited)
}

// stop ends the server with SIGTERM (SIGKILL to its group after
// waitTime), then kills anything left in its process group or of the
// processes it had started; a process left behind by a server that
// exited by itself is a leak and an error. Its children are looked for
// by parent before it ends: each runs in a session and process group of
// its own.
func (s *server) stop() {
	started := descendants(s.pid)
	if s.terminate() {
		if left := waitGroupEmpty(s.pid, 2*time.Second); len(left) > 0 {
			s.t.Errorf("processes left in sslserver's group after it exited: %v", describePIDs(left))
		}
		if left := waitGone(started, 2*time.Second); len(left) > 0 {
			s.t.Errorf("processes sslserver started left after it exited: %v", describePIDs(left))
		}
	}
	syscall.Kill(-s.pid, syscall.SIGKILL)
	for _, p := range started {
		syscall.Kill(p, syscall.SIGKILL)
	}
	if s.t.Failed() {
		s.t.Logf("sslserver %q log:\n%s", s.cmd.Args, s.log.text())
	}
}

// terminate sends SIGTERM and reports whether the server then exited by
// itself; after waitTime it kills the whole group.
func (s *server) terminate() bool {
	select {
	case <-s.exited:
		return true
	default:
	}
	syscall.Kill(s.pid, syscall.SIGTERM)
	select {
	case <-s.exited:
		return true
	case <-time.After(waitTime):
		s.t.Logf("sslserver did not exit within %v of SIGTERM; killing its group", waitTime)
		syscall.Kill(-s.pid, syscall.SIGKILL)
		<-s.exited
		return false
	}
}

// waitGroupEmpty returns the members of process group pgid still there
// after up to d.
func waitGroupEmpty(pgid int, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		left := liveGroupMembers(pgid)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGone returns those of pids still running (not zombies) after up
// to d.
func waitGone(pids []int, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		var left []int
		for _, p := range pids {
			if st, err := readStat(p); err == nil && st.state != "Z" {
				left = append(left, p)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// descendants lists pid's children, theirs, and so on.
func descendants(pid int) []int {
	var out []int
	for _, c := range children(pid) {
		out = append(out, c)
		out = append(out, descendants(c)...)
	}
	return out
}

// logBook collects sslserver's stderr lines (its own and its programs').
type logBook struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line
	closed  bool
}

func newLogBook() *logBook { return &logBook{changed: make(chan struct{})} }

func collectLog(f *os.File, b *logBook) {
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		b.add(sc.Text())
	}
	b.close()
}

func (b *logBook) add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, line)
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *logBook) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *logBook) snapshot() ([]string, <-chan struct{}, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.lines...), b.changed, b.closed
}

func (b *logBook) text() string {
	lines, _, _ := b.snapshot()
	return strings.Join(lines, "\n")
}

// matches returns the submatches of every line matching re so far.
func (b *logBook) matches(re *regexp.Regexp) [][]string {
	lines, _, _ := b.snapshot()
	var out [][]string
	for _, l := range lines {
		if m := re.FindStringSubmatch(l); m != nil {
			out = append(out, m)
		}
	}
	return out
}

// wait returns the submatches of the first line matching re, waiting up
// to d for it; nil when none came.
func (b *logBook) wait(re *regexp.Regexp, d time.Duration) []string {
	deadline := time.After(d)
	for {
		lines, changed, closed := b.snapshot()
		for _, l := range lines {
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		}
		if closed {
			return nil
		}
		select {
		case <-changed:
		case <-deadline:
			return nil
		}
	}
}

// waitLog is wait that fails the test when no line matches.
func (s *server) waitLog(t testing.TB, re *regexp.Regexp) []string {
	t.Helper()
	m := s.log.wait(re, waitTime)
	if m == nil {
		t.Fatalf("no log line matching %q within %v; log:\n%s", re, waitTime, s.log.text())
	}
	return m
}

// sessionPID finds the session (worker) pid from the "ok" line that ends
// in the client's port.
func (s *server) sessionPID(t testing.TB, clientPort int) int {
	t.Helper()
	re := regexp.MustCompile(`^sslserver: ok (\d+) \S+ \S*:` + strconv.Itoa(clientPort) + `$`)
	pid, _ := strconv.Atoi(s.waitLog(t, re)[1])
	return pid
}

// waitEnd returns the status in "end PID status S".
func (s *server) waitEnd(t testing.TB, pid int) int {
	t.Helper()
	re := regexp.MustCompile(`^sslserver: end ` + strconv.Itoa(pid) + ` status (\d+)$`)
	status, _ := strconv.Atoi(s.waitLog(t, re)[1])
	return status
}

// keyHolder returns the pid of the server's key holder child.
func (s *server) keyHolder(t testing.TB) int {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for time.Now().Before(deadline) {
		for _, c := range children(s.pid) {
			if argv0(c) == "sslserver-keyholder" {
				return c
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no child of sslserver %d with argv[0] sslserver-keyholder; children: %v",
		s.pid, describePIDs(children(s.pid)))
	return 0
}

// waitChildren waits until the server's children are the key holder and
// idle pre-started workers only: every session's worker and program are
// gone and reaped, and the idle workers (which never served a session,
// so never appear in a "pid N from" line) are no more than the pool's
// default size.
func (s *server) waitChildren(t testing.TB) {
	t.Helper()
	kh := s.keyHolder(t)
	deadline := time.Now().Add(waitTime)
	for {
		bad := s.unexpectedChildren(kh)
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sslserver's children after the sessions ended: %v; unexpected: %v (want the key holder %d and at most %d idle workers)",
				describePIDs(children(s.pid)), describePIDs(bad), kh, defaultPrefork)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// defaultPrefork is sslserver's default SSL_PREFORK.
const defaultPrefork = 4

var sessionLine = regexp.MustCompile(`^sslserver: pid (\d+) from `)

// unexpectedChildren lists children that should be gone: anything that
// served a session, anything that is not a worker or the key holder, a
// zombie, or idle workers beyond the pool's size.
func (s *server) unexpectedChildren(kh int) []int {
	served := map[int]bool{}
	for _, line := range strings.Split(s.log.text(), "\n") {
		if m := sessionLine.FindStringSubmatch(line); m != nil {
			pid, _ := strconv.Atoi(m[1])
			served[pid] = true
		}
	}
	var bad, idle []int
	for _, c := range children(s.pid) {
		st, err := readStat(c)
		switch {
		case c == kh && err == nil && st.state != "Z":
		case err == nil && st.state != "Z" && argv0(c) == "sslserver-tlsworker" && !served[c]:
			idle = append(idle, c)
		default:
			bad = append(bad, c)
		}
	}
	if len(idle) > defaultPrefork {
		bad = append(bad, idle...)
	}
	return bad
}

// procStat holds the fields of /proc/PID/stat the tests use.
type procStat struct {
	state               string
	ppid, pgrp, session int
	tty                 int // the controlling terminal's device number; 0: none
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 5 {
		return procStat{}, fmt.Errorf("malformed /proc/%d/stat: %q", pid, b)
	}
	n := make([]int, 5)
	for j := 1; j < 5; j++ {
		n[j], _ = strconv.Atoi(f[j])
	}
	return procStat{state: f[0], ppid: n[1], pgrp: n[2], session: n[3], tty: n[4]}, nil
}

// allPIDs lists the processes in /proc matching keep.
func allPIDs(keep func(procStat) bool) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil && keep(st) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// children lists pid's children, zombies included.
func children(pid int) []int {
	return allPIDs(func(st procStat) bool { return st.ppid == pid })
}

// liveGroupMembers lists the processes of group pgid that still run.
// (Zombies are left out: once sslserver has exited, its orphans' zombies
// are reaped by whoever adopted them, on their schedule.)
func liveGroupMembers(pgid int) []int {
	return allPIDs(func(st procStat) bool { return st.pgrp == pgid && st.state != "Z" })
}

// argv0 is the first NUL-terminated word of /proc/PID/cmdline.
func argv0(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	a, _, _ := strings.Cut(string(b), "\x00")
	return a
}

func describePIDs(pids []int) []string {
	var out []string
	for _, p := range pids {
		st, _ := readStat(p)
		out = append(out, fmt.Sprintf("%d(%s,%s)", p, argv0(p), st.state))
	}
	return out
}

// procStatus parses /proc/PID/status into its fields.
func procStatus(t testing.TB, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading status of %d: %v", pid, err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}
