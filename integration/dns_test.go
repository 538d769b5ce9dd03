package integration

// sslserver's remote lookups end to end: -h (PTR), -p (the forward
// check), -r (IDENT) and their opposites, against the test's own DNS
// server (through DNSCACHEIP) and IDENT responder. Clients come from
// addresses of 127.77.0.0/16, which no /etc/hosts names, so every name
// comes from the test's DNS server.

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// lookupCase is one connection: sslserver's flags (after the suite's
// -H -l 0), what DNS and IDENT say of the client, and what the server
// must make of it.
type lookupCase struct {
	name    string
	flags   []string
	from    string
	ptr     string // the PTR answer for from, written into labels byte for byte
	forward string // an address of ptr's name (A record), for -p
	user    string // the IDENT responder's user id for the connection

	host, info string // want: the remote host and info ("": unset)
	asked      []dnsQ // questions DNS must have been asked
	noDNS      bool   // DNS must not be asked at all
	identAsked bool   // the IDENT responder was asked (else it must not be)

	// The info is not for a log line as it is: check only that the ok
	// line keeps its fields, not how it shows the info.
	logShapeOnly bool
}

var lookupCases = []lookupCase{
	{name: "PTR names the client", flags: []string{"-h"}, from: "127.77.0.1",
		ptr: "Client.Example.NET.", host: "client.example.net",
		asked: []dnsQ{{arpaOf("127.77.0.1"), typePTR}}},
	{name: "PTR with a space is refused", flags: []string{"-h"}, from: "127.77.0.2",
		ptr: "evil host.example.net.", asked: []dnsQ{{arpaOf("127.77.0.2"), typePTR}}},
	{name: "PTR with a newline is refused", flags: []string{"-h"}, from: "127.77.0.3",
		ptr: "evil\nhost.example.net.", asked: []dnsQ{{arpaOf("127.77.0.3"), typePTR}}},
	{name: "paranoid, forward matches", flags: []string{"-h", "-p"}, from: "127.77.0.4",
		ptr: "client.example.net.", forward: "127.77.0.4", host: "client.example.net",
		asked: []dnsQ{{arpaOf("127.77.0.4"), typePTR}, {"client.example.net.", typeA}}},
	{name: "paranoid, forward mismatch", flags: []string{"-h", "-p"}, from: "127.77.0.5",
		ptr: "client.example.net.", forward: "127.77.0.99",
		asked: []dnsQ{{arpaOf("127.77.0.5"), typePTR}, {"client.example.net.", typeA}}},
	{name: "IDENT user id", flags: []string{"-r", "-t", "2"}, from: "127.77.0.6",
		user: "joe", info: "joe", noDNS: true, identAsked: true},
	{name: "host and IDENT together", flags: []string{"-h", "-r", "-t", "2"}, from: "127.77.0.7",
		ptr: "mail.example.org.", user: "jane", host: "mail.example.org", info: "jane",
		asked: []dnsQ{{arpaOf("127.77.0.7"), typePTR}}, identAsked: true},
	// The program gets the user id as the client's identd said it; the
	// log line keeps its fields whatever the id holds.
	{name: "IDENT user id with a blank and a colon", flags: []string{"-r", "-t", "2"}, from: "127.77.0.9",
		user: "Jane Doe:x", info: "Jane Doe:x", noDNS: true, identAsked: true, logShapeOnly: true},
	// The last of -h/-H, -r/-R and -p/-P wins: no question is asked.
	{name: "-H -R after -h -r -p", flags: []string{"-h", "-r", "-p", "-H", "-R"}, from: "127.77.0.8",
		ptr: "client.example.net.", forward: "127.77.0.8", user: "joe", noDNS: true},
}

func TestRemoteLookups(t *testing.T) {
	for _, tc := range lookupCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runLookupCase(t, tc)
		})
	}
}

func runLookupCase(t *testing.T, tc lookupCase) {
	notInHosts(t, tc.from)
	dns := startDNS(t)
	if tc.ptr != "" {
		dns.ptr(tc.from, tc.ptr)
	}
	if tc.forward != "" {
		dns.forward(tc.ptr, tc.forward)
	}
	ident := useIdent(t, tc.from)
	s := startServer(t, serverConfig{flags: tc.flags, env: []string{dns.cacheVar()}, role: "env"})
	c := s.dialFrom(t, tc.from)
	if tc.user != "" {
		ident.owns(localPort(c), tc.user)
	}
	var pid int
	if tc.logShapeOnly {
		pid = s.waitOKShape(t, c)
	} else {
		pid = s.waitOK(t, c, tc.host, tc.info)
	}
	checkRemoteVars(t, s.readEnv(t, c, pid), tc.host, tc.info)
	checkAsked(t, dns, tc)
	if n := ident.queries(localPort(c)); (n > 0) != tc.identAsked {
		t.Errorf("the IDENT responder was asked %d times about the connection, want asked: %v", n, tc.identAsked)
	}
	s.waitChildren(t)
}

