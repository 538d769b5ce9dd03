package integration

// sslclient's TLS process is confined: as root fully (nobody's ids, an
// empty root, no new privileges, not dumpable), without root as far as
// an unprivileged process can. The program never holds the client key.

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tlsProcessOf finds sslclient's TLS process among its children.
func tlsProcessOf(t *testing.T, sslclient int) int {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for time.Now().Before(deadline) {
		for _, c := range children(sslclient) {
			if argv0(c) == "sslclient-tlsworker" {
				return c
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no child of sslclient %d with argv[0] sslclient-tlsworker: %v", sslclient, describePIDs(children(sslclient)))
	return 0
}

// heldClient starts sslclient with the chold role and returns it with
// the pids of its program and TLS process.
func heldClient(t *testing.T, r clientRun) (*clientProc, int, int) {
	t.Helper()
	r.role = "chold"
	p := startClient(t, r)
	prog, _ := strconv.Atoi(p.stdout.waitFor(t, regexp.MustCompile(`READY (\d+)\n`))[1])
	worker := tlsProcessOf(t, p.cmd.Process.Pid)
	if st, err := readStat(prog); err != nil || st.ppid != p.cmd.Process.Pid {
		t.Errorf("program %d has parent %d (%v), want sslclient %d", prog, st.ppid, err, p.cmd.Process.Pid)
	}
	return p, prog, worker
}

func TestSslclientConfinedAsRoot(t *testing.T) {
	needRoot(t)
	t.Parallel()
	ca := newTestCA(t, "Itest CA")
	s := serverWithCA(t, ca, serverConfig{role: "echo"})
	cc := ca.issue(t, leafSpec{cn: "client.example", client: true})
	p, prog, worker := heldClient(t, clientRun{args: []string{"-RHl0", "127.0.0.1", portOf(s)},
		env: []string{"CAFILE=" + ca.path, "CERTFILE=" + cc.certPath, "KEYFILE=" + cc.keyPath}})
	uid, gid := nobodyIDs(t)
	checkIDs(t, "TLS process", worker, uid, gid)
	checkRoot(t, "TLS process", worker, "", false)
	checkNotDumpable(t, "TLS process", worker, uid, gid)
	// A session of its own: the terminal sslclient may run on is not the
	// TLS process's controlling tty, to push input into with TIOCSTI.
	if st, err := readStat(worker); err != nil || st.session != worker || st.tty != 0 {
		t.Errorf("TLS process %d: %+v (%v), want a session of its own and no controlling tty", worker, st, err)
	}
	root, err := os.Readlink(fmt.Sprintf("/proc/%d/root", worker))
	if err != nil {
		t.Fatal(err)
	}
	checkKeyOnlyInTLSProcess(t, cc, worker, prog)
	res := p.finish()
	if res.code != 0 {
		t.Errorf("exit %d\n%s", res.code, res.stderr)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("the TLS process's root %q is still there after sslclient exited (%v)", root, err)
	}
}

// checkKeyOnlyInTLSProcess: the client key is in the TLS process (the
// control: there is no key holder on the client side), never in the
// program, and the key file is no longer open anywhere.
func checkKeyOnlyInTLSProcess(t *testing.T, cc *testCert, worker, prog int) {
	t.Helper()
	found, n := scanMemory(t, worker, keyPatterns(cc))
	if !hasSecret(cc, found) {
		t.Errorf("control failed: no secret of the client key in the TLS process (%d bytes scanned, found %v)", n, found)
	}
	if found, n := scanMemory(t, prog, keyPatterns(cc)); len(found) > 0 {
		t.Errorf("the program holds client key material (%d bytes scanned): %v", n, found)
	}
	for _, pid := range []int{worker, prog} {
		for fd, info := range procFDs(t, pid) {
			if strings.Contains(info.target, "key.pem") {
				t.Errorf("process %d still has the key file open on fd %d", pid, fd)
			}
		}
	}
}

func hasSecret(cc *testCert, found []string) bool {
	for _, f := range found {
		if cc.secrets[f] != nil {
			return true
		}
	}
	return false
}

// Run as nobody, sslclient cannot chroot its TLS process or change its
// ids, but the TLS process still forbids new privileges, core dumps and
// file writes, limits its descriptors and cannot be read by the program
// of the same uid.
func TestSslclientConfinedUnprivileged(t *testing.T) {
	needRoot(t) // to become nobody
	t.Parallel()
	ca := newTestCA(t, "Itest CA")
	s := serverWithCA(t, ca, serverConfig{role: "echo"})
	uid, gid := nobodyIDs(t)
	p, prog, worker := heldClient(t, clientRun{args: []string{"-RHl0", "127.0.0.1", portOf(s)},
		env:  []string{"CAFILE=" + ca.path},
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}})
	st := procStatus(t, worker)
	if want := strings.Repeat(strconv.Itoa(uid)+"\t", 3) + strconv.Itoa(uid); st["Uid"] != want || st["NoNewPrivs"] != "1" {
		t.Errorf("TLS process: Uid %q NoNewPrivs %q, want %q and 1", st["Uid"], st["NoNewPrivs"], want)
	}
	limits := procLimits(t, worker)
	for name, want := range map[string]string{"Max open files": "32 32", "Max file size": "0 0", "Max core file size": "0 0"} {
		if limits[name] != want {
			t.Errorf("TLS process: %s %q, want %q", name, limits[name], want)
		}
	}
	checkNotDumpable(t, "TLS process", worker, uid, gid)
	checkProgram(t, prog, uid, gid) // the control: the program itself is readable
	if res := p.finish(); res.code != 0 {
		t.Errorf("exit %d\n%s", res.code, res.stderr)
	}
}

// procLimits reads /proc/PID/limits as "soft hard" per limit name.
func procLimits(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)`)
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := re.FindStringSubmatch(line); f != nil {
			m[f[1]] = f[2] + " " + f[3]
		}
	}
	return m
}
