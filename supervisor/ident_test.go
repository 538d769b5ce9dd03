package supervisor

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The IDENT tests talk to a responder of their own on port 113, which
// needs root; they run on loopback addresses other than 127.0.0.1, the
// "remote" 127.0.0.2 and the "local" 127.0.0.3, so the responder can see
// that the query comes from the local address.
const (
	identRemote = "127.0.0.2"
	identLocal  = "127.0.0.3"
)

// identListener listens on ip:113, skipping the test when not root
// (failing under CI=true, where tests run as root).
func identListener(t *testing.T, ip string) *net.TCPListener {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("binding port 113 needs root, and CI runs the tests as root")
		}
		t.Skip("binding port 113 needs root")
	}
	ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), identPort)))
	if err != nil {
		t.Fatalf("IDENT responder: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// identSeen is what the responder saw of one query.
type identSeen struct {
	from  netip.Addr
	query string
}

// serveIdent answers each connection on ln: it reads the query line,
// writes reply, and with hold keeps the connection open until the client
// gives up.
func serveIdent(ln net.Listener, reply string, hold bool, seen chan<- identSeen) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		seen <- answerIdent(c, reply, hold)
	}
}

func answerIdent(c net.Conn, reply string, hold bool) identSeen {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	s := identSeen{from: c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()}
	s.query, _ = bufio.NewReader(c).ReadString('\n')
	io.WriteString(c, reply)
	if hold {
		io.Copy(io.Discard, c)
	}
	return s
}

func TestIdentQuery(t *testing.T) {
	const userid = "50123 , 465 : USERID : UNIX : "
	cases := []struct {
		name  string
		reply string
		hold  bool // keep the connection open after the reply
		want  string
	}{
		{"USERID", userid + "alice\r\n", false, "alice"},
		{"blanks and charset", "50123,465:USERID:UNIX , US-ASCII:   bob smith \t\r\n", false, "bob smith"},
		{"colon in user id", userid + "a:b\r\n", false, "a:b"},
		{"bare LF", userid + "carol\n", true, "carol"},
		{"ERROR", "50123 , 465 : ERROR : NO-USER\r\n", false, ""},
		{"other ports", "50124 , 465 : USERID : UNIX : mallory\r\n", false, ""},
		{"garbage", "HTTP/1.0 400 Bad Request\r\n", false, ""},
		{"control character", userid + "al\x1b[2Jice\r\n", false, ""},
		{"empty user id", userid + "  \r\n", false, ""},
		{"no line end", userid + "dave", false, ""},
		{"overlong", userid + strings.Repeat("a", 2*maxIdentLine), true, ""},
	}
	d := startFakeDNS(t, false)
	useDNS(t, d)
	s := testServer(t, new(bytes.Buffer), "-H", "-r", "-t", "5", "-l", "mx")
	ep := endpointsOf(identLocal+":465", identRemote+":50123")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ln := identListener(t, identRemote)
			seen := make(chan identSeen, 1)
			go serveIdent(ln, c.reply, c.hold, seen)
			start := time.Now()
			got := identifyWith(s, ep)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("identify took %v; the reply was complete long before -t", took)
			}
			if got.RemoteInfo != c.want {
				t.Errorf("RemoteInfo = %q, want %q", got.RemoteInfo, c.want)
			}
			checkIdentQuery(t, <-seen)
		})
	}
	if q := d.questions(); len(q) != 0 {
		t.Errorf("-H -l asks no DNS, but it was asked %v", q)
	}
}

func checkIdentQuery(t *testing.T, s identSeen) {
	t.Helper()
	if s.query != "50123 , 465\r\n" {
		t.Errorf("query = %q, want %q", s.query, "50123 , 465\r\n")
	}
	if s.from != netip.MustParseAddr(identLocal) {
		t.Errorf("query came from %v, want the local address %s", s.from, identLocal)
	}
}

func TestIdentSilenceIsBounded(t *testing.T) {
	ln := identListener(t, identRemote)
	seen := make(chan identSeen, 1)
	go serveIdent(ln, "", true, seen)
	s := testServer(t, new(bytes.Buffer), "-H", "-r", "-t", "1", "-l", "mx")
	start := time.Now()
	got := identifyWith(s, endpointsOf(identLocal+":465", identRemote+":50123"))
	took := time.Since(start)
	if took < 900*time.Millisecond || took > 3*time.Second {
		t.Errorf("identify took %v against a silent IDENT server, want about -t 1", took)
	}
	if got.RemoteInfo != "" {
		t.Errorf("RemoteInfo = %q, want unset", got.RemoteInfo)
	}
	checkIdentQuery(t, <-seen)
}

func TestIdentMappedAddresses(t *testing.T) {
	ln := identListener(t, identRemote)
	seen := make(chan identSeen, 1)
	go serveIdent(ln, "50123 , 465 : USERID : UNIX : alice\r\n", false, seen)
	s := testServer(t, new(bytes.Buffer), "-H", "-r", "-l", "mx")
	got := identifyWith(s, endpointsOf("[::ffff:"+identLocal+"]:465", "[::ffff:"+identRemote+"]:50123"))
	if got.RemoteInfo != "alice" {
		t.Errorf("RemoteInfo = %q, want alice", got.RemoteInfo)
	}
	checkIdentQuery(t, <-seen)
}

