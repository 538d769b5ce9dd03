package integration

// The tcprules lookup vectors (acl/testdata/tcprules/lookups.tsv)
// through the real server: sslserver -x with the cdb fehcom's tcprules
// wrote, a client from the row's address, the row's host learnt by PTR
// from the test's DNS server and its IDENT info from the test's IDENT
// responder, and the verdict and environment the reference checker gave.
//
// Only rows whose remote IP is loopback can be played here: a client
// cannot connect from another address without a network namespace. The
// acl package's tests run every row through acl.Check, the function
// sslserver calls with the same IP, host and info, so the other rows are
// covered one step short of the socket.

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// vectorDir holds the tcprules vectors, in the acl package's testdata.
var vectorDir = filepath.Join("..", "acl", "testdata", "tcprules")

// lookupVector is one line of lookups.tsv.
type lookupVector struct {
	ip         netip.Addr
	host, info string // "" for the file's "-"
	deny       bool
	env        [][2]string // NAME, value in the rule's order
	line       string
}

func readLookupVectors(t testing.TB) []lookupVector {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(vectorDir, "lookups.tsv"))
	if err != nil {
		t.Fatalf("reading the vectors: %v", err)
	}
	var rows []lookupVector
	for _, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		if !strings.HasPrefix(line, "#") {
			rows = append(rows, parseLookupVector(t, line))
		}
	}
	return rows
}

func parseLookupVector(t testing.TB, line string) lookupVector {
	t.Helper()
	f := strings.Split(line, "\t")
	if len(f) != 6 || (f[3] != "allow" && f[3] != "deny") {
		t.Fatalf("malformed lookups.tsv line %q", line)
	}
	ip, err := netip.ParseAddr(f[0])
	if err != nil {
		t.Fatalf("lookups.tsv line %q: %v", line, err)
	}
	row := lookupVector{ip: ip, host: dashless(f[1]), info: dashless(f[2]), deny: f[3] == "deny", line: line}
	for _, nv := range strings.Split(f[4], ";") {
		if name, value, ok := strings.Cut(nv, "="); ok {
			row.env = append(row.env, [2]string{name, value})
		}
	}
	return row
}