// waitOK waits for the ok line of the session on c, which must name
// the remote host and info exactly ("ok PID local host:ip:info:port";
// the local host is empty under -l 0), and returns the session's pid.
func (s *server) waitOK(t testing.TB, c net.Conn, host, info string) int {
	t.Helper()
	m := s.waitLog(t, okLineOf(c))
	if want := remoteText(c, host, info); m[2] != want {
		t.Errorf("ok line: remote %q, want %q%s", m[2], want, hostsNote(c.LocalAddr().(*net.TCPAddr).IP.String()))
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// okLineOf matches the ok line of the session on c whatever it says of
// the remote host and info: pid, then the remote field.
func okLineOf(c net.Conn) *regexp.Regexp {
	l, r := c.RemoteAddr().(*net.TCPAddr), c.LocalAddr().(*net.TCPAddr)
	return regexp.MustCompile(`^sslserver: ok (\d+) :` + regexp.QuoteMeta(l.IP.String()+":"+strconv.Itoa(l.Port)) +
		` (.*:` + regexp.QuoteMeta(r.IP.String()) + `:.*:` + strconv.Itoa(r.Port) + `)$`)
}

// waitOKShape waits for the ok line of the session on c and checks it
// reads as log readers split it: five blank-separated fields, the last
// host:ip:info:port with the client's IPv4 address and port in place.
func (s *server) waitOKShape(t testing.TB, c net.Conn) int {
	t.Helper()
	m := s.waitLog(t, okLineOf(c))
	r := c.LocalAddr().(*net.TCPAddr)
	fields := strings.Fields(m[0])
	parts := strings.Split(m[2], ":")
	if len(fields) != 5 || len(parts) != 4 || parts[1] != r.IP.String() || parts[3] != strconv.Itoa(r.Port) {
		t.Errorf("ok line %q does not read as \"sslserver: ok PID local host:ip:info:port\"", m[0])
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// remoteText is the log lines' "host:ip:info:port" for the client on c.
func remoteText(c net.Conn, host, info string) string {
	r := c.LocalAddr().(*net.TCPAddr)
	return host + ":" + r.IP.String() + ":" + info + ":" + strconv.Itoa(r.Port)
}

// checkRemoteVars: the host in SSLREMOTEHOST and TCPREMOTEHOST, the info
// in SSLREMOTEINFO and TCPREMOTEINFO; unset (not empty) when unknown.
func checkRemoteVars(t testing.TB, got map[string]string, host, info string) {
	t.Helper()
	want := map[string]string{}
	var absent []string
	for name, value := range map[string]string{"SSLREMOTEHOST": host, "TCPREMOTEHOST": host,
		"SSLREMOTEINFO": info, "TCPREMOTEINFO": info} {
		if value == "" {
			absent = append(absent, name)
		} else {
			want[name] = value
		}
	}
	checkExact(t, got, want)
	checkAbsent(t, got, absent)
}

func checkAsked(t testing.TB, dns *testDNS, tc lookupCase) {
	t.Helper()
	if q := dns.questions(); tc.noDNS && len(q) > 0 {
		t.Errorf("the DNS server was asked %v, want no question", q)
	}
	for _, q := range tc.asked {
		if !dns.wasAsked(q) {
			t.Errorf("the DNS server was not asked %v; asked %v", q, dns.questions())
		}
	}
}

// dnsBudget is sslserver's bound on one connection's DNS lookups.
const dnsBudget = 10 * time.Second

// timeoutLine matches the -v line of a DNS lookup for ip that timed out.
func timeoutLine(ip string) *regexp.Regexp {
	return regexp.MustCompile(`^sslserver: DNS lookup for ` + regexp.QuoteMeta(ip) + ` timed out after 10s$`)
}

// A client whose PTR lookup hangs (a silent resolver) holds up no one,
// under -c 2 MAXCONIP=1: its handshake is done while the lookup waits; a
// second client from its address is refused by MAXCONIP at once, before
// any lookup, so it frees its slot; and a client from another address
// is served in full, all before the silent lookup gives up. The first
// session then goes on without a name, its timeout logged once.
func TestSilentDNSHoldsNoOneUp(t *testing.T) {
	t.Parallel()
	const silent, other = "127.77.1.1", "127.77.1.2"
	dns := startDNS(t)
	dns.hush(silent)
	dns.ptr(other, "other.example.net.")
	s := startServer(t, serverConfig{flags: []string{"-h", "-c", "2"}, env: []string{dns.cacheVar(), "MAXCONIP=1"}, role: "env"})

	start := time.Now()
	a := s.dialFrom(t, silent)
	a.SetDeadline(start.Add(dnsBudget + waitTime))
	ta := s.startTLS(t, a, nil)
	pidA, _ := strconv.Atoi(s.waitLog(t, regexp.MustCompile(`^sslserver: pid (\d+) from `+regexp.QuoteMeta(silent)+`$`))[1])
	s.waitLog(t, regexp.MustCompile(`^sslserver: tls `+strconv.Itoa(pidA)+` accept`))
	dns.waitAsked(t, dnsQ{arpaOf(silent), typePTR})

	s.expectPerIPRefused(t, silent, 1)
	c := s.dialFrom(t, other)
	pid := s.waitOK(t, c, "other.example.net", "")
	checkRemoteVars(t, s.readEnv(t, c, pid), "other.example.net", "")
	if s.countLog(okLineOf(a)) != 0 || s.countLog(timeoutLine(silent)) != 0 {
		t.Fatalf("the silent lookup ended before the other clients were done (%v); log:\n%s", time.Since(start), s.log.text())
	}

	m := s.log.wait(okLineOf(a), dnsBudget+5*time.Second-time.Since(start))
	if m == nil {
		t.Fatalf("the silent client's session did not go on within %v of connecting; log:\n%s", dnsBudget+5*time.Second, s.log.text())
	}
	t.Logf("the silent lookup gave up after %v", time.Since(start).Round(time.Millisecond))
	if m[2] != remoteText(a, "", "") {
		t.Errorf("ok line: remote %q, want %q", m[2], remoteText(a, "", ""))
	}
	s.waitSeq(t, regexp.MustCompile(`^sslserver: tls `+strconv.Itoa(pidA)+` accept`), timeoutLine(silent), okLineOf(a))
	if n := s.countLog(timeoutLine(silent)); n != 1 {
		t.Errorf("%d timeout lines for %s, want 1", n, silent)
	}
	checkRemoteVars(t, s.readEnvTLS(t, ta, pidA), "", "")
	s.waitChildren(t)
}