func TestIdentRefused(t *testing.T) {
	identListener(t, identRemote) // only to apply the root rule; nothing listens on .4
	s := testServer(t, new(bytes.Buffer), "-H", "-r", "-l", "mx")
	start := time.Now()
	got := identifyWith(s, endpointsOf(identLocal+":465", "127.0.0.4:50123"))
	if took := time.Since(start); took > 2*time.Second || got.RemoteInfo != "" {
		t.Errorf("refused IDENT: RemoteInfo %q after %v, want unset at once", got.RemoteInfo, took)
	}
}

func TestIdentOff(t *testing.T) {
	ln := identListener(t, identRemote)
	for _, flags := range [][]string{{"-H", "-l", "mx"}, {"-H", "-R", "-l", "mx"}} {
		got := identifyWith(testServer(t, new(bytes.Buffer), flags...), endpointsOf(identLocal+":465", identRemote+":50123"))
		if got.RemoteInfo != "" {
			t.Errorf("%v: RemoteInfo = %q, want unset", flags, got.RemoteInfo)
		}
	}
	// identify has returned: a connection it made would be queued by now.
	ln.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if c, err := ln.Accept(); err == nil {
		c.Close()
		t.Error("without -r the IDENT server was contacted")
	}
}

// TestIdentNotBehindProxy: for a client named by a PROXY header, -r asks
// no IDENT server: the client's identd knows its connection to the proxy
// only, and would answer nothing after up to -t.
func TestIdentNotBehindProxy(t *testing.T) {
	ln := identListener(t, identRemote)
	ep := endpointsOf(identLocal+":465", identRemote+":50123")
	ep.ProxyIP = netip.MustParseAddr("127.0.0.2")
	got := identifyWith(testServer(t, new(bytes.Buffer), "-H", "-r", "-t", "5", "-l", "mx"), ep)
	if got.RemoteInfo != "" {
		t.Errorf("RemoteInfo = %q, want unset", got.RemoteInfo)
	}
	ln.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if c, err := ln.Accept(); err == nil {
		c.Close()
		t.Error("the IDENT server was contacted for a proxied client")
	}
}

func TestIdentReplyParse(t *testing.T) {
	cases := []struct {
		line string
		want string // "" = refused
	}{
		{"1 , 2 : USERID : UNIX : alice\r\n", "alice"},
		{"1,2:userid:OTHER:alice\r\n", "alice"},
		{" 01 , 2 :USERID: UNIX,UTF-8 :Zoë\r\n", "Zoë"},
		{"1 , 2 : USERID : UNIX : alice", ""},
		{"1 , 2 : USERID :  : alice\r\n", ""},
		{"1 , 2 : USERID : UNIX\r\n", ""},
		{"1 , 2 : ERROR : HIDDEN-USER\r\n", ""},
		{"2 , 1 : USERID : UNIX : alice\r\n", ""},
		{"1 : USERID : UNIX : alice\r\n", ""},
		{"1 , 2 , 3 : USERID : UNIX : alice\r\n", ""},
		{"-1 , 2 : USERID : UNIX : alice\r\n", ""},
		{"65537 , 2 : USERID : UNIX : alice\r\n", ""},
		{"1 , 2 : USERID : UNIX : al\rice\r\n", ""},
		{"1 , 2 : USERID : UNIX : al\x00ice\r\n", ""},
		{"1 , 2 : USERID : UNIX : al\u0085ice\r\n", ""},
		{"1 , 2 : USERID : UNIX : \xffalice\r\n", ""},
		{"", ""},
	}
	for _, c := range cases {
		got, ok := parseIdentReply(c.line, 1, 2)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("parseIdentReply(%q) = %q, %v; want %q", c.line, got, ok, c.want)
		}
	}
}

func FuzzIdentReply(f *testing.F) {
	f.Add("1 , 2 : USERID : UNIX : alice\r\n")
	f.Add("1 , 2 : ERROR : NO-USER\r\n")
	f.Add("1,2:USERID:UNIX,US-ASCII: bob \n")
	f.Fuzz(func(t *testing.T, line string) {
		user, ok := parseIdentReply(line, 1, 2)
		if !ok {
			if user != "" {
				t.Fatalf("refused %q but returned %q", line, user)
			}
			return
		}
		if user == "" || !utf8.ValidString(user) || strings.TrimSpace(user) != user || !strings.Contains(line, user) {
			t.Fatalf("parseIdentReply(%q) = %q", line, user)
		}
		for _, r := range user {
			if r < ' ' || r == 0x7f || r >= 0x80 && r < 0xa0 {
				t.Fatalf("parseIdentReply(%q) = %q, with control character %U", line, user, r)
			}
		}
		// The same user id in a canonical reply parses back to itself.
		again, ok := parseIdentReply(fmt.Sprintf("1 , 2 : USERID : UNIX : %s\r\n", user), 1, 2)
		if !ok || again != user {
			t.Fatalf("canonical reply for %q parsed as %q, %v", user, again, ok)
		}
	})
}

func TestIdentReadLineBounded(t *testing.T) {
	long := strings.Repeat("x", maxIdentLine-1) + "\n"
	if got, err := readIdentLine(strings.NewReader(long)); err != nil || got != long {
		t.Errorf("a %d-byte line: %v", len(long), err)
	}
	r := &countingReader{r: strings.NewReader(strings.Repeat("x", 10*maxIdentLine) + "\n")}
	if _, err := readIdentLine(r); err == nil {
		t.Error("a line longer than maxIdentLine was accepted")
	}
	if r.n > maxIdentLine {
		t.Errorf("read %d bytes, bound is %d", r.n, maxIdentLine)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
