package integration

// REUSEPORT=1: a second sslserver binds the port of a running one, the
// first is told SIGTERM and drains, and clients connecting all along
// see no failure. It runs in a network namespace of its own, so the
// test may set net.ipv4.tcp_migrate_req there without touching the
// machine's.

import (
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// handoverResult counts the client sessions of a handover.
type handoverResult struct {
	tried, failed atomic.Int64
	mu            sync.Mutex
	errs          []string
}

func (r *handoverResult) fail(err error) {
	r.failed.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) < 5 {
		r.errs = append(r.errs, err.Error())
	}
}

// TestReusePortHandover: with net.ipv4.tcp_migrate_req=1, the kernel
// moves the connections waiting in the old server's accept queue to the
// new one when the old closes its socket: zero failed sessions, and the
// old server exits 0 once its last session ends. ITEST_MIGRATE=0 measures
// the kernel's default instead, where such connections are reset; it
// reports and does not fail.
func TestReusePortHandover(t *testing.T) {
	needRoot(t)
	migrate := os.Getenv("ITEST_MIGRATE")
	if migrate == "" {
		migrate = "1"
	}
	nsfd, leave := enterNetNS(t, migrate)
	defer leave()
	res := &handoverResult{}
	// The old server is at its -c limit, held by one session: every
	// client the kernel gives it waits in its accept queue, which is
	// what the handover must not lose.
	old := startServer(t, serverConfig{flags: []string{"-c", "1"}, env: []string{"REUSEPORT=1"}, role: "echo"})
	held, _ := old.dialTLS(t, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go handoverClient(old, nsfd, res, stop, &wg)
	}
	time.Sleep(300 * time.Millisecond)
	next := startServer(t, serverConfig{env: []string{"REUSEPORT=1"}, role: "echo", port: strconv.Itoa(old.port), cert: old.cert})
	time.Sleep(300 * time.Millisecond)
	syscall.Kill(old.pid, syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	held.Close()
	select {
	case <-old.exited:
	case <-time.After(waitTime):
		t.Fatalf("the old sslserver did not exit within %v of SIGTERM", waitTime)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("tcp_migrate_req=%s: %d sessions tried, %d failed %q", migrate, res.tried.Load(), res.failed.Load(), res.errs)
	if old.exitErr != nil {
		t.Errorf("the old sslserver exited with %v, want 0", old.exitErr)
	}
	if served := next.countLog(endOK); served == 0 {
		t.Errorf("the new sslserver served no session")
	}
	warned := old.countLog(migrateWarning) == 1
	if warned != (migrate != "1") {
		t.Errorf("tcp_migrate_req=%s: warned at start: %v", migrate, warned)
	}
	if migrate == "1" && (res.failed.Load() != 0 || res.tried.Load() < 20) {
		t.Errorf("%d of %d sessions failed across the handover, want 0 of at least 20: %q", res.failed.Load(), res.tried.Load(), res.errs)
	}
}

var (
	endOK          = regexp.MustCompile(`^sslserver: end \d+ status 0$`)
	migrateWarning = regexp.MustCompile(`^sslserver: warning: REUSEPORT=1 but net\.ipv4\.tcp_migrate_req is not 1: clients waiting in the accept queue when this sslserver stops will be reset, not handed to the next one$`)
)

// TestServiceSettingErrors: a malformed PROXYFROM or REUSEPORT stops
// sslserver at start with one fatal line, exit 111; without REUSEPORT a
// second sslserver cannot bind a port a REUSEPORT one holds.
func TestServiceSettingErrors(t *testing.T) {
	needRoot(t)
	s := startServer(t, serverConfig{env: []string{"REUSEPORT=1"}, role: "echo"})
	port := strconv.Itoa(s.port)
	for _, tc := range []struct {
		env  []string
		port string
		want string
	}{
		{[]string{"REUSEPORT=yes"}, "0", `REUSEPORT="yes": want 1 or 0`},
		{[]string{"PROXYFROM=10.0.0.1,10.0.0.0/33"}, "0", `PROXYFROM: "10.0.0.0/33" is not an address or CIDR prefix`},
		{[]string{"PROXYFROM=10.0.0.1,"}, "0", `PROXYFROM: "" is not an address or CIDR prefix`},
		{nil, port, `unable to bind: unable to bind 127.0.0.1:` + port + `: address already in use`},
	} {
		env := append(serverEnv(t, serverConfig{cert: s.cert}), tc.env...)
		code, _, stderr := runCLI(t, "sslserver", env, "127.0.0.1", tc.port, "/bin/true")
		want := regexp.MustCompile(`^sslserver: fatal: ` + regexp.QuoteMeta(tc.want) + `\n$`)
		if code != 111 || !want.MatchString(stderr) {
			t.Errorf("%v port %s: exit %d, stderr %q; want 111 and %s", tc.env, tc.port, code, stderr, want)
		}
	}
}

// enterNetNS moves the test's goroutine, locked to its thread, into a
// new network namespace with lo up and tcp_migrate_req set; sslserver,
// started from this thread, inherits it. It returns the namespace, for
// the clients, and leave, which puts the thread back: it may be the main
// thread, which never ends, and whose namespace is what /proc/net shows
// every other test.
func enterNetNS(t *testing.T, migrate string) (int, func()) {
	t.Helper()
	runtime.LockOSThread()
	home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	leave := func() { leaveNetNS(home) }
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		leave()
		t.Fatalf("unshare(CLONE_NEWNET): %v", err)
	}
	if err := loUp(); err != nil {
		leave()
		t.Fatalf("bringing lo up: %v", err)
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/tcp_migrate_req", []byte(migrate), 0); err != nil {
		leave()
		t.Fatalf("this kernel cannot migrate requests (Linux 5.14 or later): %v", err)
	}
	fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		leave()
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd, leave
}

// leaveNetNS puts the locked thread back into the namespace home and
// unlocks it; a thread that cannot go back is left locked, so that it
// ends with its goroutine (or, the main thread, stays out of use).
func leaveNetNS(home int) {
	defer unix.Close(home)
	if unix.Setns(home, unix.CLONE_NEWNET) == nil {
		runtime.UnlockOSThread()
	}
}

func loUp() error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr)
}

// handoverClient joins the test's namespace on a thread of its own and
// runs sessions one after another until stop: connect, handshake, one
// line echoed.
func handoverClient(s *server, nsfd int, res *handoverResult, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	runtime.LockOSThread()
	home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		res.fail(err)
		return
	}
	defer leaveNetNS(home)
	if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
		res.fail(fmt.Errorf("setns: %w", err))
		return
	}
	for {
		select {
		case <-stop:
			return
		default:
		}
		res.tried.Add(1)
		if err := handoverSession(s); err != nil {
			res.fail(err)
		}
	}
}

func handoverSession(s *server) error {
	c, err := dialFromAddr(s.addr, "127.0.0.1")
	if err != nil {
		return err
	}
	defer c.Close()
	tc := tls.Client(c, s.clientConfig())
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if _, err := tc.Write([]byte("ping\n")); err != nil {
		return err
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(tc, got); err != nil || string(got) != "ping\n" {
		return fmt.Errorf("echo: %q, %v", got, err)
	}
	return nil
}
