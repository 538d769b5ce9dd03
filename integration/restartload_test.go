package integration

// Restarts under load: the key holder killed once and a few idle
// workers killed while clients keep connecting. A client may lose its
// session only to the death of the worker that served it.

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// loadPlan is the load and when to kill what, by sessions finished.
type loadPlan struct {
	sessions, clients int
	keyHolderAt       int   // kill the key holder once this many are done
	workersAt         []int // kill an idle worker at each of these
	budget            time.Duration
}

func restartPlan() loadPlan {
	if testing.Short() {
		return loadPlan{sessions: 300, clients: 8, keyHolderAt: 60, workersAt: []int{100, 150, 200}, budget: 20 * time.Second}
	}
	return loadPlan{sessions: 2000, clients: 16, keyHolderAt: 300, workersAt: []int{500, 700, 900, 1100}, budget: 45 * time.Second}
}

// loadRun is clients that run sessions back to back, n in all, and what
// they saw.
type loadRun struct {
	addr         string
	cfg          *tls.Config
	n            int
	timeout      time.Duration         // for each session, from its connect
	talk         func(*tls.Conn) error // a session's exchange with the program
	done, failed atomic.Int32
	mu           sync.Mutex
	failures     []string // "from:port: error"
	stop         atomic.Bool
}

// client runs sessions from src ("": any local address) one after
// another until n are started in all, or the run is stopped.
func (r *loadRun) client(src string, wg *sync.WaitGroup) {
	defer wg.Done()
	for !r.stop.Load() && int(r.done.Add(1)) <= r.n {
		if port, err := r.session(src); err != nil {
			r.fail(src, port, err)
		}
	}
}

func (r *loadRun) session(src string) (port int, err error) {
	start := time.Now()
	c, err := dialFromAddr(r.addr, src)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(start.Add(r.timeout))
	if err := r.talk(tls.Client(c, r.cfg)); err != nil {
		return localPort(c), fmt.Errorf("after %v: %w", time.Since(start).Round(time.Millisecond), err)
	}
	return localPort(c), nil
}

func (r *loadRun) fail(src string, port int, err error) {
	r.failed.Add(1)
	r.mu.Lock()
	r.failures = append(r.failures, fmt.Sprintf("%s:%d: %v", src, port, err))
	r.mu.Unlock()
}

// echoesPing: the handshake, then a line echoed by cat.
func echoesPing(tc *tls.Conn) error {
	if err := tc.Handshake(); err != nil {
		return err
	}
	if _, err := io.WriteString(tc, "ping\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(tc).ReadString('\n')
	if err != nil || line != "ping\n" {
		return fmt.Errorf("echo %q: %v", line, err)
	}
	return nil
}

// TestRestartsUnderLoad: while clients run sessions back to back, the
// key holder is killed once and a few idle workers are killed. No
// session is dropped or fails for the key holder's restart (new sessions
// wait for the new key holder, handshakes in progress get a channel to
// it); only a session whose worker was killed while it served it may
// fail.
func TestRestartsUnderLoad(t *testing.T) {
	plan := restartPlan()
	s := startServer(t, serverConfig{program: []string{"/bin/cat"}, flags: []string{"-c", "64"}})
	r := loadRun{addr: s.addr, cfg: s.clientConfig(), n: plan.sessions, timeout: waitTime, talk: echoesPing}
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < plan.clients; i++ {
		wg.Add(1)
		go r.client("", &wg)
	}
	killed := killDuringLoad(t, s, plan, &r)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(plan.budget):
		r.stop.Store(true)
		<-finished
		t.Errorf("%d sessions in %v: the load did not finish in its budget", r.done.Load(), plan.budget)
	}
	took := time.Since(start)
	served := servedPIDs(s)
	busy := 0
	for _, pid := range killed.workers {
		if served[pid] {
			busy++
		}
	}
	t.Logf("%d sessions, %d clients, %v; key holder killed at %v; %d idle workers killed, %d of them given a session meanwhile; %d sessions failed",
		plan.sessions, plan.clients, took.Round(time.Millisecond), killed.keyHolderAt.Round(time.Millisecond),
		len(killed.workers), busy, r.failed.Load())
	if int(r.failed.Load()) > busy {
		t.Errorf("%d sessions failed, more than the %d killed workers that served one:\n%s", r.failed.Load(), busy, strings.Join(r.failures, "\n"))
	}
	for _, bad := range []string{"dropping connection", "key holder is not running", "unable to give TLS worker", "broke the protocol"} {
		if n := strings.Count(s.log.text(), bad); n > 0 {
			t.Errorf("%d log lines with %q", n, bad)
		}
	}
	s.waitLog(t, regexp.MustCompile(`^sslserver: keyholder pid \d+$`))
	if n := s.countLog(regexp.MustCompile(`^sslserver: keyholder pid \d+$`)); n != 2 {
		t.Errorf("%d key holders started, want 2", n)
	}
}

// killed is what killDuringLoad killed.
type killed struct {
	keyHolderAt time.Duration
	workers     []int
}

// killDuringLoad kills the key holder and idle workers as plan says,
// going by the sessions started so far.
func killDuringLoad(t *testing.T, s *server, plan loadPlan, r *loadRun) killed {
	t.Helper()
	var k killed
	start := time.Now()
	waitDone := func(n int) bool {
		for int(r.done.Load()) < n {
			if r.stop.Load() || time.Since(start) > plan.budget {
				return false
			}
			time.Sleep(2 * time.Millisecond)
		}
		return true
	}
	if !waitDone(plan.keyHolderAt) {
		t.Fatal("the load ended before the key holder was killed")
	}
	if err := syscall.Kill(s.keyHolder(t), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	k.keyHolderAt = time.Since(start)
	for _, at := range plan.workersAt {
		if !waitDone(at) {
			t.Fatal("the load ended before every idle worker was killed")
		}
		if pid := idleWorker(s); pid > 0 && syscall.Kill(pid, syscall.SIGKILL) == nil {
			k.workers = append(k.workers, pid)
		}
	}
	if len(k.workers) == 0 {
		t.Error("no idle worker was found to kill")
	}
	return k
}

// idleWorker is the newest worker child of the server that has not
// been given a session (as far as the log says yet), or 0: the newest
// is the likeliest to be still starting or idle.
func idleWorker(s *server) int {
	served := servedPIDs(s)
	newest := 0
	for _, c := range children(s.pid) {
		if argv0(c) == "sslserver-tlsworker" && !served[c] && c > newest {
			newest = c
		}
	}
	return newest
}

func servedPIDs(s *server) map[int]bool {
	served := map[int]bool{}
	for _, m := range s.log.matches(sessionLine) {
		pid, _ := strconv.Atoi(m[1])
		served[pid] = true
	}
	return served
}
