package supervisor

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/acl"
)

// With -h and a DNS server that never answers, under -c 2 and a per-IP
// limit of 1: the worker has the session and finishes its handshake
// while the lookup waits, the program waits for the lookup, a second
// client from the same address is refused by the limit at once (before
// any lookup: DNS hears one question only), and once the lookup gives
// up its timeout is logged once and the program starts.
func TestAdmissionLookupRunsBesideTheHandshake(t *testing.T) {
	d := startFakeDNS(t, true)
	useDNS(t, d).dnsTimeout = time.Second
	h := newServer(t, spawnerWith(goodWorker, programUntilTold), "-v", "-h", "-c", "2")
	h.srv.perIP.limit = 1
	h.start()
	start := time.Now()
	h.dial()
	fs := h.session()
	h.waitLine(fmt.Sprintf("sslserver: tls %d accept", fs.proc.pid))
	h.none(h.sp.programs, "program", 100*time.Millisecond)

	c2 := h.dial()
	h.waitLine("sslserver: warning: dropping connection from 127.0.0.1, per-IP limit of 1 reached")
	c2.SetDeadline(time.Now().Add(waitLimit))
	if n, err := io.ReadAll(c2); err != nil || len(n) != 0 {
		t.Errorf("the refused client read %q, %v; want EOF", n, err)
	}
	if took := time.Since(start); took >= time.Second {
		t.Errorf("the refusal came %v after the first client, not before its lookup ended", took)
	}
	if q := d.questions(); len(q) != 1 {
		t.Errorf("DNS was asked %v; want one PTR question, for the first client only", q)
	}

	p := h.program()
	if took := time.Since(start); took < time.Second {
		t.Errorf("the program started %v after connecting, before the lookup's bound", took)
	}
	h.waitLineCount("sslserver: DNS lookup for 127.0.0.1 timed out after 1s", 1)
	p.exit <- ExitState{}
	h.waitLine(fmt.Sprintf("sslserver: end %d status 0", fs.proc.pid))
	if n := h.countLines("sslserver: DNS lookup for 127.0.0.1 timed out after 1s"); n != 1 {
		t.Errorf("%d timeout lines, want 1", n)
	}
}

// writeRules compiles tcprules source into a cdb file and returns its
// path.
func writeRules(t *testing.T, source string) string {
	t.Helper()
	rules, err := acl.ParseRules(strings.NewReader(source))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := acl.Compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	b, err := acl.MakeCDB(recs)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rules.cdb")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Under -h, the MAXCONIP of the -x rule the address matches by itself is
// applied before the lookup: while one client waits for a silent DNS, a
// second from its address is refused at once.
func TestAdmissionAddressRuleLimitBeforeLookup(t *testing.T) {
	d := startFakeDNS(t, true)
	useDNS(t, d).dnsTimeout = 2 * time.Second
	rules := writeRules(t, "127.0.0.1:allow,MAXCONIP=\"1\"\n")
	h := newServer(t, spawnerWith(goodWorker, programUntilTold), "-v", "-h", "-x", rules).start()
	start := time.Now()
	h.dial()
	h.session()
	h.dial()
	h.waitLine("sslserver: warning: dropping connection from 127.0.0.1, per-IP limit of 1 reached")
	if took := time.Since(start); took >= 2*time.Second {
		t.Errorf("the refusal came %v after the first client, not before its lookup ended", took)
	}
	h.program().exit <- ExitState{}
}

// A -x rule keyed by the host name applies once the lookup is done: the
// worker, which had the session, is killed, the deny line names it, the
// end line says 100, and no program starts.
func TestAdmissionNameRuleDenyKillsTheWorker(t *testing.T) {
	d := startFakeDNS(t, false)
	useDNS(t, d)
	d.ptr("127.0.0.1", "evil.example.net.")
	rules := writeRules(t, "=evil.example.net:deny\n")
	h := newServer(t, spawnerWith(goodWorker, programUntilTold), "-v", "-h", "-x", rules).start()
	c := h.dial()
	fs := h.session()
	sport, cport := ports(c)
	h.waitLine(fmt.Sprintf("sslserver: deny %d :127.0.0.1:%d evil.example.net:127.0.0.1::%d", fs.proc.pid, sport, cport))
	h.waitLine(fmt.Sprintf("sslserver: end %d status 100", fs.proc.pid))
	waitDone(t, fs.proc, "worker")
	if !slices.Contains(fs.proc.gotSignals(), os.Signal(syscall.SIGKILL)) {
		t.Errorf("the worker got %v, want SIGKILL", fs.proc.gotSignals())
	}
	h.none(h.sp.programs, "program", 200*time.Millisecond)
	c.SetDeadline(time.Now().Add(waitLimit))
	if n, err := io.ReadAll(c); err != nil || len(n) != 0 {
		t.Errorf("the denied client read %q, %v; want EOF", n, err)
	}
}
