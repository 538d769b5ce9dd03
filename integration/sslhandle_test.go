package integration

// sslhandle: the TLS front (cmd/sslhandle) relaying to a backend from a
// fixed set of long-lived handler processes.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/pires/go-proxyproto/tlvparse"
	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/protocol"
)

// echoBackend is a Unix-socket echo service that records, for each
// connection, the pid of the process that connected (SO_PEERCRED): the
// handler that served the session.
type echoBackend struct {
	path string
	ln   *net.UnixListener

	mu   sync.Mutex
	pids map[int]int // handler pid -> connections
	last int
}

func startEchoBackend(t testing.TB) *echoBackend {
	t.Helper()
	dir := freshDir(t) // handlers may run under another uid
	b := &echoBackend{path: filepath.Join(dir, "backend.sock"), pids: map[int]int{}}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: b.path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(b.path, 0o777)
	b.ln = ln
	t.Cleanup(func() { ln.Close() })
	go b.serve()
	return b
}

func (b *echoBackend) serve() {
	for {
		c, err := b.ln.AcceptUnix()
		if err != nil {
			return
		}
		b.record(c)
		go echoHalfClose(c)
	}
}

func (b *echoBackend) record(c *net.UnixConn) {
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) { cred, _ = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if cred == nil {
		return
	}
	b.mu.Lock()
	b.pids[int(cred.Pid)]++
	b.last = int(cred.Pid)
	b.mu.Unlock()
}

// echoHalfClose echoes until the client's end of data, then ends its own.
func echoHalfClose(c *net.UnixConn) {
	defer c.Close()
	io.Copy(c, c)
	c.CloseWrite()
}

func (b *echoBackend) peers() map[int]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[int]int{}
	for k, v := range b.pids {
		out[k] = v
	}
	return out
}

func (b *echoBackend) lastPeer() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// startHandle runs cmd/sslhandle in front of backend.
func startHandle(t testing.TB, flags []string, backend ...string) *server {
	return startServer(t, serverConfig{bin: "sslhandle", flags: flags, program: backend})
}

