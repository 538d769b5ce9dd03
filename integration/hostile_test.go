package integration

// A hostile TLS worker, as a real process under a real supervisor: the
// test runs this test binary as sslserver (argv[0] attackedArgv0), so
// the workers it re-executes through /proc/self/exe are this binary
// too, with argv[0] sslserver-tlsworker. Such a worker reads the plan
// file next to the binary when it starts: an attack it names is made on
// the supervisor; anything else ("good") runs the real worker.

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/env"
	"github.com/ucspi-tls/sslserver/protocol"
	"github.com/ucspi-tls/sslserver/supervisor"
)

const attackedArgv0 = "sslserver-under-attack"

// runUnderAttack runs the roles of an attacked sslserver; false when
// this process is none of them. A worker is hostile when the plan names
// an attack; otherwise it is left to runConfinedRole, whose workers have
// the same argv[0].
func runUnderAttack() (int, bool) {
	switch {
	case os.Args[0] == attackedArgv0:
		return supervisor.Main(os.Args[1:], os.Stdout, os.Stderr), true
	case os.Args[0] == protocol.WorkerArgv0 && attackPlan() != "":
		return hostileWorker(), true
	}
	return 0, false
}

// attackPlan is the plan next to this binary when it names an attack;
// "" for none (or "good").
func attackPlan() string {
	exe, _ := os.Executable()
	plan, _ := os.ReadFile(planPath(filepath.Dir(exe)))
	p := string(plan)
	if _, known := hostileBlocks[p]; known || strings.HasPrefix(p, "keys") || p == "tickets" {
		return p
	}
	return ""
}

// planPath is the plan file next to itestBin, which a worker knows as
// its own executable.
func planPath(dir string) string { return filepath.Join(dir, "hostile-plan") }

// hostileBlocks are SSL_* reports no real worker makes.
var hostileBlocks = map[string]string{
	"sslcertfile": "SSL_PROTOCOL=TLSv1.3\x00SSL_CERT_FILE=/tmp/evil.pem\x00\x00",
	"ldpreload":   "LD_PRELOAD=/tmp/evil.so\x00\x00",
	"equals":      "SSL_=CERT_DIR=/tmp\x00\x00",
	"nul":         "SSL_CERT\x00_FILE=/tmp/evil.pem\x00\x00",
	"oversized":   "SSL_CLIENT_S_DN=" + strings.Repeat("a", env.MaxTLSValue+1) + "\x00\x00",
	"newline":     "SSL_CLIENT_S_DN_CN=a\nRELAYCLIENT=\x00\x00",
	"toomany":     strings.Repeat("SSL_CLIENT_SAN_DNS_0=x\x00", env.MaxTLSVars+1) + "\x00",
}

// hostileWorker plays the plan, then waits to be killed.
func hostileWorker() int {
	plan := attackPlan()
	sup, err := protocol.NewChannel(os.NewFile(protocol.WorkerFdSupervisor, "supervisor"), protocol.SupervisorOrders)
	if err != nil {
		return 111
	}
	if _, _, err := sup.Recv(); err != nil { // the configuration
		return 111
	}
	if string(plan) != "keys-before-ready" {
		sup.Send(&protocol.WorkerReady{Seccomp: true}) // a lie the supervisor cannot check
		m, _, err := sup.Recv()                        // the session
		if err != nil {
			return 111
		}
		if string(plan) != "keys-before-taken" {
			sup.Send(&protocol.SessionTaken{Seq: m.(*protocol.Session).Seq})
		}
	}
	playAttack(sup, string(plan))
	time.Sleep(roleDeadline)
	return 111
}

func playAttack(sup *protocol.Channel, plan string) {
	if plan == "tickets" {
		probeTickets()
		return
	}
	if block, ok := hostileBlocks[plan]; ok {
		sup.Send(&protocol.HandshakeDone{Protocol: "TLSv1.3", Cipher: "TLS_AES_128_GCM_SHA256", Block: []byte(block)})
		return
	}
	// keys, keys-before-taken, keys-before-ready: the most descriptors a
	// message carries.
	files := make([]*os.File, protocol.MaxKeyFiles)
	for i := range files {
		files[i], _ = os.Open(os.DevNull)
	}
	sup.Send(&protocol.Keys{Count: protocol.MaxKeyFiles, UID: 1, GID: 1, Root: "/x"}, files...)
}

// attackCase is one attack and the supervisor's warning about it.
type attackCase struct {
	plan    string
	warning string // a regexp; (\d+) is the worker's pid where there is one
}

