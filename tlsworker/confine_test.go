package tlsworker

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// utChildVar makes the test binary, started by TestConfineInChild, play
// a confined process instead of running tests: "confine" or
// "canconfine". utJailVar carries the jail as uid:gid:maxfiles:root.
const (
	utChildVar  = "TLSWORKER_UT_CONFINE_CHILD"
	utJailVar   = "TLSWORKER_UT_JAIL"
	utRootFDVar = "TLSWORKER_UT_ROOTFD" // set: the jail's root is fd 3, as the supervisor passes it
)

// utConfinedEnv is the environment the supervisor gives confined
// processes (supervisor.confinedEnv, which this package cannot import).
const utConfinedEnv = "GODEBUG=containermaxprocs=0,updatemaxprocs=0"

// utLockedThreads is how many extra threads the child holds while it
// confines itself: every thread must end up with the same ids and flags.
const utLockedThreads = 4

// TestConfineChildRole is the child's entry point.
func TestConfineChildRole(t *testing.T) {
	switch os.Getenv(utChildVar) {
	case "confine":
		utConfineChild(t)
	case "canconfine":
		fmt.Printf("canconfine %v\n", CanConfine())
	case "sandbox-time":
		utSandboxTime()
	case "landlock":
		utLandlockChild()
	default:
		t.Skip("runs only as a child of TestConfineInChild")
	}
}

// utConfineChild confines itself into the jail in utJailVar, prints
// what it then observes, one "name value" line each, then "ready", and
// waits for its stdin to close so the parent can inspect it in /proc.
func utConfineChild(t *testing.T) {
	j, err := utParseJail(os.Getenv(utJailVar))
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv(utRootFDVar) != "" {
		j.RootFD = 3
	}
	release := make(chan struct{})
	defer close(release)
	for range utLockedThreads {
		go utHoldThread(release)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("before %d\n", os.Getuid())
	if err := Confine(j); err != nil {
		fmt.Printf("confine %v\n", err)
		return
	}
	fmt.Println("confine ok")
	utReportConfined(self)
	layers, err := Sandbox()
	fmt.Printf("sandbox %v %v\n", layers, err)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	fmt.Printf("socket %d %v\n", fd, err)
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
}

// utHoldThread keeps an OS thread of its own until release closes.
func utHoldThread(release <-chan struct{}) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	<-release
}

func utParseJail(s string) (Jail, error) {
	f := strings.SplitN(s, ":", 4)
	if len(f) != 4 {
		return Jail{}, fmt.Errorf("jail %q: want uid:gid:maxfiles:root", s)
	}
	var n [3]uint64
	for i := range n {
		v, err := strconv.ParseUint(f[i], 10, 32)
		if err != nil {
			return Jail{}, fmt.Errorf("jail %q: %w", s, err)
		}
		n[i] = v
	}
	return Jail{UID: uint32(n[0]), GID: uint32(n[1]), MaxFiles: n[2], Root: f[3]}, nil
}

// utReportConfined prints what a confined process can see and do; self
// is a path outside the jail.
func utReportConfined(self string) {
	r, e, s := unix.Getresuid()
	fmt.Printf("resuid %d %d %d\n", r, e, s)
	r, e, s = unix.Getresgid()
	fmt.Printf("resgid %d %d %d\n", r, e, s)
	g, err := unix.Getgroups()
	fmt.Printf("groups %v %v\n", g, err)
	var st unix.Stat_t
	err = unix.Stat("/", &st)
	fmt.Printf("root %d %d %v\n", st.Dev, st.Ino, err)
	nnp, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	fmt.Printf("no_new_privs %d %v\n", nnp, err)
	d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	fmt.Printf("dumpable %d %v\n", d, err)
	fmt.Printf("setuid0 %v\n", syscall.Setuid(0))
	fmt.Printf("setgid0 %v\n", syscall.Setgid(0))
	fmt.Printf("chroot %v\n", syscall.Chroot("/"))
	fmt.Printf("outside %v\n", unix.Stat(self, &st))
	_, err = os.Create("/planted")
	fmt.Printf("create %v\n", err)
	for _, l := range []struct {
		name string
		res  int
	}{{"nofile", unix.RLIMIT_NOFILE}, {"core", unix.RLIMIT_CORE}, {"fsize", unix.RLIMIT_FSIZE}} {
		var rl unix.Rlimit
		err := unix.Getrlimit(l.res, &rl)
		fmt.Printf("%s %d %d %v\n", l.name, rl.Cur, rl.Max, err)
	}
}