// handlerPIDs are the server's live handler processes.
func (s *server) handlerPIDs() []int {
	var out []int
	for _, p := range children(s.pid) {
		if st, err := readStat(p); err == nil && st.state != "Z" && argv0(p) == protocol.HandlerArgv0 {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// waitHandlers waits until the server has n live handlers, and returns
// their pids.
func (s *server) waitHandlers(t testing.TB, n int) []int {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for {
		pids := s.handlerPIDs()
		if len(pids) == n {
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d handlers %v, want %d\n%s", len(pids), describePIDs(pids), n, s.log.text())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// echoSession sends size random bytes through the server, half-closes,
// and checks that exactly the same bytes come back before close_notify.
func (s *server) echoSession(size int) error {
	raw, err := net.DialTimeout("tcp", s.addr, waitTime)
	if err != nil {
		return err
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(3 * waitTime))
	conn := tls.Client(raw, s.clientConfig())
	sent := make(chan sendResult, 1)
	go sendRandom(conn, size, sent)
	got, err := io.ReadAll(conn)
	res := <-sent
	switch {
	case err != nil:
		return fmt.Errorf("reading after %d bytes: %w", len(got), err)
	case res.err != nil:
		return fmt.Errorf("sending: %w", res.err)
	}
	if sum := sha256.Sum256(got); len(got) != size || !bytes.Equal(sum[:], res.sum) {
		return fmt.Errorf("received %d bytes with sha256 %x; sent %d with %x", len(got), sum, size, res.sum)
	}
	return nil
}

// runSessions runs n echo sessions from clients goroutines at once.
func (s *server) runSessions(n, clients, size int) []error {
	jobs := make(chan int, n)
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				if err := s.echoSession(size); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

// TestHandleServesWithFixedHandlers: 500 sessions from 16 clients at
// once, by exactly the 3 handlers started with sslhandle -c 3.
func TestHandleServesWithFixedHandlers(t *testing.T) {
	b := startEchoBackend(t)
	s := startHandle(t, []string{"-c", "3"}, b.path)
	before := s.waitHandlers(t, 3)
	const sessions = 500
	if errs := s.runSessions(sessions, 16, 20000); len(errs) > 0 {
		t.Fatalf("%d of %d sessions failed, first: %v", len(errs), sessions, errs[0])
	}
	peers := b.peers()
	var served []int
	total := 0
	for pid, n := range peers {
		served = append(served, pid)
		total += n
	}
	slices.Sort(served)
	if !slices.Equal(served, before) || total != sessions {
		t.Errorf("backend saw %d connections from pids %v, want %d from the handlers %v", total, served, sessions, before)
	}
	if after := s.handlerPIDs(); !slices.Equal(after, before) {
		t.Errorf("handlers after the run %v, before %v", after, before)
	}
	if got := s.waitCount(t, regexp.MustCompile(`end \d+ (status|signal) (\d+)$`), sessions); len(got) != sessions {
		t.Errorf("%d sessions logged their end, want %d", len(got), sessions)
	}
	if n := s.countLog(regexp.MustCompile(`end \d+ status 0$`)); n != sessions {
		t.Errorf("%d sessions ended with status 0, want %d", n, sessions)
	}
}

// heldEcho is a session kept open in the middle of an echo exchange.
type heldEcho struct {
	conn *tls.Conn
	raw  net.Conn
}

func (s *server) holdEcho(t testing.TB) heldEcho {
	t.Helper()
	conn, raw := s.dialTLS(t, nil)
	raw.SetDeadline(time.Now().Add(3 * waitTime))
	h := heldEcho{conn, raw}
	if err := h.roundTrip("first\n"); err != nil {
		t.Fatalf("held session: %v", err)
	}
	return h
}

func (h heldEcho) roundTrip(line string) error {
	if _, err := io.WriteString(h.conn, line); err != nil {
		return err
	}
	buf := make([]byte, len(line))
	if _, err := io.ReadFull(h.conn, buf); err != nil {
		return err
	}
	if string(buf) != line {
		return fmt.Errorf("echoed %q, want %q", buf, line)
	}
	return nil
}

// TestHandleHandlerKilled: a handler killed in the middle of a session
// loses that session only; another session goes on, a new handler
// takes the dead one's place, and sessions keep being served by three.
func TestHandleHandlerKilled(t *testing.T) {
	b := startEchoBackend(t)
	s := startHandle(t, []string{"-c", "3"}, b.path)
	before := s.waitHandlers(t, 3)
	victim := s.holdEcho(t)
	victimPID := b.lastPeer()
	other := s.holdEcho(t)
	if b.lastPeer() == victimPID {
		t.Fatalf("both held sessions in handler %d", victimPID)
	}
	if err := syscall.Kill(victimPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The worker ends the client's session as for a program that died.
	if _, err := io.ReadAll(victim.conn); isTimeout(err) {
		t.Fatalf("the killed handler's client was left hanging: %v", err)
	}
	s.waitLog(t, regexp.MustCompile(fmt.Sprintf(`handler %d ended \(signal 9\); starting another`, victimPID)))
	s.waitLog(t, regexp.MustCompile(`end \d+ signal 9$`))
	if err := other.roundTrip("still here\n"); err != nil {
		t.Fatalf("the other session broke when a handler died: %v", err)
	}
	after := s.waitHandlers(t, 3)
	if slices.Contains(after, victimPID) || len(slices.DeleteFunc(slices.Clone(after), func(p int) bool { return slices.Contains(before, p) })) != 1 {
		t.Errorf("handlers %v after killing %d of %v, want the two others and one new", after, victimPID, before)
	}
	other.conn.CloseWrite()
	if rest, err := io.ReadAll(other.conn); err != nil || len(rest) != 0 {
		t.Errorf("the other session's end: %q, %v", rest, err)
	}
	if errs := s.runSessions(30, 4, 1000); len(errs) > 0 {
		t.Fatalf("after the replacement: %d sessions failed, first: %v", len(errs), errs[0])
	}
	if got := s.handlerPIDs(); !slices.Equal(got, after) {
		t.Errorf("handlers %v, want %v", got, after)
	}
}

// TestHandleDrainsOnSIGTERM: SIGTERM stops accepting, lets the running
// session finish, stops the handlers and exits 0, leaving nothing.
func TestHandleDrainsOnSIGTERM(t *testing.T) {
	b := startEchoBackend(t)
	s := startHandle(t, []string{"-c", "2"}, b.path)
	handlers := s.waitHandlers(t, 2)
	held := s.holdEcho(t)
	syscall.Kill(s.pid, syscall.SIGTERM)
	deadline := time.Now().Add(waitTime)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := held.roundTrip("during the drain\n"); err != nil {
		t.Fatalf("the running session broke at SIGTERM: %v", err)
	}
	held.conn.CloseWrite()
	if rest, err := io.ReadAll(held.conn); err != nil || len(rest) != 0 {
		t.Errorf("the running session's end: %q, %v", rest, err)
	}
	select {
	case <-s.exited:
	case <-time.After(waitTime):
		t.Fatal("sslhandle did not exit after its last session")
	}
	if s.exitErr != nil {
		t.Errorf("sslhandle exited with %v, want status 0", s.exitErr)
	}
	if left := waitGone(handlers, 2*time.Second); len(left) > 0 {
		t.Errorf("handlers left after exit: %v", describePIDs(left))
	}
	s.waitLog(t, regexp.MustCompile(`end \d+ status 0$`))
}

// TestHandleUsage: a missing or malformed backend is a usage error,
// before anything starts.
func TestHandleUsage(t *testing.T) {
	needRoot(t)
	for _, args := range [][]string{
		{"127.0.0.1", "0"},
		{"127.0.0.1", "0", "nocolon"},
		{"127.0.0.1", "0", "/x.sock", "proxy-v1"},
	} {
		out, err := runBinary(t, "sslhandle", args...)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != protocol.ExitUsage {
			t.Errorf("sslhandle %q: %v, want exit 100\n%s", args, err, out)
		}
	}
}

func runBinary(t testing.TB, name string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(binary(t, name), args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "CERTFILE=/nonexistent"}
	return cmd.CombinedOutput()
}

var (
	exampleOnce sync.Once
	exampleErr  error
)

// exampleBinary builds sslhandle's STARTTLS example program into the
// test's binary directory, once.
func exampleBinary(t testing.TB) string {
	t.Helper()
	exampleOnce.Do(buildExample)
	if exampleErr != nil {
		t.Fatal(exampleErr)
	}
	return binary(t, "starttls")
}

func buildExample() {
	root, err := moduleRoot()
	if err == nil {
		var out []byte
		if out, err = goBuild(root, binDir, "./sslhandle/example/starttls"); err != nil {
			err = fmt.Errorf("go build ./sslhandle/example/starttls: %w\n%s", err, out)
		}
	}
	exampleErr = err
}

// TestHandleStartTLSExample: the example Go handler under -n takes a
// message from real SMTP clients that start TLS with STARTTLS, and sees
// the TLS parameters StartTLS returned.
func TestHandleStartTLSExample(t *testing.T) {
	exampleBinary(t)
	s := startServer(t, serverConfig{bin: "starttls", flags: []string{"-n", "-c", "2"}, program: []string{"mx.test"}})
	for _, tc := range []struct {
		tool string
		args []string
		want string
	}{
		{"swaks", []string{"--tls", "--server", s.addr, "--to", "a@example.org", "--from", "b@example.org"}, "250 ok"},
		{"openssl", []string{"s_client", "-quiet", "-starttls", "smtp", "-connect", s.addr}, "250 ok 7 bytes"},
	} {
		t.Run(tc.tool, func(t *testing.T) {
			cmd := exec.Command(needTool(t, tc.tool), tc.args...)
			if tc.tool == "openssl" {
				cmd.Stdin = strings.NewReader("EHLO client\r\nMAIL FROM:<b@example.org>\r\nDATA\r\nhello\r\n.\r\nQUIT\r\n")
			}
			out, err := runWithin(cmd, waitTime)
			if err != nil || !regexp.MustCompile(regexp.QuoteMeta(tc.want)+`.* over TLSv1\.[23] \S+`).Match(out) {
				t.Fatalf("%s: %v\n%s\nserver log:\n%s", tc.tool, err, out, s.log.text())
			}
		})
	}
	s.waitCount(t, regexp.MustCompile(`end \d+ status 0$`), 2)
}

// runWithin runs cmd with its output collected, killing it after d.
func runWithin(cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t := time.AfterFunc(d, func() { cmd.Process.Kill() })
	defer t.Stop()
	err := cmd.Wait()
	return out.Bytes(), err
}

// TestHandlePrivileges: sslserver's privilege checks applied to
// sslhandle's processes. The TLS workers and the key holder are
// confined under SSL_UID/SSL_GID; the handlers run under -u/-g in
// sessions of their own, hold no TCP connection under -N, no file, and
// no key material, and their ids can read neither a worker nor the key
// holder.
func TestHandlePrivileges(t *testing.T) {
	b := startEchoBackend(t)
	cert := newCert(t, keyRSA)
	s := startServer(t, serverConfig{bin: "sslhandle", cert: cert, program: []string{b.path},
		flags: []string{"-c", "2", "-u", "1001", "-g", "1001"}, env: []string{"SSL_UID=1002", "SSL_GID=1003"}})
	handlers := s.waitHandlers(t, 2)
	held := s.holdEcho(t)
	busy := b.lastPeer()
	worker := s.handleSessionPID(t, localPort(held.raw))
	keyHolder := s.keyHolder(t)
	for _, p := range []struct {
		who string
		pid int
	}{{"worker", worker}, {"key holder", keyHolder}} {
		checkIDs(t, p.who, p.pid, 1002, 1003)
		checkRoot(t, p.who, p.pid, "", false)
		checkNotDumpable(t, p.who, p.pid, 1002, 1003)
		if got := peek(t, p.pid, 1001, 1001); got != "environ=denied mem=denied" {
			t.Errorf("a process with the handlers' ids may read the %s: %s", p.who, got)
		}
	}
	checkKeyMemory(t, cert, worker, keyHolder)
	stderr := s.stderrLink(t)
	for _, h := range handlers {
		checkProgram(t, h, 1001, 1001)
		if st, err := readStat(h); err != nil || st.ppid != s.pid || st.session != h {
			t.Errorf("handler %d: parent %d, session %d (%v); want parent %d and a session of its own", h, st.ppid, st.session, err, s.pid)
		}
		checkHandlerFDs(t, h, h == busy, stderr)
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", h)); err != nil || string(b) != "sslhandle\n" {
			t.Errorf("handler %d is named %q (%v), want sslhandle", h, b, err)
		}
		if found, n := scanMemory(t, h, keyPatterns(cert)); len(found) > 0 {
			t.Errorf("handler %d: private key material in memory (%d bytes scanned): %v", h, n, found)
		}
	}
	if err := held.roundTrip("still served\n"); err != nil {
		t.Fatal(err)
	}
}

// checkHandlerFDs: a handler has /dev/null, the server's stderr and its
// channel; while it serves a session, also the session's two pipes, its
// control socket and its backend connection. Never a TCP socket (under
// -N the client's connection stays with the worker) nor a file but the
// Go runtime's cgroup files.
func checkHandlerFDs(t testing.TB, pid int, busy bool, stderr string) {
	t.Helper()
	var pipes, sockets int
	for fd, g := range procFDs(t, pid) {
		switch {
		case fd <= 1 && g.target == "/dev/null", fd == 2 && g.target == stderr:
		case strings.HasPrefix(g.target, "/sys/fs/cgroup/"):
			// The Go runtime's own, to follow the CPU limit: a handler is
			// the user's Go program, in its default settings.
		case fd >= 3 && strings.HasPrefix(g.target, "unix:"):
			sockets++
		case fd >= 3 && strings.HasPrefix(g.target, "pipe:"):
			pipes++
		default:
			t.Errorf("handler %d: unexpected fd %d: %s", pid, fd, g.target)
		}
	}
	want := [2]int{0, 1}
	if busy {
		want = [2]int{2, 3}
	}
	if [2]int{pipes, sockets} != want {
		t.Errorf("handler %d (busy %v): %d pipes and %d unix sockets, want %v", pid, busy, pipes, sockets, want)
	}
}

// handleSessionPID is sessionPID for sslhandle's log.
func (s *server) handleSessionPID(t testing.TB, clientPort int) int {
	t.Helper()
	re := regexp.MustCompile(`^sslhandle: ok (\d+) \S+ \S*:` + strconv.Itoa(clientPort) + `$`)
	pid, _ := strconv.Atoi(s.waitLog(t, re)[1])
	return pid
}

// proxyBackend is a TCP echo service on loopback that reads a PROXY v2
// header first and keeps each one.
type proxyBackend struct {
	ln      net.Listener
	headers chan *proxyproto.Header
}

func startProxyBackend(t testing.TB) *proxyBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	b := &proxyBackend{ln: ln, headers: make(chan *proxyproto.Header, 16)}
	go b.serve()
	return b
}

func (b *proxyBackend) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		go b.session(c.(*net.TCPConn))
	}
}

// session reads the header, then echoes what follows it.
func (b *proxyBackend) session(c *net.TCPConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTime))
	r := bufio.NewReader(c)
	h, err := proxyproto.Read(r)
	if err != nil {
		return
	}
	b.headers <- h
	io.Copy(c, r)
	c.CloseWrite()
}

// TestHandleProxyHeader: with proxy, the backend learns the client's
// address, the TLS version and cipher, the SNI name, and which handler
// served the session, from a PROXY v2 header ahead of the plaintext.
func TestHandleProxyHeader(t *testing.T) {
	b := startProxyBackend(t)
	s := startHandle(t, []string{"-c", "2"}, b.ln.Addr().String(), "proxy")
	handlers := s.waitHandlers(t, 2)
	for i := 0; i < 3; i++ {
		conn, raw := s.dialTLS(t, nil)
		h := heldEcho{conn, raw}
		if err := h.roundTrip("through a PROXY header\n"); err != nil {
			t.Fatal(err)
		}
		hdr := <-b.headers
		src, dst, ok := hdr.TCPAddrs()
		if !ok || src.String() != raw.LocalAddr().String() || dst.String() != raw.RemoteAddr().String() {
			t.Errorf("header addresses %v -> %v, want %v -> %v", src, dst, raw.LocalAddr(), raw.RemoteAddr())
		}
		tlvs, err := hdr.TLVs()
		if err != nil {
			t.Fatal(err)
		}
		ssl, ok := tlvparse.FindSSL(tlvs)
		version, _ := ssl.SSLVersion()
		cipher, _ := ssl.SSLCipher()
		cs := conn.ConnectionState()
		if !ok || version != "TLSv1.3" || cs.Version != tls.VersionTLS13 || cipher != tls.CipherSuiteName(cs.CipherSuite) {
			t.Errorf("SSL TLV %+v: version %q cipher %q; the client has %s", ssl, version, cipher, tls.CipherSuiteName(cs.CipherSuite))
		}
		var sni, id string
		for _, tlv := range tlvs {
			switch tlv.Type {
			case proxyproto.PP2_TYPE_AUTHORITY:
				sni = string(tlv.Value)
			case proxyproto.PP2_TYPE_UNIQUE_ID:
				id = string(tlv.Value)
			}
		}
		pid, _, _ := strings.Cut(id, ".")
		if n, _ := strconv.Atoi(pid); sni != serverName || !slices.Contains(handlers, n) {
			t.Errorf("authority %q, unique id %q; want %q and a handler of %v", sni, id, serverName, handlers)
		}
		conn.CloseWrite()
		io.ReadAll(conn)
	}
}

// TestHandleIdleHandlersKilled: every handler killed while idle, twice
// over; sslhandle starts others, serves with them, and still stops
// cleanly.
func TestHandleIdleHandlersKilled(t *testing.T) {
	b := startEchoBackend(t)
	s := startHandle(t, []string{"-c", "3"}, b.path)
	pids := s.waitHandlers(t, 3)
	for round := 0; round < 2; round++ {
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
		s.waitCount(t, regexp.MustCompile(`handler \d+ ended \(signal 9\); starting another`), 3*(round+1))
		next := s.waitHandlers(t, 3)
		if slices.ContainsFunc(next, func(p int) bool { return slices.Contains(pids, p) }) {
			t.Fatalf("handlers %v after killing %v", next, pids)
		}
		pids = next
	}
	if errs := s.runSessions(20, 4, 1000); len(errs) > 0 {
		t.Fatalf("%d sessions failed, first: %v", len(errs), errs[0])
	}
	syscall.Kill(s.pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(waitTime):
		t.Fatal("sslhandle did not exit after SIGTERM")
	}
	if s.exitErr != nil {
		t.Errorf("sslhandle exited with %v, want status 0", s.exitErr)
	}
}

// TestHandleRelayRefusesDelayed: under -n the relay would pass plaintext
// to the backend; it refuses the session instead.
func TestHandleRelayRefusesDelayed(t *testing.T) {
	b := startEchoBackend(t)
	s := startHandle(t, []string{"-n", "-c", "1"}, b.path)
	c := s.dialTCP(t)
	io.WriteString(c, "plaintext\n")
	if got, err := io.ReadAll(c); len(got) > 0 || isTimeout(err) {
		t.Fatalf("the client got %q, %v; want the connection closed", got, err)
	}
	s.waitLog(t, regexp.MustCompile(`end \d+ status 100$`))
	if peers := b.peers(); len(peers) > 0 {
		t.Errorf("the backend was reached: %v", peers)
	}
}