var attackCases = []attackCase{
	{"sslcertfile", `TLS worker (\d+) broke the protocol: handshake report: variable "SSL_CERT_FILE": not a name TLS makes$`},
	{"ldpreload", `TLS worker (\d+) broke the protocol: handshake report: variable "LD_PRELOAD": not a name TLS makes$`},
	{"equals", `TLS worker (\d+) broke the protocol: handshake report: variable "SSL_": not a name TLS makes$`},
	{"nul", `TLS worker (\d+) broke the protocol: message type 2: reply block entry without '='`},
	{"oversized", `TLS worker (\d+) broke the protocol: handshake report: variable "SSL_CLIENT_S_DN": value of 16385 bytes, more than 16384$`},
	{"newline", `TLS worker (\d+) broke the protocol: handshake report: variable "SSL_CLIENT_S_DN_CN": value with a newline$`},
	{"toomany", `TLS worker (\d+) broke the protocol: handshake report: 1025 variables, more than 1024$`},
	{"keys", `TLS worker (\d+) broke the protocol: message type 20 not accepted here \(64 files closed\)$`},
	{"keys-before-taken", `dropping connection from 127\.0\.0\.1, unable to start TLS worker: message type 20 not accepted here \(64 files closed\)$`},
	{"keys-before-ready", `dropping connection from 127\.0\.0\.1, unable to start TLS worker: worker \d+ did not get ready: message type 20 not accepted here \(64 files closed\)$`},
}

// TestHostileWorkerReports: under -N -s, each attack of a real hostile
// worker process ends its session (the worker killed, no program run),
// the supervisor serves the next session with a real worker, and once
// all is over it holds no more descriptors than before the attacks.
func TestHostileWorkerReports(t *testing.T) {
	needRoot(t)
	setAttack(t, "good")
	s := startServer(t, serverConfig{attacked: true, flags: []string{"-s"}, role: "echo", env: []string{"SSL_PREFORK=0"}})
	s.goodSession(t, "before the attacks")
	baseline := waitFdsSettle(t, s.pid, -1)
	for _, c := range attackCases {
		setAttack(t, c.plan)
		before := s.countLog(regexp.MustCompile(`^sslserver: end \d+ status 111$`))
		hostileSession(t, s)
		m := s.waitLog(t, regexp.MustCompile(`^sslserver: warning: `+c.warning))
		if len(m) > 1 && !processGoneWithin(m[1], waitTime) {
			t.Errorf("%s: worker %s still runs after its attack", c.plan, m[1])
		}
		if len(m) > 1 {
			s.waitCount(t, regexp.MustCompile(`^sslserver: end \d+ status 111$`), before+1)
		}
		setAttack(t, "good")
		s.goodSession(t, "after "+c.plan)
	}
	for _, l := range strings.Split(s.log.text(), "\n") {
		if len(l) > 400 {
			t.Errorf("a log line of %d bytes: %.100q...", len(l), l)
		}
	}
	n := waitFdsSettle(t, s.pid, baseline)
	t.Logf("supervisor descriptors: %d before the attacks, %d after", baseline, n)
	if n > baseline {
		t.Errorf("the supervisor has %d descriptors open after the attacks, %d before", n, baseline)
	}
	s.waitChildren(t)
}

func setAttack(t testing.TB, plan string) {
	t.Helper()
	if err := os.WriteFile(planPath(binDir), []byte(plan), 0o644); err != nil {
		t.Fatal(err)
	}
	// No plan outlives its test: later servers' workers are real ones.
	t.Cleanup(func() { os.WriteFile(planPath(binDir), []byte("good"), 0o644) })
}

// hostileSession is a client whose handshake a hostile worker never
// answers: it ends when the supervisor kills the worker.
func hostileSession(t testing.TB, s *server) {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.addr, waitTime)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTime))
	if err := tls.Client(c, s.clientConfig()).Handshake(); err == nil {
		t.Error("a hostile worker completed a handshake")
	}
}

// waitFdsSettle counts pid's descriptors until the count is at most
// want (want < 0: until it holds still), for up to waitTime.
func waitFdsSettle(t testing.TB, pid, want int) int {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	last := -1
	for {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Fatal(err)
		}
		n := len(ents)
		if want >= 0 && n <= want || want < 0 && n == last || time.Now().After(deadline) {
			return n
		}
		last = n
		time.Sleep(100 * time.Millisecond)
	}
}

func processGoneWithin(pid string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if _, err := os.Stat("/proc/" + pid); err != nil {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
