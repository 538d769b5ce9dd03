package integration

// The name and IDENT services sslserver's lookups talk to in these tests:
// a DNS server of the test's own on 127.0.0.1 (UDP, port 0), reached
// through DNSCACHEIP so the machine's resolver is never asked, and an
// IDENT responder on port 113 of a client address.

import (
	"bufio"
	// Named so: binary is the suite's own helper (main_test.go).
	endian "encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DNS record types the lookups ask for.
const (
	typeA    = 1
	typePTR  = 12
	typeAAAA = 28
)

// dnsQ is one question: a lower-case absolute name and a type.
type dnsQ struct {
	name  string
	qtype uint16
}

func (q dnsQ) String() string { return fmt.Sprintf("%s/%d", q.name, q.qtype) }

// testDNS answers from its records, NXDOMAIN for a name it has none for,
// and never for a question it was told to ignore. It keeps every
// question it was asked. With loseOneIn it also loses queries.
type testDNS struct {
	pc      net.PacketConn
	mu      sync.Mutex
	records map[dnsQ][][]byte // rdata
	ignore  map[dnsQ]bool
	asked   []dnsQ
	lossy   lossState
}

// lossState loses one query in every, but never the same question twice
// in a row, so one lookup loses one datagram at most.
type lossState struct {
	every int
	lost  map[dnsQ]bool // questions whose last query was lost
	total int
}

// lose decides the fate of query n (counted from 1) of question q.
func (l *lossState) lose(q dnsQ, n int) bool {
	if l.every == 0 || n%l.every != 0 || l.lost[q] {
		delete(l.lost, q)
		return false
	}
	l.lost[q] = true
	l.total++
	return true
}

// loseOneIn makes d lose one query in every n.
func (d *testDNS) loseOneIn(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lossy = lossState{every: n, lost: map[dnsQ]bool{}}
}

// lostCount is how many queries d has lost.
func (d *testDNS) lostCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lossy.total
}

func startDNS(t testing.TB) *testDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("DNS server: %v", err)
	}
	d := &testDNS{pc: pc, records: map[dnsQ][][]byte{}, ignore: map[dnsQ]bool{}}
	done := make(chan struct{})
	go serveDNS(d, done)
	t.Cleanup(func() { pc.Close(); <-done })
	return d
}

// cacheVar points sslserver at d.
func (d *testDNS) cacheVar() string { return "DNSCACHEIP=" + d.pc.LocalAddr().String() }

// ptr makes name, written byte for byte into its labels (so it may
// hold anything), the answer to ip's PTR question.
func (d *testDNS) ptr(ip, name string) {
	d.add(dnsQ{arpa(netip.MustParseAddr(ip)), typePTR}, labels(name))
}

// forward makes ip an address of name (A or AAAA by ip's family).
func (d *testDNS) forward(name, ip string) {
	a := netip.MustParseAddr(ip)
	q := dnsQ{absolute(name), typeAAAA}
	if a.Is4() {
		q.qtype = typeA
	}
	d.add(q, a.AsSlice())
}

// hush makes d ignore ip's PTR question, as a dead server would.
func (d *testDNS) hush(ip string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ignore[dnsQ{arpa(netip.MustParseAddr(ip)), typePTR}] = true
}

func (d *testDNS) add(q dnsQ, rdata []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.records[q] = append(d.records[q], rdata)
}

func (d *testDNS) questions() []dnsQ {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]dnsQ(nil), d.asked...)
}

func (d *testDNS) wasAsked(q dnsQ) bool {
	for _, a := range d.questions() {
		if a == q {
			return true
		}
	}
	return false
}

