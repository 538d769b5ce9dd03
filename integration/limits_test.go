package integration

// Limits: MAXCONIP (the server's, and a rule's per client) counted
// exactly per remote address, and -c counted exactly over all clients.

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// perIPWarning matches the refusal of a client from ip at limit.
func perIPWarning(ip string, limit int) *regexp.Regexp {
	return regexp.MustCompile(`^sslserver: warning: dropping connection from ` + regexp.QuoteMeta(ip) +
		`, per-IP limit of ` + strconv.Itoa(limit) + ` reached$`)
}

// expectPerIPRefused: a new client from ip is dropped with the per-IP
// warning, and no session is started for it.
func (s *server) expectPerIPRefused(t testing.TB, ip string, limit int) {
	t.Helper()
	warn := perIPWarning(ip, limit)
	n, pids := s.countLog(warn), s.countLog(pidLines(ip))
	c := s.dialFrom(t, ip)
	expectClosed(t, c)
	s.waitCount(t, warn, n+1)
	s.waitSeq(t, warn, statusLine)
	if got := s.countLog(pidLines(ip)); got != pids {
		t.Errorf("a session was started for the refused client from %s", ip)
	}
}

// MAXCONIP=2 for everyone, 1 for 127.0.0.3 by a rule: held sessions
// fill each address's quota, the next client from it is refused, and
// one session ending makes room for exactly one more.
func TestPerIPLimit(t *testing.T) {
	t.Parallel()
	rules := filepath.Join(t.TempDir(), "rules.cdb")
	compileRules(t, rules, "127.0.0.3:allow,MAXCONIP=\"1\"\n")
	s := startServer(t, serverConfig{flags: []string{"-x", rules}, env: []string{"MAXCONIP=2"}, role: "sleep"})
	limits := map[string]int{"127.0.0.1": 2, "127.0.0.2": 2, "127.0.0.3": 1}
	held := map[string][]heldSession{}
	for _, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.1", "127.0.0.3", "127.0.0.2"} {
		held[ip] = append(held[ip], s.holdFrom(t, ip))
	}
	for ip, limit := range limits {
		s.expectPerIPRefused(t, ip, limit)
	}
	s.endHeld(t, held["127.0.0.1"][0])
	held["127.0.0.1"][0] = s.holdFrom(t, "127.0.0.1")
	for ip, limit := range limits {
		s.expectPerIPRefused(t, ip, limit)
	}
	for ip, want := range map[string]int{"127.0.0.1": 3, "127.0.0.2": 2, "127.0.0.3": 1} {
		if got := s.countLog(pidLines(ip)); got != want {
			t.Errorf("%d sessions started for %s, want %d", got, ip, want)
		}
	}
	for _, hs := range held {
		for _, h := range hs {
			s.endHeld(t, h)
		}
	}
	s.waitChildren(t)
}

// burstResult is what one burst client saw.
type burstResult struct {
	ip       string
	admitted bool  // the handshake succeeded and the program said READY
	err      error // a failure that is neither admission nor refusal
}

// burstClient connects from ip; when admitted it holds the session for
// hold after READY, then closes it.
func burstClient(addr, ip string, cfg *tls.Config, hold time.Duration, results chan<- burstResult) {
	tc, err := handshakeFrom(addr, ip, cfg)
	if err != nil {
		results <- burstResult{ip: ip} // refused: the server closed the connection
		return
	}
	defer tc.Close()
	line, err := bufio.NewReader(tc).ReadString('\n')
	if err != nil {
		results <- burstResult{ip: ip, err: fmt.Errorf("admitted client from %s read %q: %w", ip, line, err)}
		return
	}
	time.Sleep(hold)
	results <- burstResult{ip: ip, admitted: true}
}

// burst runs perIP concurrent clients from each address and returns how
// many were admitted per address.
func burst(t testing.TB, s *server, ips []string, perIP int, hold time.Duration) map[string]int {
	t.Helper()
	results := make(chan burstResult)
	for i := 0; i < perIP; i++ {
		for _, ip := range ips {
			go burstClient(s.addr, ip, s.clientConfig(), hold, results)
		}
	}
	admitted := map[string]int{}
	for i := 0; i < perIP*len(ips); i++ {
		r := <-results
		if r.err != nil {
			t.Error(r.err)
		}
		if r.admitted {
			admitted[r.ip]++
		}
	}
	return admitted
}

// okLine matches the "ok" line: the session's pid and the client's address.
var okLine = regexp.MustCompile(`^sslserver: ok (\d+) \S+ [^:]*:([0-9.]+):[^:]*:\d+$`)

// maxConcurrent replays the log: a session runs from its "ok" line (the
// program has started) to its "end" line (both processes are reaped),
// inside the span the supervisor counts it. It returns the most sessions
// that ran at once per client address.
func maxConcurrent(lines []string) map[string]int {
	endRe := regexp.MustCompile(`^sslserver: end (\d+) `)
	running, peak, ipOf := map[string]int{}, map[string]int{}, map[string]string{}
	for _, l := range lines {
		if m := okLine.FindStringSubmatch(l); m != nil {
			ipOf[m[1]] = m[2]
			running[m[2]]++
			peak[m[2]] = max(peak[m[2]], running[m[2]])
		} else if m := endRe.FindStringSubmatch(l); m != nil && ipOf[m[1]] != "" {
			running[ipOf[m[1]]]--
			delete(ipOf, m[1])
		}
	}
	return peak
}

