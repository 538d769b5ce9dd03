// Package tlsworker holds the two confined roles of sslserver: the TLS
// worker, one per connection, that does the handshake and relays
// plaintext (worker.go), and the key holder that alone holds the private
// keys and signs for workers (keyholder.go). Both confine themselves with
// Confine before they read a byte from anybody but the supervisor.
package tlsworker

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Jail is who a confined process becomes, resolved to numbers by the
// supervisor: nothing is looked up after the chroot.
type Jail struct {
	UID, GID uint32
	Root     string
	// RootFD, when above 2, is a descriptor of Root (opened O_PATH by the
	// supervisor) to chroot into instead of the path: the directories
	// above Root need not be open to UID, and what the supervisor
	// checked is what the process lands in. Confine closes it.
	RootFD   int
	MaxFiles uint64 // RLIMIT_NOFILE after confinement
}

// StartAttr is how a process that will Confine itself into j must be
// started: with j's ids already, no supplementary groups, and of root's
// powers only CAP_SYS_CHROOT, so that it can chroot, and CAP_SETPCAP, so
// that it can empty its capability bounding set, as ambient capabilities
// that survive the exec; Confine drops both. The ids change in the child
// between fork and exec, where it has a single thread; the process never
// runs as root, not even while the Go runtime starts.
//
// It also starts in a session of its own, with no controlling terminal,
// and in a PID namespace of its own, as its only process (pid 1 there):
// workers and the key holder share a uid, and the kernel would let one
// signal or trace another of its uid by pid; in its own namespace no
// other process has a pid it can name. The supervisor ends it with
// SIGKILL, which a namespace's pid 1 gets from the parent namespace like
// any process does. See docs/security.md.
func StartAttr(j Jail) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Credential:  &syscall.Credential{Uid: j.UID, Gid: j.GID, Groups: []uint32{}},
		AmbientCaps: startCaps,
		Cloneflags:  syscall.CLONE_NEWPID,
		Setsid:      true,
	}
}

// startCaps are the ambient capabilities StartAttr gives.
var startCaps = []uintptr{unix.CAP_SYS_CHROOT, unix.CAP_SETPCAP}

// Confine takes a process into its jail j: it chroots into j.Root (by
// j.RootFD when it has one), forbids core dumps, new privileges and file
// writes, bounds its descriptors, empties its capability bounding set,
// ends with no capability on any thread, and then proves
// each step took: it reads the ids, groups, root, flags and
// capabilities back and tries to get root again, and fails if that
// works.
//
// The process is either started with StartAttr(j), as the supervisor
// starts its workers and key holder, or runs as root (sslclient's TLS
// process, which reads the trust anchors first), and then Confine
// itself drops every supplementary group and takes j's ids.
//
// The ids, no_new_privs and the capabilities are per thread, and are
// set on every thread with AllThreadsSyscall (package syscall's set*id
// calls do that too), which needs a binary built without cgo (the
// Makefile's CGO_ENABLED=0).
func Confine(j Jail) error {
	if j.UID == 0 || j.GID == 0 {
		return fmt.Errorf("confine: refusing to run as uid %d gid %d", j.UID, j.GID)
	}
	asRoot := os.Geteuid() == 0
	if !asRoot {
		if err := checkIDs(j, unix.Stat_t{}); err != nil {
			return fmt.Errorf("confine: started neither as root nor with the jail's ids: %w", err)
		}
	}
	before, err := rootStat(j)
	if err != nil {
		return fmt.Errorf("confine: root %q: %w", j.Root, err)
	}
	if err := drop(j, asRoot); err != nil {
		return fmt.Errorf("confine: %w", err)
	}
	if err := verify(j, before); err != nil {
		return fmt.Errorf("confine: verification failed: %w", err)
	}
	return nil
}

type step struct {
	what string
	do   func() error
}

