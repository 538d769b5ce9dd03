package integration

// Protocol attacks of a hostile worker (hostile_harness_test.go) on a
// real supervisor.

import (
	"crypto/tls"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/internal/testutil"
)

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
	uid := hostileUID(t)
	s := startServer(t, serverConfig{hostile: uid, flags: []string{"-s"}, role: "echo", env: []string{"SSL_PREFORK=0"}})
	s.goodSession(t, "before the attacks")
	baseline := settledFDs(t, s.pid)
	for _, c := range attackCases {
		end := setPlan(t, uid, c.plan)
		before := s.countLog(regexp.MustCompile(`^sslserver: end \d+ status 111$`))
		hostileSession(t, s)
		m := s.waitLog(t, regexp.MustCompile(`^sslserver: warning: `+c.warning))
		if len(m) > 1 && !processGoneWithin(m[1], waitTime) {
			t.Errorf("%s: worker %s still runs after its attack", c.plan, m[1])
		}
		if len(m) > 1 {
			s.waitCount(t, regexp.MustCompile(`^sslserver: end \d+ status 111$`), before+1)
		}
		end()
		s.goodSession(t, "after "+c.plan)
	}
	for _, l := range strings.Split(s.log.text(), "\n") {
		if len(l) > 400 {
			t.Errorf("a log line of %d bytes: %.100q...", len(l), l)
		}
	}
	n := testutil.FdsDownTo(t, s.pid, baseline, waitTime)
	t.Logf("supervisor descriptors: %d before the attacks, %d after", baseline, n)
	if n > baseline {
		t.Errorf("the supervisor has %d descriptors open after the attacks, %d before", n, baseline)
	}
	s.waitChildren(t)
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