// utCgoFree reports whether this test binary was built with
// CGO_ENABLED=0.
func utCgoFree() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "CGO_ENABLED" {
			return s.Value == "0"
		}
	}
	return false
}

// utChildBinary is a copy of this test binary, or one built with
// CGO_ENABLED=0 if this one was not: only such a binary can set
// no_new_privs on every thread, as the Makefile's builds do. It lies in
// a directory nobody may enter, as a child started with StartAttr must
// exec it with the jail's ids.
func utChildBinary(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tlsworker-child")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "tlsworker-nocgo.test")
	if utCgoFree() {
		self, err := os.Executable()
		if err == nil {
			err = utCopyFile(self, out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	gobin, err := exec.LookPath("go") // go test puts GOROOT/bin first
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gobin, "test", "-c", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the test binary with CGO_ENABLED=0: %v\n%s", err, b)
	}
	return out
}

func utCopyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}

func utChildCommand(ctx context.Context, bin, role string, extraEnv ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, "-test.run=^TestConfineChildRole$")
	cmd.Env = append([]string{utChildVar + "=" + role, utConfinedEnv}, extraEnv...)
	return cmd
}

// utRequireRoot skips a test that needs root, except under CI, where
// the test must run.
func utRequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root, and CI=true says it must run")
	}
	t.Skip("needs root")
}

// TestConfineRefusesRootIDs: Confine will not make a process uid 0 or
// gid 0, and refuses before changing anything.
func TestConfineRefusesRootIDs(t *testing.T) {
	uid, gid := os.Getuid(), os.Getgid()
	for _, j := range []Jail{
		{UID: 0, GID: 65534, Root: t.TempDir(), MaxFiles: 32},
		{UID: 65534, GID: 0, Root: t.TempDir(), MaxFiles: 32},
		{UID: 0, GID: 0, Root: t.TempDir(), MaxFiles: 32},
	} {
		err := Confine(j)
		if err == nil || !strings.Contains(err.Error(), "refusing") {
			t.Errorf("Confine(%+v) = %v, want a refusal", j, err)
		}
	}
	if os.Getuid() != uid || os.Getgid() != gid {
		t.Fatal("a refused Confine changed the process's ids")
	}
}

// TestConfineMissingRoot: a jail directory that does not exist fails
// before the first step.
func TestConfineMissingRoot(t *testing.T) {
	var before unix.Stat_t
	if err := unix.Stat("/", &before); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	err := Confine(Jail{UID: 65534, GID: 65534, Root: missing, MaxFiles: 32})
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Confine into %q: %v, want an error naming it", missing, err)
	}
	var after unix.Stat_t
	if err := unix.Stat("/", &after); err != nil || after.Ino != before.Ino || after.Dev != before.Dev {
		t.Fatalf("a failed Confine changed the root directory (%v)", err)
	}
}

// TestConfineInChild runs Confine where it can do no harm: in a child,
// which is this test binary built without cgo.
func TestConfineInChild(t *testing.T) {
	bin := utChildBinary(t)
	t.Run("CanConfine", func(t *testing.T) { utTestCanConfine(t, bin) })
	t.Run("jail from root", func(t *testing.T) { utTestJail(t, bin, false) })
	t.Run("jail from StartAttr", func(t *testing.T) { utTestJail(t, bin, true) })
	t.Run("wrong start", func(t *testing.T) { utTestWrongStart(t, bin) })
}

// utTestCanConfine: a CGO_ENABLED=0 binary can confine; this binary's
// answer agrees with how it was built.
func utTestCanConfine(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), utBound)
	defer cancel()
	out, err := utChildCommand(ctx, bin, "canconfine").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "canconfine <nil>\n") {
		t.Errorf("the CGO_ENABLED=0 child says %q (%v), want CanConfine to succeed", out, err)
	}
	err = CanConfine()
	switch {
	case utCgoFree() && err != nil:
		t.Errorf("built with CGO_ENABLED=0, CanConfine() = %v", err)
	case err != nil && !strings.Contains(err.Error(), "CGO_ENABLED=0"):
		t.Errorf("CanConfine() = %v, want advice to build with CGO_ENABLED=0", err)
	}
}

