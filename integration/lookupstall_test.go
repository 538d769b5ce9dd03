package integration

// Lookups never stall a handshake: a -x rule that needs the client's
// name is applied once the lookups are done, and a lost DNS datagram
// costs about a second.

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"
)

// A rule that denies by =host applies after the PTR lookup, under -N
// (where the worker was handed the session first) and -n: the client
// gets the connection closed with nothing sent, the deny line names
// the host and the session's worker, and the program (which would
// create a marker file) never runs. A client the rule does not match
// runs it, so the marker's absence means something.
func TestNameRuleDeniesAfterLookup(t *testing.T) {
	for i, mode := range []string{"-N", "-n"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			evil, good := "127.77.2."+strconv.Itoa(2*i+1), "127.77.2."+strconv.Itoa(2*i+2)
			dns := startDNS(t)
			dns.ptr(evil, "evil.example.net.")
			dns.ptr(good, "good.example.net.")
			dir := t.TempDir()
			rules, marker := filepath.Join(dir, "rules.cdb"), filepath.Join(dir, "ran")
			compileRules(t, rules, "=evil.example.net:deny\n")
			s := startServer(t, serverConfig{flags: []string{mode, "-h", "-x", rules}, env: []string{dns.cacheVar()},
				program: []string{"/usr/bin/touch", marker}})

			c := s.dialFrom(t, evil)
			expectClosed(t, c)
			deny := regexp.MustCompile(`^sslserver: deny (\d+) \S+ ` + regexp.QuoteMeta(remoteText(c, "evil.example.net", "")) + `$`)
			pid := s.waitLog(t, deny)[1]
			s.waitSeq(t, pidLines(evil), deny, regexp.MustCompile(`^sslserver: end `+pid+` status 100$`))
			if _, err := os.Stat(marker); err == nil {
				t.Fatalf("the program ran for the denied client; log:\n%s", s.log.text())
			}
			if n := s.countLog(okLineOf(c)); n != 0 {
				t.Errorf("%d ok lines for the denied client", n)
			}

			g := s.dialFrom(t, good)
			var r io.Reader = g
			if mode == "-N" {
				r = s.startTLS(t, g, nil)
			}
			io.ReadAll(r)
			if status := s.waitEnd(t, s.waitOK(t, g, "good.example.net", "")); status != 0 {
				t.Errorf("the allowed session ended with status %d", status)
			}
			if _, err := os.Stat(marker); err != nil {
				t.Errorf("the program did not run for the allowed client: %v", err)
			}
			s.waitChildren(t)
		})
	}
}

// Under load, with a DNS server that loses one query in 20, no session
// fails: 16 clients at once (from 16 addresses, each looked up) run
// 2,000 sessions (200 with -short). A lost query costs 1 s, and the
// server never loses the same question twice in a row, so a lookup
// costs 1 s at most; each client gives a session 4 s, less than one
// 5 s wait per query would cost (as it did before).
func TestLossyDNSUnderLoad(t *testing.T) {
	t.Parallel()
	const clients, clientTimeout = 16, 4 * time.Second
	sessions := 2000
	if testing.Short() {
		sessions = 200
	}
	dns := startDNS(t)
	dns.loseOneIn(20)
	var ips []string
	for i := range clients {
		ip := fmt.Sprintf("127.77.3.%d", i+1)
		dns.ptr(ip, fmt.Sprintf("client%d.example.net.", i+1))
		ips = append(ips, ip)
	}
	s := startServer(t, serverConfig{flags: []string{"-h", "-b", "64"}, env: []string{dns.cacheVar()},
		program: []string{"/bin/echo", "ok"}})
	r := loadRun{addr: s.addr, cfg: s.clientConfig(), n: sessions, timeout: clientTimeout, talk: readsOK}
	start := time.Now()
	var wg sync.WaitGroup
	for _, ip := range ips {
		wg.Add(1)
		go r.client(ip, &wg)
	}
	wg.Wait()
	failed := int(r.failed.Load())
	for _, f := range r.failures[:min(failed, 5)] {
		t.Error(f)
	}
	t.Logf("%d sessions, %d failed, %d DNS queries lost, in %v", sessions, failed, dns.lostCount(), time.Since(start).Round(time.Millisecond))
	if failed > 0 {
		t.Fatalf("%d of %d sessions failed", failed, sessions)
	}
	if dns.lostCount() == 0 {
		t.Error("the DNS server lost no query: the test proves nothing")
	}
	s.waitCount(t, regexp.MustCompile(`^sslserver: end \d+ status 0$`), sessions)
}

// readsOK: the program's "ok" and the end.
func readsOK(tc *tls.Conn) error {
	out, err := io.ReadAll(tc)
	if err != nil || string(out) != "ok\n" {
		return fmt.Errorf("read %q, %v", out, err)
	}
	return nil
}

// A silent IDENT responder (it accepts and never answers): the handshake
// is done while the lookup waits, the lookup gives up after -t with one
// -v line, and the session goes on without info.
func TestSilentIdentTimesOut(t *testing.T) {
	t.Parallel()
	const from = "127.77.2.9"
	ln := listenIdent(t, from)
	held := make(chan net.Conn, 16)
	go holdConns(ln, held)
	t.Cleanup(func() { ln.Close(); closeHeld(held) })
	s := startServer(t, serverConfig{flags: []string{"-r", "-t", "1"}, role: "env"})
	c := s.dialFrom(t, from)
	tc := s.startTLS(t, c, nil)
	pid, _ := strconv.Atoi(s.waitLog(t, regexp.MustCompile(`^sslserver: pid (\d+) from `+regexp.QuoteMeta(from)+`$`))[1])
	timeout := regexp.MustCompile(`^sslserver: IDENT lookup for ` + regexp.QuoteMeta(from) + ` timed out after 1s$`)
	s.waitSeq(t, regexp.MustCompile(`^sslserver: tls `+strconv.Itoa(pid)+` accept`), timeout, okLineOf(c))
	checkRemoteVars(t, s.readEnvTLS(t, tc, pid), "", "")
	if n := s.countLog(timeout); n != 1 {
		t.Errorf("%d IDENT timeout lines, want 1", n)
	}
	s.waitChildren(t)
}

// holdConns accepts connections and keeps them open, unanswered.
func holdConns(ln *net.TCPListener, held chan<- net.Conn) {
	for {
		c, err := ln.Accept()
		if err != nil {
			close(held)
			return
		}
		held <- c
	}
}

func closeHeld(held <-chan net.Conn) {
	for c := range held {
		c.Close()
	}
}