// drop's order matters: chroot and emptying the bounding set need the
// capabilities that the id change (as root) or the last step takes
// away, and the process stops being dumpable (and so traceable by others
// of its uid) before it gives up the capability that kept them out until
// then.
func drop(j Jail, asRoot bool) error {
	steps := append(chrootSteps(j), step{"empty bounding set", dropBoundingSet})
	if asRoot {
		steps = append(steps,
			step{"setgroups", func() error { return syscall.Setgroups([]int{}) }},
			step{"setresgid", func() error { return syscall.Setresgid(int(j.GID), int(j.GID), int(j.GID)) }},
			step{"setresuid", func() error { return syscall.Setresuid(int(j.UID), int(j.UID), int(j.UID)) }})
	}
	steps = append(steps,
		step{"not dumpable", func() error { return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0) }},
		step{"no_new_privs", setNoNewPrivs},
		step{"no core files", func() error { return setLimit(unix.RLIMIT_CORE, 0) }},
		step{"no file writes", func() error { return setLimit(unix.RLIMIT_FSIZE, 0) }},
		step{"fd limit", func() error { return setLimit(unix.RLIMIT_NOFILE, j.MaxFiles) }},
		step{"no capabilities", dropCapabilities})
	for _, s := range steps {
		if err := s.do(); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	return nil
}

// rootStat is what "/" must be after the chroot: the descriptor's
// directory, or the path's.
func rootStat(j Jail) (unix.Stat_t, error) {
	var st unix.Stat_t
	if j.RootFD > 2 {
		return st, unix.Fstat(j.RootFD, &st)
	}
	return st, unix.Stat(j.Root, &st)
}

// chrootSteps enter the root: through the descriptor, which is then
// closed, or by path. chroot(".") after fchdir takes the very directory
// the supervisor opened and checked, whatever its path names now.
func chrootSteps(j Jail) []step {
	if j.RootFD > 2 {
		return []step{
			{"fchdir to the root descriptor", func() error { return syscall.Fchdir(j.RootFD) }},
			{"chroot " + j.Root, func() error { return syscall.Chroot(".") }},
			{"chdir /", func() error { return syscall.Chdir("/") }},
			{"close the root descriptor", func() error { return syscall.Close(j.RootFD) }},
		}
	}
	return []step{
		{"chroot " + j.Root, func() error { return syscall.Chroot(j.Root) }},
		{"chdir /", func() error { return syscall.Chdir("/") }},
	}
}

// dropBoundingSet takes every capability out of every thread's bounding
// set, so that nothing the process could ever exec gains one. A process
// forked from OnBareThread starts with startCaps alone in it, two calls
// here; any other pays one stop-the-world call per capability. The
// Dropping needs CAP_SETPCAP, which dropCapabilities then takes away.
func dropBoundingSet() error {
	caps, err := boundingSet()
	if err != nil {
		return err
	}
	for _, c := range caps {
		if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_CAPBSET_DROP, c, 0); e != 0 {
			return fmt.Errorf("capability %d: %w", c, e)
		}
	}
	return nil
}

// boundingSet lists the capabilities in this thread's bounding set, up
// to the kernel's last one, where PR_CAPBSET_READ answers EINVAL.
func boundingSet() ([]uintptr, error) {
	var caps []uintptr
	for c := uintptr(0); c < 64; c++ {
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, c, 0, 0, 0)
		if err == unix.EINVAL && c > 0 {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading capability %d of the bounding set: %w", c, err)
		}
		if in != 0 {
			caps = append(caps, c)
		}
	}
	return caps, nil
}

// capHeader asks capget and capset for version 3 of the kernel's
// capability sets: two 32-bit words each of effective, permitted and
// inheritable, for the calling thread.
var capHeader = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}

// dropCapabilities empties every capability set of every thread;
// emptying the permitted set empties the ambient one with it.
func dropCapabilities() error {
	var none [2]unix.CapUserData
	hdr := capHeader
	_, _, e := syscall.AllThreadsSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&none[0])), 0)
	if e != 0 {
		return e
	}
	return nil
}

// CanConfine reports whether this binary can confine a process: every
// thread must get no_new_privs, which Go can do only in a binary built
// without cgo. The supervisor asks at start rather than letting every
// worker fail.
func CanConfine() error {
	_, _, e := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_GET_NO_NEW_PRIVS, 0, 0)
	if e == syscall.ENOTSUP {
		return errors.New("this binary was built with cgo and cannot confine its TLS workers: build it with CGO_ENABLED=0")
	}
	return nil
}

func setNoNewPrivs() error {
	_, _, e := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0)
	if e != 0 {
		return e
	}
	return nil
}

func setLimit(resource int, n uint64) error {
	return unix.Setrlimit(resource, &unix.Rlimit{Cur: n, Max: n})
}

