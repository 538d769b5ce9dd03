package integration

// The hostile worker: one harness for every test that needs a TLS
// worker to play a compromised one, as a real process under a real
// supervisor.
//
// A server started with serverConfig.hostile set to a uid (pick one with
// hostileUID, or use hostileServer) is this test binary run as sslserver
// (argv[0] hostileArgv0): its supervisor re-executes the binary through
// /proc/self/exe as its key holder and its TLS workers, all with that
// uid. A worker reads its plan, the file plan-UID next to the binary
// (setPlan writes it), when it starts; without one it is the real
// worker. The plan's first step says what kind of attacker it is:
//
//   - "sandbox": the real worker that, once confined and sandboxed and
//     before it says it is ready, tries every call the sandbox refuses
//     (sandboxAttack, roles_sandbox_test.go), reports
//     "sandbox-probe: NAME ERRNO" for each, and then serves as usual.
//   - a protocol attack (protocolAttack): a worker that takes its
//     configuration and then sends the supervisor a message no real
//     worker sends: an SSL_* report with a forbidden name (hostileBlocks),
//     or keys with 64 descriptors out of turn ("keys" after it took its
//     session, "keys-before-taken", "keys-before-ready").
//   - otherwise steps made with the descriptors, ids, session and
//     namespaces a real worker starts with, before it confines itself
//     (stepAttack): each reported as "hostile: STEP: RESULT" on its
//     stderr, then "hostile: done", and the worker exits 111.
//
// Plans are per uid, so that a test's plan reaches only its own
// server's workers.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/env"
	"github.com/ucspi-tls/sslserver/internal/testutil"
	"github.com/ucspi-tls/sslserver/protocol"
	"github.com/ucspi-tls/sslserver/supervisor"
	"github.com/ucspi-tls/sslserver/tlsworker"
)

// hostileArgv0 is the argv[0] under which this test binary is sslserver.
const hostileArgv0 = "sslserver-hostile"

// runHostile runs the roles of a hostile server's processes; ok is false
// when this process is none of them.
func runHostile() (code int, ok bool) {
	switch os.Args[0] {
	case hostileArgv0:
		return supervisor.Main(os.Args[1:], os.Stdout, os.Stderr), true
	case protocol.KeyHolderArgv0:
		return tlsworker.KeyHolderMain(), true
	case protocol.WorkerArgv0:
		return hostileWorker(readPlan()), true
	}
	return 0, false
}

// planPath is the plan for the workers of uid, next to itestBin (which
// a worker knows as its own executable, in dir).
func planPath(dir string, uid int) string {
	return filepath.Join(dir, "plan-"+strconv.Itoa(uid))
}

// readPlan is this worker's plan, one step a line; nil without one.
func readPlan() []string {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	b, err := os.ReadFile(planPath(filepath.Dir(exe), os.Getuid()))
	if err != nil {
		return nil
	}
	var plan []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			plan = append(plan, line)
		}
	}
	return plan
}

// hostileWorker is the worker its plan makes it.
func hostileWorker(plan []string) int {
	switch {
	case len(plan) == 0:
		return tlsworker.WorkerMain()
	case plan[0] == "sandbox":
		return tlsworker.WorkerMainThen(sandboxAttack)
	case isProtocolAttack(plan[0]):
		return protocolAttack(plan[0])
	}
	return stepAttack(plan)
}

// stepAttack makes each step on the worker's fd 2 (the supervisor's
// relay) or on other processes' pids, and reports its result.
func stepAttack(plan []string) int {
	for _, step := range plan {
		fmt.Fprintf(os.Stderr, "hostile: %s: %s\n", step, testutil.ErrnoName(doStep(strings.Fields(step))))
	}
	fmt.Fprintln(os.Stderr, "hostile: done")
	return protocol.ExitTemp
}

// doStep makes one step:
//
//	shutdown      shutdown(2, SHUT_WR)
//	truncate      ftruncate(2, 0)
//	tiocsti       ioctl(2, TIOCSTI) for each byte of "id\n"
//	kill PID      kill(PID, SIGKILL)
//	ptrace PID    ptrace(PTRACE_ATTACH, PID)
//	flood N       N lines on stderr, then a second's pause, after which
//	              the supervisor's relay takes its lines again
func doStep(step []string) error {
	arg := 0
	if len(step) > 1 {
		arg, _ = strconv.Atoi(step[1])
	}
	switch step[0] {
	case "shutdown":
		return unix.Shutdown(2, unix.SHUT_WR)
	case "truncate":
		return unix.Ftruncate(2, 0)
	case "tiocsti":
		return injectInput(2, "id\n")
	case "kill":
		return unix.Kill(arg, unix.SIGKILL)
	case "ptrace":
		return unix.PtraceAttach(arg)
	case "flood":
		for i := 0; i < arg; i++ {
			fmt.Fprintf(os.Stderr, "flood %d\n", i)
		}
		time.Sleep(time.Second)
		return nil
	}
	return fmt.Errorf("unknown step %q", step[0])
}

// injectInput pushes s into the input of the terminal on fd, a byte at a
// time, as if typed there.
func injectInput(fd int, s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCSTI, uintptr(unsafe.Pointer(&c))); e != 0 {
			return e
		}
	}
	return nil
}