// MAXCONIP=3 under a burst of 30 concurrent clients from three
// addresses: never more than 3 sessions of one address at once, every
// refusal logged, and once all have ended the counts are back at zero,
// so 3 held sessions per address are admitted again.
func TestPerIPBurst(t *testing.T) {
	t.Parallel()
	const limit, perIP = 3, 10
	ips := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}
	s := startServer(t, serverConfig{flags: []string{"-b", "64"}, env: []string{"MAXCONIP=" + strconv.Itoa(limit)}, role: "sleep"})
	admitted := burst(t, s, ips, perIP, 500*time.Millisecond)
	waitBurstEnd(t, s, admitted, perIP*len(ips))
	checkBurst(t, s, ips, admitted, limit, perIP)
	var held []heldSession
	for i := 0; i < limit; i++ {
		for _, ip := range ips {
			held = append(held, s.holdFrom(t, ip))
		}
	}
	for _, h := range held {
		s.endHeld(t, h)
	}
	s.waitChildren(t)
}

// waitBurstEnd waits until every admitted session has ended and the
// supervisor has logged every connection's status lines.
func waitBurstEnd(t testing.TB, s *server, admitted map[string]int, clients int) {
	t.Helper()
	total := 0
	for _, n := range admitted {
		total += n
	}
	s.waitCount(t, okLine, total)
	s.waitCount(t, regexp.MustCompile(`^sslserver: end \d+ status 0$`), total)
	// One status line at start and two per connection: then all are done.
	last := s.waitCount(t, regexp.MustCompile(`^sslserver: status: (\d+)/40$`), 1+2*clients)
	if n := last[len(last)-1][1]; n != "0" {
		t.Errorf("last status line %q after every connection ended, want 0/40", last[len(last)-1][0])
	}
}

// checkBurst: per address, exactly limit sessions ran at once at the
// peak, some clients were refused, and the log accounts for every client.
func checkBurst(t testing.TB, s *server, ips []string, admitted map[string]int, limit, perIP int) {
	t.Helper()
	lines, _, _ := s.log.snapshot()
	peak := maxConcurrent(lines)
	for _, ip := range ips {
		n := admitted[ip]
		refused := s.countLog(perIPWarning(ip, limit))
		oks := s.countLog(regexp.MustCompile(`^sslserver: ok \d+ \S+ :` + regexp.QuoteMeta(ip) + `:`))
		t.Logf("%s: %d admitted, %d refused, at most %d at once", ip, n, refused, peak[ip])
		switch {
		case peak[ip] != limit:
			t.Errorf("%s: at most %d sessions ran at once, want exactly the limit %d", ip, peak[ip], limit)
		case refused == 0:
			t.Errorf("%s: no client refused among %d concurrent ones", ip, perIP)
		case n+refused != perIP || oks != n:
			t.Errorf("%s: %d clients admitted, %d sessions logged, %d refusals logged, want %d in all",
				ip, n, oks, refused, perIP)
		}
	}
}

// -c n: n held sessions fill every slot; the next client's handshake
// waits (sslserver does not accept it) until one of them ends, and the
// status lines never go above n.
func TestConnectionLimitExact(t *testing.T) {
	for _, limit := range []int{2, 3} {
		t.Run(fmt.Sprintf("-c %d", limit), func(t *testing.T) {
			t.Parallel()
			s := startServer(t, serverConfig{flags: []string{"-c", strconv.Itoa(limit)}, role: "sleep"})
			var held []heldSession
			for i := 0; i < limit; i++ {
				held = append(held, s.holdFrom(t, "127.0.0.1"))
			}
			raw := s.dialTCP(t)
			extra := tls.Client(raw, s.clientConfig())
			done := make(chan error, 1)
			go handshakeAsync(extra, done)
			select {
			case err := <-done:
				t.Fatalf("handshake %d finished (%v) with all %d slots taken", limit+1, err, limit)
			case <-time.After(time.Second):
			}
			if n := s.countLog(okLine); n != limit {
				t.Fatalf("%d sessions started with -c %d, want %d", n, limit, limit)
			}
			s.endHeld(t, held[0])
			if err := <-done; err != nil {
				t.Fatalf("handshake %d after a slot was freed: %v", limit+1, err)
			}
			held[0] = heldSession{conn: extra, worker: s.sessionPIDFrom(t, "127.0.0.1", localPort(raw))}
			held[0].prog = readReady(t, extra)
			checkStatusLines(t, s, limit)
			for _, h := range held {
				s.endHeld(t, h)
			}
			checkStatusLines(t, s, limit)
			s.waitChildren(t)
		})
	}
}

// checkStatusLines: "status: n/limit" reached the limit and never went
// past it.
func checkStatusLines(t testing.TB, s *server, limit int) {
	t.Helper()
	top := 0
	for _, m := range s.log.matches(regexp.MustCompile(`^sslserver: status: (\d+)/(\d+)$`)) {
		n, _ := strconv.Atoi(m[1])
		if m[2] != strconv.Itoa(limit) {
			t.Errorf("status line %q, want the maximum %d", m[0], limit)
		}
		top = max(top, n)
	}
	if top != limit {
		t.Errorf("status lines went up to %d, want exactly %d", top, limit)
	}
}