func dashless(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

// ruleVarNames is every name some row's rule sets: a program must see
// those of its own row's rule and none of the others.
func ruleVarNames(rows []lookupVector) []string {
	seen := map[string]bool{}
	var names []string
	for _, r := range rows {
		for _, nv := range r.env {
			if !seen[nv[0]] {
				seen[nv[0]] = true
				names = append(names, nv[0])
			}
		}
	}
	return names
}

func TestLookupVectorsThroughServer(t *testing.T) {
	rows := readLookupVectors(t)
	names := ruleVarNames(rows)
	cdb, err := filepath.Abs(filepath.Join(vectorDir, "rules.fehcom.cdb"))
	if err != nil {
		t.Fatal(err)
	}
	played := 0
	for _, row := range rows {
		if !row.ip.IsLoopback() {
			continue
		}
		played++
		t.Run(strings.ReplaceAll(row.line, "\t", " "), func(t *testing.T) {
			t.Parallel()
			playVector(t, cdb, row, names)
		})
	}
	if played == 0 {
		t.Fatal("lookups.tsv has no loopback rows to play")
	}
}

// playVector runs sslserver -x cdb on the row's loopback address and
// connects from it. A row with a host gets -h -p and a DNS server that
// names the client so (forward record included); one with info gets
// -r -t 2 and an IDENT responder that says so. DNSCACHEIP points at the
// test's DNS server in every case, so the machine's resolver is never
// asked.
func playVector(t *testing.T, cdb string, row lookupVector, names []string) {
	ip := row.ip.String()
	dns := startDNS(t)
	flags := []string{"-x", cdb}
	if row.host != "" {
		dns.ptr(ip, row.host+".")
		dns.forward(row.host, ip)
		flags = append(flags, "-h", "-p")
	}
	var ident *identServer
	if row.info != "" {
		ident = useIdent(t, ip)
		flags = append(flags, "-r", "-t", "2")
	}
	s := startServer(t, serverConfig{host: ip, flags: flags, env: []string{dns.cacheVar()}, role: "env"})
	c := s.dialFrom(t, ip)
	if ident != nil {
		ident.owns(localPort(c), row.info)
	}
	if row.deny {
		s.expectVectorDeny(t, c, row)
	} else {
		s.expectVectorAllow(t, c, row, names)
	}
	if row.host != "" && !dns.wasAsked(dnsQ{arpa(row.ip), typePTR}) {
		t.Errorf("sslserver never asked the DNS server for %s's name; asked %v", ip, dns.questions())
	}
	s.waitChildren(t)
}

// expectVectorDeny: dropped with a deny line naming the row's host and
// info, and no program started. Without lookups the rules decide before
// any worker is started (deny 0); a row with a host or info is decided
// after its lookups, and the deny line names the session's worker.
func (s *server) expectVectorDeny(t testing.TB, c *net.TCPConn, row lookupVector) {
	t.Helper()
	expectClosed(t, c)
	remote := regexp.QuoteMeta(remoteText(c, row.host, row.info))
	if row.host == "" && row.info == "" {
		deny := regexp.MustCompile(`^sslserver: deny 0 \S+ ` + remote + `$`)
		s.waitSeq(t, deny, statusLine)
		if n := s.countLog(pidLines(row.ip.String())); n != 0 {
			t.Errorf("a session was started for the denied client %s", row.ip)
		}
		return
	}
	deny := regexp.MustCompile(`^sslserver: deny (\d+) \S+ ` + remote + `$`)
	pid := s.waitLog(t, deny)[1]
	s.waitSeq(t, pidLines(row.ip.String()), deny, regexp.MustCompile(`^sslserver: end `+pid+` status 100$`), statusLine)
	if n := s.countLog(okLineOf(c)); n != 0 {
		t.Errorf("the program was started for the denied client %s", row.ip)
	}
}

// expectVectorAllow: the program runs, the ok line names the row's host
// and info, and its environment holds exactly the row's rule variables
// (of all the vectors' rule variables), a rule's MAXCONIP excepted: that
// one is the server's and never reaches the program.
func (s *server) expectVectorAllow(t testing.TB, c *net.TCPConn, row lookupVector, names []string) {
	t.Helper()
	got := s.readEnv(t, c, s.waitOK(t, c, row.host, row.info))
	want := map[string]string{"SSLREMOTEIP": row.ip.String()}
	absent := []string{"MAXCONIP"}
	for _, nv := range row.env {
		if nv[0] != "MAXCONIP" {
			want[nv[0]] = nv[1]
		}
	}
	for _, name := range names {
		if _, mine := want[name]; !mine {
			absent = append(absent, name)
		}
	}
	checkExact(t, got, want)
	checkAbsent(t, got, absent)
	checkRemoteVars(t, got, row.host, row.info)
}

// readEnv finishes an env-role session on c: TLS, the dump, status 0.
func (s *server) readEnv(t testing.TB, c net.Conn, pid int) map[string]string {
	t.Helper()
	return s.readEnvTLS(t, s.startTLS(t, c, nil), pid)
}

// readEnvTLS reads an env-role session's dump on a TLS connection
// already made, and checks it ended with status 0.
func (s *server) readEnvTLS(t testing.TB, tc *tls.Conn, pid int) map[string]string {
	t.Helper()
	out, err := io.ReadAll(tc)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("reading the environment: %v", err)
	}
	if status := s.waitEnd(t, pid); status != 0 {
		t.Errorf("session %d ended with status %d, want 0", pid, status)
	}
	return parseEnvDump(t, string(out))
}

// checkExact is checkVars without trimming: a value must match byte for
// byte (an empty RELAYCLIENT is not a blank one).
func checkExact(t testing.TB, got, want map[string]string) {
	t.Helper()
	for name, w := range want {
		if v, ok := got[name]; !ok || v != w {
			t.Errorf("environment: %s=%q (set: %v), want %q", name, v, ok, w)
		}
	}
}