func verify(j Jail, before unix.Stat_t) error {
	checks := []func(Jail, unix.Stat_t) error{checkIDs, checkGroups, checkRoot, checkFlags, checkCapabilities, checkNoWayBack}
	for _, c := range checks {
		if err := c(j, before); err != nil {
			return err
		}
	}
	return nil
}

func checkIDs(j Jail, _ unix.Stat_t) error {
	r, e, s := unix.Getresuid()
	if uint32(r) != j.UID || uint32(e) != j.UID || uint32(s) != j.UID {
		return fmt.Errorf("uids are %d/%d/%d, want %d", r, e, s, j.UID)
	}
	r, e, s = unix.Getresgid()
	if uint32(r) != j.GID || uint32(e) != j.GID || uint32(s) != j.GID {
		return fmt.Errorf("gids are %d/%d/%d, want %d", r, e, s, j.GID)
	}
	return nil
}

func checkGroups(Jail, unix.Stat_t) error {
	g, err := unix.Getgroups()
	if err != nil {
		return fmt.Errorf("getgroups: %w", err)
	}
	if len(g) != 0 {
		return fmt.Errorf("supplementary groups %v remain", g)
	}
	return nil
}

// checkRoot compares "/" with the directory we meant to chroot into.
func checkRoot(_ Jail, before unix.Stat_t) error {
	var now unix.Stat_t
	if err := unix.Stat("/", &now); err != nil {
		return fmt.Errorf("stat /: %w", err)
	}
	if now.Dev != before.Dev || now.Ino != before.Ino {
		return errors.New("/ is not the chroot directory")
	}
	return nil
}

func checkFlags(Jail, unix.Stat_t) error {
	nnp, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	if err != nil || nnp != 1 {
		return fmt.Errorf("no_new_privs is %d (%v)", nnp, err)
	}
	d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil || d != 0 {
		return fmt.Errorf("dumpable is %d (%v)", d, err)
	}
	return nil
}

// checkCapabilities reads this thread's capability sets, and the ambient
// set, back: all must be empty.
func checkCapabilities(Jail, unix.Stat_t) error {
	var data [2]unix.CapUserData
	hdr := capHeader
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	for _, d := range data {
		if d.Effective != 0 || d.Permitted != 0 || d.Inheritable != 0 {
			return fmt.Errorf("capabilities remain: %+v", data)
		}
	}
	for _, c := range startCaps {
		amb, err := unix.PrctlRetInt(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_IS_SET, c, 0, 0)
		if err != nil || amb != 0 {
			return fmt.Errorf("ambient capability %d is %d (%v)", c, amb, err)
		}
	}
	return checkBoundingSet()
}

// checkBoundingSet reads the bounding set back: it must be empty.
func checkBoundingSet() error {
	caps, err := boundingSet()
	if err == nil && len(caps) > 0 {
		err = fmt.Errorf("capabilities %v remain in the bounding set", caps)
	}
	return err
}

// checkNoWayBack tries to regain root and the old groups; any success is
// fatal. The attempts are raw system calls on this thread: the drop went
// to every thread at once (AllThreadsSyscall), so one thread answers for
// all, and syscall.Setresuid and the like would stop the world and
// signal every thread for each attempt only to fail on the first. A
// success leaves this thread changed, and the process then exits.
func checkNoWayBack(Jail, unix.Stat_t) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	root := uintptr(0)
	attempts := []struct {
		what string
		trap uintptr
		args [3]uintptr
	}{
		{"could become root again", unix.SYS_SETRESUID, [3]uintptr{root, root, root}},
		{"could become root again", unix.SYS_SETUID, [3]uintptr{root}},
		{"could regain group 0", unix.SYS_SETRESGID, [3]uintptr{root, root, root}},
		{"could regain group 0", unix.SYS_SETGROUPS, [3]uintptr{1, uintptr(unsafe.Pointer(&groupZero[0]))}},
		{"could still chroot", unix.SYS_CHROOT, [3]uintptr{uintptr(unsafe.Pointer(&slash[0]))}},
	}
	for _, a := range attempts {
		if _, _, e := unix.RawSyscall(a.trap, a.args[0], a.args[1], a.args[2]); e == 0 {
			return errors.New(a.what)
		}
	}
	return nil
}

var (
	groupZero = [1]uint32{0}
	slash     = [2]byte{'/', 0}
)