// hostileBlocks are SSL_* reports no real worker makes.
var hostileBlocks = map[string]string{
	"sslcertfile": "SSL_PROTOCOL=TLSv1.3\x00SSL_CERT_FILE=/tmp/evil.pem\x00\x00",
	"ldpreload":   "LD_PRELOAD=/tmp/evil.so\x00\x00",
	"equals":      "SSL_=CERT_DIR=/tmp\x00\x00",
	"nul":         "SSL_CERT\x00_FILE=/tmp/evil.pem\x00\x00",
	"oversized":   "SSL_CLIENT_S_DN=" + strings.Repeat("a", env.MaxTLSValue+1) + "\x00\x00",
	"newline":     "SSL_CLIENT_S_DN_CN=a\nRELAYCLIENT=\x00\x00",
	"toomany":     strings.Repeat("SSL_CLIENT_SAN_DNS_0=x\x00", env.MaxTLSVars+1) + "\x00",
}

func isProtocolAttack(step string) bool {
	_, report := hostileBlocks[step]
	return report || step == "keys" || step == "keys-before-taken" || step == "keys-before-ready" || step == "tickets"
}

// protocolAttack speaks the worker's side of the protocol up to the
// point the attack names, makes it, then waits to be killed.
func protocolAttack(attack string) int {
	sup, err := protocol.NewChannel(os.NewFile(protocol.WorkerFdSupervisor, "supervisor"), protocol.SupervisorOrders)
	if err != nil {
		return protocol.ExitTemp
	}
	if _, _, err := sup.Recv(); err != nil { // the configuration
		return protocol.ExitTemp
	}
	if attack != "keys-before-ready" {
		// It claims the sandbox a real worker reports: the supervisor
		// would not give a session to one without it.
		sup.Send(&protocol.WorkerReady{Seccomp: true})
		m, _, err := sup.Recv() // the session
		if err != nil {
			return protocol.ExitTemp
		}
		if attack != "keys-before-taken" {
			sup.Send(&protocol.SessionTaken{Seq: m.(*protocol.Session).Seq})
		}
	}
	sendAttack(sup, attack)
	time.Sleep(roleDeadline)
	return protocol.ExitTemp
}

func sendAttack(sup *protocol.Channel, attack string) {
	if attack == "tickets" {
		probeTickets() // on its key channel (hostile_tickets_test.go)
		return
	}
	if block, ok := hostileBlocks[attack]; ok {
		sup.Send(&protocol.HandshakeDone{Protocol: "TLSv1.3", Cipher: "TLS_AES_128_GCM_SHA256", Block: []byte(block)})
		return
	}
	// keys, keys-before-taken, keys-before-ready: the most descriptors a
	// message carries.
	files := make([]*os.File, protocol.MaxKeyFiles)
	for i := range files {
		files[i], _ = os.Open(os.DevNull)
	}
	sup.Send(&protocol.Keys{Count: protocol.MaxKeyFiles, UID: 1, GID: 1, Root: "/x"}, files...)
}

// The test's side.

// hostileUID gives each test with a hostile worker a uid of its own, so
// that a plan reaches only its own server's workers.
func hostileUID(t testing.TB) int {
	t.Helper()
	hostileUIDs.mu.Lock()
	defer hostileUIDs.mu.Unlock()
	hostileUIDs.next++
	return 47000 + hostileUIDs.next
}

var hostileUIDs struct {
	mu   sync.Mutex
	next int
}

// setPlan makes every worker that the hostile server of uid starts from
// now on follow steps; the returned func ends that (the workers started
// afterwards are real ones), as does the end of the test.
func setPlan(t testing.TB, uid int, steps ...string) func() {
	t.Helper()
	p := planPath(binDir, uid)
	if err := os.WriteFile(p, []byte(strings.Join(steps, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	undo := func() { os.Remove(p) }
	t.Cleanup(undo)
	return undo
}

// hostileServer starts a hostile server with its own worker uid, no idle
// workers (each session starts its own), and stderr of the given kind.
func hostileServer(t *testing.T, kind stderrKind, role string, roleEnv ...string) (*server, int) {
	t.Helper()
	uid := hostileUID(t)
	s := startServer(t, serverConfig{hostile: uid, stderr: kind, role: role, roleEnv: roleEnv,
		env: []string{"SSL_PREFORK=0"}})
	return s, uid
}

// attackOnce makes the next worker follow steps, lets a client start it,
// and returns the worker's results by step, from the lines it wrote on
// its stderr as they reached the supervisor's log.
func (s *server) attackOnce(t *testing.T, uid int, steps ...string) map[string]string {
	t.Helper()
	end := setPlan(t, uid, steps...)
	c := s.dialTCP(t)
	expectClosed(t, c)
	done := s.waitLog(t, regexp.MustCompile(`^sslserver: worker (\d+): hostile: done$`))
	end()
	results := map[string]string{}
	re := regexp.MustCompile(`^sslserver: worker ` + done[1] + `: hostile: (.+): (\S+)$`)
	for _, m := range s.log.matches(re) {
		results[m[1]] = m[2]
	}
	return results
}