// waitAsked waits up to waitTime for question q.
func (d *testDNS) waitAsked(t testing.TB, q dnsQ) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for !d.wasAsked(q) {
		if time.Now().After(deadline) {
			t.Fatalf("the DNS server was not asked %v within %v; asked %v", q, waitTime, d.questions())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func serveDNS(d *testDNS, done chan<- struct{}) {
	defer close(done)
	buf := make([]byte, 4096)
	for {
		n, from, err := d.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp := d.respond(buf[:n]); resp != nil {
			d.pc.WriteTo(resp, from)
		}
	}
}

// respond builds the reply to one query; nil for no reply.
func (d *testDNS) respond(query []byte) []byte {
	q, qEnd, err := parseQuery(query)
	if err != nil {
		return nil
	}
	d.mu.Lock()
	d.asked = append(d.asked, q)
	rdatas, ignored := d.records[q], d.ignore[q] || d.lossy.lose(q, len(d.asked))
	known := d.knows(q.name)
	d.mu.Unlock()
	if ignored {
		return nil
	}
	return reply(query[:qEnd], q.qtype, rdatas, known)
}

// knows reports whether name has records of any type: a name that
// exists gets an empty answer, not NXDOMAIN. d.mu is held.
func (d *testDNS) knows(name string) bool {
	for q := range d.records {
		if q.name == name {
			return true
		}
	}
	return false
}

// reply is header+question (copied from the query, the flags made a
// response) and one answer per rdata, named by a pointer to the question.
func reply(headQuestion []byte, qtype uint16, rdatas [][]byte, known bool) []byte {
	const nxdomain = 3
	r := append([]byte(nil), headQuestion...)
	r[2] = 0x84 | r[2]&0x01 // QR, AA, the query's RD
	r[3] = 0x80             // RA, no error
	if !known {
		r[3] |= nxdomain
	}
	endian.BigEndian.PutUint16(r[6:], uint16(len(rdatas)))
	endian.BigEndian.PutUint32(r[8:], 0) // no authority or additional records
	for _, rd := range rdatas {
		r = append(r, 0xc0, 12)
		r = endian.BigEndian.AppendUint16(r, qtype)
		r = append(r, 0, 1, 0, 0, 0, 30) // class IN, TTL 30
		r = endian.BigEndian.AppendUint16(r, uint16(len(rd)))
		r = append(r, rd...)
	}
	return r
}

// parseQuery reads a query's header and its one question (names in
// queries are never compressed) and returns where the question ends.
func parseQuery(m []byte) (dnsQ, int, error) {
	if len(m) < 12 || m[2]&0x80 != 0 || endian.BigEndian.Uint16(m[4:]) != 1 {
		return dnsQ{}, 0, fmt.Errorf("not a query with one question: % x", m)
	}
	var name []string
	i := 12
	for i < len(m) && m[i] != 0 {
		n := int(m[i])
		if n > 63 || i+1+n > len(m) {
			return dnsQ{}, 0, fmt.Errorf("bad label at %d: % x", i, m)
		}
		name = append(name, strings.ToLower(string(m[i+1:i+1+n])))
		i += 1 + n
	}
	if i+5 > len(m) {
		return dnsQ{}, 0, fmt.Errorf("short question: % x", m)
	}
	return dnsQ{strings.Join(name, ".") + ".", endian.BigEndian.Uint16(m[i+1:])}, i + 5, nil
}

// labels writes name's dot-separated parts as DNS labels, unchecked.
func labels(name string) []byte {
	var b []byte
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func absolute(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, ".")) + "."
}

// arpaOf is the PTR question's name for an address written as text.
func arpaOf(ip string) string { return arpa(netip.MustParseAddr(ip)) }

// arpa is the PTR question's name for a.
func arpa(a netip.Addr) string {
	b := a.AsSlice()
	var parts []string
	for i := len(b) - 1; i >= 0; i-- {
		if a.Is4() {
			parts = append(parts, strconv.Itoa(int(b[i])))
		} else {
			parts = append(parts, fmt.Sprintf("%x.%x", b[i]&0xf, b[i]>>4))
		}
	}
	if a.Is4() {
		return strings.Join(parts, ".") + ".in-addr.arpa."
	}
	return strings.Join(parts, ".") + ".ip6.arpa."
}

// notInHosts fails the test when /etc/hosts names ip: Go's resolver,
// which sslserver uses, answers PTR questions from that file before
// asking DNS, so the test's DNS server would never be asked.
func notInHosts(t testing.TB, ip string) {
	t.Helper()
	if names := hostsNames(ip); names != nil {
		t.Fatalf("/etc/hosts names %s %q; this test needs an address only DNS knows", ip, names)
	}
}

// hostsNote explains a wrong remote host when /etc/hosts names ip.
func hostsNote(ip string) string {
	if names := hostsNames(ip); names != nil {
		return fmt.Sprintf(" (/etc/hosts names %s %q, and sslserver's resolver reads it before DNS)", ip, names)
	}
	return ""
}

// hostsNames is what /etc/hosts calls ip.
func hostsNames(ip string) []string {
	b, err := os.ReadFile("/etc/hosts")
	if err != nil {
		return nil
	}
	want := netip.MustParseAddr(ip)
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.SplitN(line, "#", 2)[0])
		if len(f) == 0 {
			continue
		}
		if a, err := netip.ParseAddr(f[0]); err == nil && a == want {
			names = append(names, f[1:]...)
		}
	}
	return names
}

