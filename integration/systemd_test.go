package integration

// systemd: socket activation through systemd-socket-activate (the
// command line keeps host and port, the inherited socket is served),
// and sd_notify's READY=1 and STOPPING=1, activated or not.

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// notifySocket is a unixgram socket standing in for systemd's
// NOTIFY_SOCKET; what it receives arrives on states.
type notifySocket struct {
	path   string
	states chan string
}

func listenNotify(t testing.TB) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	n := &notifySocket{path: path, states: make(chan string, 16)}
	go readNotify(c, n.states)
	return n
}

func readNotify(c *net.UnixConn, states chan<- string) {
	buf := make([]byte, 4096)
	for {
		k, err := c.Read(buf)
		if err != nil {
			close(states)
			return
		}
		states <- string(buf[:k])
	}
}

// expect waits for the next datagram and compares it.
func (n *notifySocket) expect(t testing.TB, want string) {
	t.Helper()
	select {
	case got := <-n.states:
		if got != want {
			t.Errorf("NOTIFY_SOCKET got %q, want %q", got, want)
		}
	case <-time.After(waitTime):
		t.Fatalf("NOTIFY_SOCKET got nothing within %v, want %q", waitTime, want)
	}
}

// none: nothing more arrives for a short while.
func (n *notifySocket) none(t testing.TB, before string) {
	t.Helper()
	select {
	case got := <-n.states:
		t.Errorf("NOTIFY_SOCKET got %q %s", got, before)
	case <-time.After(200 * time.Millisecond):
	}
}

// activated runs sslserver under systemd-socket-activate listening on
// 127.0.0.1:port, with cmdPort on sslserver's command line. The socket
// activator passes on only the variables it is given with -E.
func activated(t testing.TB, cfg serverConfig, port int) serverConfig {
	ssa := needTool(t, "systemd-socket-activate")
	cfg.wrap = []string{ssa, "-l", joinHostPort("127.0.0.1", port)}
	for _, kv := range append(serverEnv(t, cfg), cfg.env...) {
		cfg.wrap = append(cfg.wrap, "-E", kv)
	}
	return cfg
}

// TestSocketActivation: sslserver serves the socket it is handed, on
// the port its command line names; the first client, whose connection
// made the activator start sslserver, is served, and so are later ones;
// READY=1 comes once it serves and STOPPING=1 at SIGTERM; none of the
// activation's variables reaches the program.
func TestSocketActivation(t *testing.T) {
	needRoot(t)
	n := listenNotify(t)
	port := freePort(t, "127.0.0.1")
	cert := newCert(t, keyECDSA)
	cfg := activated(t, serverConfig{cert: cert, role: "env", port: strconv.Itoa(port),
		env: []string{"NOTIFY_SOCKET=" + n.path, "PROXYFROM=192.0.2.1"}}, port)
	first := make(chan string, 1)
	go activatingClient(cert, port, first)
	s := startServer(t, cfg)
	if s.port != port {
		t.Errorf("-1 printed %d, want the inherited socket's %d", s.port, port)
	}
	n.expect(t, "READY=1")
	var got map[string]string
	select {
	case dump := <-first:
		if strings.HasPrefix(dump, "ERR ") {
			t.Fatalf("the client that activated sslserver: %s", dump)
		}
		got = parseEnvDump(t, dump)
	case <-time.After(waitTime):
		t.Fatal("the client that activated sslserver was not served")
	}
	checkExact(t, got, map[string]string{"SSLLOCALPORT": strconv.Itoa(port), "SSLREMOTEIP": "127.0.0.1"})
	checkAbsent(t, got, []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "PROXYFROM"})
	raw := s.dialTCP(t)
	later := s.readEnv(t, raw, s.sessionPID(t, localPort(raw)))
	checkExact(t, later, map[string]string{"SSLLOCALPORT": strconv.Itoa(port)})
	n.none(t, "while serving")
	syscall.Kill(s.pid, syscall.SIGTERM)
	n.expect(t, "STOPPING=1")
	<-s.exited
	if s.exitErr != nil {
		t.Errorf("sslserver exited with %v after SIGTERM, want 0", s.exitErr)
	}
}

// activatingClient connects as soon as the activator listens (which
// starts sslserver) and reads the env role's dump through TLS.
func activatingClient(cert *testCert, port int, out chan<- string) {
	addr := joinHostPort("127.0.0.1", port)
	waitListen(addr)
	c, err := dialFromAddr(addr, "127.0.0.1")
	if err != nil {
		out <- "ERR " + err.Error()
		return
	}
	defer c.Close()
	tc := tls.Client(c, (&server{cert: cert}).clientConfig())
	b, err := io.ReadAll(tc)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		out <- "ERR " + err.Error()
		return
	}
	out <- string(b)
}

// runActivated runs sslserver args /bin/true under cfg's activator,
// connects once to make it start sslserver, and returns the exit code
// and stderr.
func runActivated(t *testing.T, cfg serverConfig, port int, args ...string) (int, string) {
	t.Helper()
	argv := slices.Concat(cfg.wrap, []string{binary(t, "sslserver")}, args, []string{"/bin/true"})
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := joinHostPort("127.0.0.1", port)
	waitListen(addr)
	if c, err := net.Dial("tcp", addr); err == nil {
		defer c.Close()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return exitCode(err), stderr.String()
	case <-time.After(waitTime):
		cmd.Process.Kill()
		<-done
		t.Fatalf("sslserver under systemd-socket-activate still runs after %v:\n%s", waitTime, stderr.String())
	}
	return 0, ""
}

// TestSocketActivationWrongPort: an inherited socket on another port
// than the command line's stops sslserver at once, exit 111, one line.
func TestSocketActivationWrongPort(t *testing.T) {
	needRoot(t)
	port := freePort(t, "127.0.0.1")
	cfg := activated(t, serverConfig{role: "env", cert: newCert(t, keyECDSA)}, port)
	code, stderr := runActivated(t, cfg, port, "127.0.0.1", strconv.Itoa(port+1))
	want := regexp.MustCompile(`(?m)^sslserver: fatal: socket activation: the inherited socket is bound to port ` +
		strconv.Itoa(port) + `, the command line says ` + strconv.Itoa(port+1) + `$`)
	if code != 111 || !want.MatchString(stderr) {
		t.Errorf("exit %d, stderr %q; want 111 and %s", code, stderr, want)
	}
	cfg = activated(t, serverConfig{role: "env", cert: newCert(t, keyECDSA)}, port)
	code, stderr = runActivated(t, cfg, port, "-3", "127.0.0.1", strconv.Itoa(port))
	if code != 111 || !strings.Contains(stderr, "fatal: -3 reads the passphrase from fd 3, where socket activation put the listening socket") {
		t.Errorf("-3 under socket activation: exit %d, stderr %q; want 111 and a fatal line", code, stderr)
	}
}

// TestNotifyNotActivated: a sslserver that binds its port tells
// NOTIFY_SOCKET READY=1 too, once it serves, and STOPPING=1 at SIGTERM.
func TestNotifyNotActivated(t *testing.T) {
	n := listenNotify(t)
	s := startServer(t, serverConfig{role: "echo", env: []string{"NOTIFY_SOCKET=" + n.path}})
	n.expect(t, "READY=1")
	tc, _ := s.dialTLS(t, nil)
	tc.Write([]byte("x\n"))
	tc.Close()
	syscall.Kill(s.pid, syscall.SIGTERM)
	n.expect(t, "STOPPING=1")
	<-s.exited
}