// utJailIDs are nobody's uid and nogroup's gid, looked up as the
// supervisor does before it starts a confined process.
func utJailIDs(t testing.TB) (uid, gid uint32) {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	g, err := user.LookupGroup("nogroup")
	if err != nil {
		t.Skipf("no group nogroup: %v", err)
	}
	ui, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gi, err2 := strconv.ParseUint(g.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		t.Fatalf("nobody is %q, nogroup %q", u.Uid, g.Gid)
	}
	return uint32(ui), uint32(gi)
}

// utTestJail confines a child into an empty directory and checks what
// it reports and what /proc says about each of its threads. The child
// starts as root, or as the supervisor starts its workers: with the
// jail's ids and CAP_SYS_CHROOT (StartAttr).
func utTestJail(t *testing.T, bin string, viaStartAttr bool) {
	utRequireRoot(t)
	uid, gid := utJailIDs(t)
	root := utJailDir(t)
	if viaStartAttr {
		root = utClosedJailDir(t)
	}
	var rootSt unix.Stat_t
	if err := unix.Stat(root, &rootSt); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), utBound)
	defer cancel()
	cmd := utChildCommand(ctx, bin, "confine", fmt.Sprintf("%s=%d:%d:32:%s", utJailVar, uid, gid, root))
	before := "0"
	if viaStartAttr {
		cmd.SysProcAttr = StartAttr(Jail{UID: uid, GID: gid, Root: root})
		before = strconv.FormatUint(uint64(uid), 10)
		cmd.ExtraFiles = []*os.File{utOpenPath(t, root)}
		cmd.Env = append(cmd.Env, utRootFDVar+"=1")
	}
	report, procs := utRunConfined(t, cmd)

	ids := func(id uint32) string { return fmt.Sprintf("%d %d %d", id, id, id) }
	want := map[string]string{
		"before":       before,
		"confine":      "ok",
		"resuid":       ids(uid),
		"resgid":       ids(gid),
		"groups":       "[] <nil>",
		"root":         fmt.Sprintf("%d %d <nil>", rootSt.Dev, rootSt.Ino),
		"no_new_privs": "1 <nil>",
		"dumpable":     "0 <nil>",
		"setuid0":      syscall.EPERM.Error(),
		"setgid0":      syscall.EPERM.Error(),
		"chroot":       syscall.EPERM.Error(),
		"outside":      syscall.ENOENT.Error(),
		"create":       "open /planted: " + syscall.EACCES.Error(),
		"nofile":       "32 32 <nil>",
		"core":         "0 0 <nil>",
		"fsize":        "0 0 <nil>",
		"sandbox":      Layers{Seccomp: true, Landlock: landlockVersion()}.String() + " <nil>",
		"socket":       "-1 " + syscall.EPERM.Error(),
	}
	for k, v := range want {
		if report[k] != v {
			t.Errorf("the confined child reports %s %q, want %q", k, report[k], v)
		}
	}
	utCheckProc(t, procs, root, uid, gid)
}

// utJailDir is an empty directory, 0555, that the jail's ids can reach
// (t.TempDir's parent is root's alone).
func utJailDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tlsworker-jail")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	return dir
}

// utClosedJailDir is an empty directory, 0555, under a directory only
// root may enter: a child started with StartAttr reaches it only through
// the descriptor that utOpenPath opens.
func utClosedJailDir(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "jail") // t.TempDir is 0700
	if err := os.Mkdir(root, 0o555); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o555); err != nil {
		t.Fatal(err)
	}
	return root
}

// utOpenPath opens dir as the supervisor opens SSL_CHROOT.
func utOpenPath(t *testing.T, dir string) *os.File {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), dir)
	t.Cleanup(func() { f.Close() })
	return f
}