// identPort is IDENT's port (RFC 1413).
const identPort = 113

// identServer is an IDENT responder on one address's port 113. Tests
// running at once share it: each says which user owns its connection
// (by the client's port), and the responder answers ERROR : NO-USER for
// any other. It is closed when its last test ends.
type identServer struct {
	ln    *net.TCPListener
	mu    sync.Mutex
	users map[int]string // client port -> user id
	asked map[int]int    // client port -> queries about it
	refs  int
	done  chan struct{}
}

var identServers = struct {
	mu     sync.Mutex
	byAddr map[string]*identServer
}{byAddr: map[string]*identServer{}}

// useIdent returns the responder on ip:113, starting it if needed.
func useIdent(t testing.TB, ip string) *identServer {
	t.Helper()
	identServers.mu.Lock()
	defer identServers.mu.Unlock()
	s := identServers.byAddr[ip]
	if s == nil {
		ln := listenIdent(t, ip)
		s = &identServer{ln: ln, users: map[int]string{}, asked: map[int]int{}, done: make(chan struct{})}
		go serveIdent(s)
		identServers.byAddr[ip] = s
	}
	s.refs++
	t.Cleanup(func() { releaseIdent(ip, s) })
	return s
}

// listenIdent binds ip:113, retrying while the port is busy: another
// package's tests may hold it for a moment.
func listenIdent(t testing.TB, ip string) *net.TCPListener {
	t.Helper()
	addr := net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), identPort))
	deadline := time.Now().Add(waitTime)
	for {
		ln, err := net.ListenTCP("tcp", addr)
		if err == nil {
			return ln
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			t.Fatalf("IDENT responder: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func releaseIdent(ip string, s *identServer) {
	identServers.mu.Lock()
	defer identServers.mu.Unlock()
	if s.refs--; s.refs == 0 {
		delete(identServers.byAddr, ip)
		s.ln.Close()
		<-s.done
	}
}

// owns says user owns the connection from clientPort.
func (s *identServer) owns(clientPort int, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[clientPort] = user
}

// queries is how many questions came about the connection from
// clientPort.
func (s *identServer) queries(clientPort int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked[clientPort]
}

func serveIdent(s *identServer) {
	defer close(s.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go answerIdent(s, c, &wg)
	}
}

// answerIdent answers one query "clientPort , serverPort". The test
// learns its client port only once connected, when sslserver may
// already be asking, so an unknown port gets a moment to be registered.
func answerIdent(s *identServer, c net.Conn, wg *sync.WaitGroup) {
	defer wg.Done()
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTime))
	line, err := bufio.NewReader(io.LimitReader(c, 1000)).ReadString('\n')
	if err != nil {
		return
	}
	cport, sport, ok := identPorts(line)
	if !ok {
		fmt.Fprintf(c, "%s : ERROR : INVALID-PORT\r\n", strings.TrimSpace(line))
		return
	}
	s.count(cport)
	if user := s.userOf(cport, time.Second); user != "" {
		fmt.Fprintf(c, "%d , %d : USERID : UNIX : %s\r\n", cport, sport, user)
		return
	}
	fmt.Fprintf(c, "%d , %d : ERROR : NO-USER\r\n", cport, sport)
}

func (s *identServer) count(cport int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked[cport]++
}

// userOf waits up to d for the user of cport to be registered.
func (s *identServer) userOf(cport int, d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		s.mu.Lock()
		user := s.users[cport]
		s.mu.Unlock()
		if user != "" || time.Now().After(deadline) {
			return user
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// identPorts parses "port , port\r\n".
func identPorts(line string) (int, int, bool) {
	a, b, ok := strings.Cut(strings.TrimSpace(line), ",")
	if !ok {
		return 0, 0, false
	}
	x, errA := strconv.Atoi(strings.TrimSpace(a))
	y, errB := strconv.Atoi(strings.TrimSpace(b))
	return x, y, errA == nil && errB == nil && x > 0 && x < 65536 && y > 0 && y < 65536
}
