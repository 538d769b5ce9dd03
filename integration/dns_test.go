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

// A client whose PTR lookup hangs holds up neither the accept loop nor
// other clients: while its lookup is stuck, a second client is counted
// in the status line and served in full. The first session then goes on
// without a name once the lookup gives up, within the server's 26 s DNS
// budget (sooner when the resolver's own retries, from resolv.conf, end
// first: 2 tries of 5 s by default).
func TestStuckLookupBlocksNoOne(t *testing.T) {
	t.Parallel()
	const stuck, other = "127.77.1.1", "127.77.1.2"
	const dnsBudget = 26 * time.Second
	notInHosts(t, stuck)
	notInHosts(t, other)
	dns := startDNS(t)
	dns.hush(stuck)
	dns.ptr(other, "other.example.net.")
	s := startServer(t, serverConfig{flags: []string{"-h"}, env: []string{dns.cacheVar()}, role: "env"})

	start := time.Now()
	a := s.dialFrom(t, stuck)
	a.SetDeadline(start.Add(dnsBudget + waitTime))
	dns.waitAsked(t, dnsQ{arpaOf(stuck), typePTR})

	b := s.dialFrom(t, other)
	s.waitLog(t, regexp.MustCompile(`^sslserver: status: 2/\d+$`))
	pid := s.waitOK(t, b, "other.example.net", "")
	checkRemoteVars(t, s.readEnv(t, b, pid), "other.example.net", "")
	if n := s.countLog(pidLines(stuck)); n != 0 {
		t.Fatalf("the stuck client's session started before the second one ended; log:\n%s", s.log.text())
	}

	m := s.log.wait(okLineOf(a), dnsBudget+5*time.Second-time.Since(start))
	if m == nil {
		t.Fatalf("the stuck client's session did not go on within %v of connecting; log:\n%s", dnsBudget+5*time.Second, s.log.text())
	}
	t.Logf("the stuck lookup gave up after %v", time.Since(start).Round(time.Millisecond))
	if m[2] != remoteText(a, "", "") {
		t.Errorf("ok line: remote %q, want %q", m[2], remoteText(a, "", ""))
	}
	pidA, _ := strconv.Atoi(m[1])
	checkRemoteVars(t, s.readEnv(t, a, pidA), "", "")
	s.waitChildren(t)
}