// utTestWrongStart: a process that is neither root nor already the
// jail's uid refuses to confine itself, and says why.
func utTestWrongStart(t *testing.T, bin string) {
	utRequireRoot(t)
	uid, gid := utJailIDs(t)
	root := utJailDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), utBound)
	defer cancel()
	cmd := utChildCommand(ctx, bin, "confine", fmt.Sprintf("%s=%d:%d:32:%s", utJailVar, uid, gid, root))
	cmd.SysProcAttr = StartAttr(Jail{UID: uid + 1, GID: gid, Root: root})
	out, _ := cmd.Output()
	if !strings.Contains(string(out), "confine confine: started neither as root nor with the jail's ids") {
		t.Errorf("a child started as uid %d to be confined as %d says %q, want a refusal", uid+1, uid, out)
	}
}

// utProcView is what /proc showed of the confined child while it was
// still running: its root link and each thread's status lines.
type utProcView struct {
	root    string
	threads []map[string]string
}

// utRunConfined starts cmd, reads its report up to "ready", looks at it
// in /proc, and lets it exit.
func utRunConfined(t *testing.T, cmd *exec.Cmd) (map[string]string, utProcView) {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	report, ready := utReadReport(stdout)
	var procs utProcView
	if ready {
		procs = utLookInProc(t, cmd.Process.Pid)
	}
	stdin.Close()
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil || !ready {
		t.Fatalf("confined child: %v, ready %v\nreport %v\nstderr:\n%s", err, ready, report, stderr.String())
	}
	return report, procs
}

// utReadReport reads "name value" lines until "ready" or EOF.
func utReadReport(r io.Reader) (map[string]string, bool) {
	report := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "ready" {
			return report, true
		}
		if k, v, ok := strings.Cut(line, " "); ok {
			report[k] = v
		}
	}
	return report, false
}

func utLookInProc(t *testing.T, pid int) utProcView {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d", pid)
	root, err := os.Readlink(dir + "/root")
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir(dir + "/task")
	if err != nil {
		t.Fatal(err)
	}
	v := utProcView{root: root}
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, "task", task.Name(), "status"))
		if err != nil {
			t.Fatal(err)
		}
		v.threads = append(v.threads, utParseStatus(string(b)))
	}
	return v
}

func utParseStatus(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return m
}

// utCheckProc checks the kernel's view: the process is rooted in the
// jail, and every thread, not only the one that called Confine, has
// the jail's ids, no groups, no capabilities, an empty bounding set,
// no_new_privs and the seccomp filter.
func utCheckProc(t *testing.T, v utProcView, root string, uid, gid uint32) {
	t.Helper()
	wantRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	if v.root != wantRoot {
		t.Errorf("/proc says the child's root is %q, want %q", v.root, wantRoot)
	}
	if len(v.threads) <= utLockedThreads {
		t.Errorf("the child had %d threads, want more than %d", len(v.threads), utLockedThreads)
	}
	u, g := strconv.FormatUint(uint64(uid), 10), strconv.FormatUint(uint64(gid), 10)
	want := map[string]string{
		"Uid":        strings.Repeat(u+" ", 3) + u,
		"Gid":        strings.Repeat(g+" ", 3) + g,
		"Groups":     "",
		"NoNewPrivs": "1",
		"CapPrm":     "0000000000000000",
		"CapEff":     "0000000000000000",
		"CapAmb":     "0000000000000000",
		"CapBnd":     "0000000000000000",
		"Seccomp":    "2",
	}
	for _, th := range v.threads {
		for k, w := range want {
			if th[k] != w {
				t.Errorf("thread %s: %s is %q, want %q", th["Pid"], k, th[k], w)
			}
		}
	}
}

// TestCheckNoWayBack: the last check sees root's powers in a process
// that has them, and none in one that dropped them (TestConfineInChild
// runs it confined, where Confine would fail if it did not pass). As
// root its attempts are no-ops: the ids are already 0.
func TestCheckNoWayBack(t *testing.T) {
	err := checkNoWayBack(Jail{}, unix.Stat_t{})
	if os.Geteuid() == 0 {
		if err == nil || !strings.Contains(err.Error(), "root again") {
			t.Fatalf("as root: %v, want \"could become root again\"", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("as uid %d: %v, want nil", os.Geteuid(), err)
	}
}
