// Package tlsworker holds the two confined roles of sslserver: the TLS
// worker, one per connection, that does the handshake and relays
// plaintext (worker.go), and the key holder that alone holds the private
// keys and signs for workers (keyholder.go). Both confine themselves with
// Confine before they read a byte from anybody but the supervisor.
package tlsworker

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// Jail is who a confined process becomes, resolved to numbers by the
// supervisor: nothing is looked up after the chroot.
type Jail struct {
	UID, GID uint32
	Root     string
	MaxFiles uint64 // RLIMIT_NOFILE after confinement
}

// Confine chroots into j.Root, drops every supplementary group, takes
// j.GID and j.UID as real, effective and saved ids, forbids new
// privileges and core dumps, and then proves each step took: it reads
// the ids back and tries to get root again, and fails if that works.
//
// The set*id calls of package syscall apply to every thread of the
// process; no_new_privs is set on every thread with AllThreadsSyscall,
// which needs a binary built without cgo (the Makefile's CGO_ENABLED=0).
func Confine(j Jail) error {
	if j.UID == 0 || j.GID == 0 {
		return fmt.Errorf("confine: refusing to run as uid %d gid %d", j.UID, j.GID)
	}
	var before unix.Stat_t
	if err := unix.Stat(j.Root, &before); err != nil {
		return fmt.Errorf("confine: root %q: %w", j.Root, err)
	}
	if err := drop(j); err != nil {
		return fmt.Errorf("confine: %w", err)
	}
	if err := verify(j, before); err != nil {
		return fmt.Errorf("confine: verification failed: %w", err)
	}
	return nil
}

func drop(j Jail) error {
	steps := []struct {
		what string
		do   func() error
	}{
		{"chroot " + j.Root, func() error { return syscall.Chroot(j.Root) }},
		{"chdir /", func() error { return syscall.Chdir("/") }},
		{"setgroups", func() error { return syscall.Setgroups([]int{}) }},
		{"setresgid", func() error { return syscall.Setresgid(int(j.GID), int(j.GID), int(j.GID)) }},
		{"setresuid", func() error { return syscall.Setresuid(int(j.UID), int(j.UID), int(j.UID)) }},
		{"no_new_privs", setNoNewPrivs},
		{"not dumpable", func() error { return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0) }},
		{"no core files", func() error { return setLimit(unix.RLIMIT_CORE, 0) }},
		{"no file writes", func() error { return setLimit(unix.RLIMIT_FSIZE, 0) }},
		{"fd limit", func() error { return setLimit(unix.RLIMIT_NOFILE, j.MaxFiles) }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
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
	checks := []func(Jail, unix.Stat_t) error{checkIDs, checkGroups, checkRoot, checkFlags, checkNoWayBack}
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

// checkNoWayBack tries to regain root and the old groups; any success is
// fatal.
func checkNoWayBack(Jail, unix.Stat_t) error {
	if syscall.Setresuid(0, 0, 0) == nil || syscall.Setuid(0) == nil {
		return errors.New("could become root again")
	}
	if syscall.Setresgid(0, 0, 0) == nil || syscall.Setgroups([]int{0}) == nil {
		return errors.New("could regain group 0")
	}
	if syscall.Chroot("/") == nil {
		return errors.New("could still chroot")
	}
	return nil
}
