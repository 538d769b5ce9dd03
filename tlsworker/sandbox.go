package tlsworker

import (
	"errors"
	"fmt"
	"strings"

	"github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// Layers says which sandbox layers a confined process got on top of its
// jail: the seccomp allow-list, always, and the Landlock ABI version it
// enforces, 0 where the kernel has none.
type Layers struct {
	Seccomp  bool
	Landlock uint8
}

// String names the layers for the log: "seccomp, landlock v7".
func (l Layers) String() string {
	var names []string
	if l.Seccomp {
		names = append(names, "seccomp")
	}
	if l.Landlock > 0 {
		names = append(names, fmt.Sprintf("landlock v%d", l.Landlock))
	} else {
		names = append(names, "no landlock")
	}
	return strings.Join(names, ", ")
}

// landlockNewest is the newest Landlock ABI that landlockConfig asks
// for; an older kernel enforces what it has of it.
const landlockNewest = 11

var landlockConfig = landlock.V11

// Sandbox closes what Confine leaves open to a process that runs Go
// code on descriptors it already holds: first Landlock, where the
// kernel has it (no file system access, no TCP bind or connect, no
// signals or abstract sockets out of the process), then the seccomp
// allow-list (see allowed), on every thread. It runs after Confine and
// before the process reads a byte from a client or a worker, and proves
// the filter took by trying to make a socket.
func Sandbox() (Layers, error) {
	var l Layers
	if err := landlockConfig.BestEffort().Restrict(); err != nil {
		return l, fmt.Errorf("sandbox: landlock: %w", err)
	}
	l.Landlock = landlockVersion()
	if err := loadFilter(unix.Getpid()); err != nil {
		return l, fmt.Errorf("sandbox: seccomp: %w", err)
	}
	l.Seccomp = true
	if err := checkFilter(); err != nil {
		return l, fmt.Errorf("sandbox: verification failed: %w", err)
	}
	return l, nil
}

// confineAndSandbox is Confine and then Sandbox, for a process that
// reports its layers to nobody.
func confineAndSandbox(j Jail) error {
	if err := Confine(j); err != nil {
		return err
	}
	_, err := Sandbox()
	return err
}

// landlockVersion is the ABI that Restrict enforced: the kernel's, up to
// the newest it was asked for.
func landlockVersion() uint8 {
	v, err := llsys.LandlockGetABIVersion()
	if err != nil || v <= 0 {
		return 0
	}
	return uint8(min(v, landlockNewest))
}

// errnoENOSYS answers clone3, so that Go falls back to clone, whose
// flags the filter can read (clone3's are behind a pointer).
const errnoENOSYS = seccomp.ActionErrno | seccomp.Action(unix.ENOSYS)

// filter is the allow-list for process pid. Anything not on it fails
// with EPERM rather than killing the process: a system call that a
// future Go release starts to use shows as an error in the tests, not
// as sessions that die.
func filter(pid int) (seccomp.Filter, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return seccomp.Filter{}, err
	}
	own := uint64(pid)
	groups := []seccomp.SyscallGroup{
		{Names: known(info, allowed), Action: seccomp.ActionAllow},
		{NamesWithCondtions: []seccomp.NameWithConditions{
			// threads, never processes
			{Name: "clone", Conditions: seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.BitsSet, Value: unix.CLONE_THREAD}}},
			// Go's preemption and crash signals go to its own threads
			{Name: "tgkill", Conditions: seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.Equal, Value: own}}},
			{Name: "kill", Conditions: seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.Equal, Value: own}}},
		}, Action: seccomp.ActionAllow},
		{Names: known(info, []string{"clone3"}), Action: errnoENOSYS},
	}
	return seccomp.Filter{
		NoNewPrivs: true,
		Flag:       seccomp.FilterFlagTSync,
		Policy:     seccomp.Policy{DefaultAction: seccomp.ActionErrno, Syscalls: groups},
	}, nil
}

// allowed is every system call a TLS worker or the key holder makes once
// confined, by name: the Go runtime's (memory, threads, signals, time,
// the poller) and input and output on descriptors it already holds.
// Nothing here takes a path, makes a socket or a process, or reaches
// another process. Names an architecture lacks (epoll_wait on arm64)
// are left out for it.
var allowed = []string{
	// memory
	"mmap", "munmap", "madvise", "mprotect", "brk",
	// threads and scheduling
	"futex", "sched_yield", "nanosleep", "clock_nanosleep", "gettid", "getpid",
	"exit", "exit_group", "restart_syscall", "sched_getaffinity",
	// signals
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack",
	// time
	"clock_gettime", "gettimeofday",
	// the poller
	"epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "eventfd2", "pipe2",
	// descriptors already open
	"read", "write", "readv", "writev", "pread64", "close", "fcntl", "dup", "dup3", "fstat",
	"recvfrom", "sendto", "recvmsg", "sendmsg", "shutdown",
	"getsockopt", "setsockopt", "getsockname", "getpeername",
	// randomness for TLS
	"getrandom",
}

// known keeps the names the architecture has.
func known(info *arch.Info, names []string) []string {
	var out []string
	for _, n := range names {
		if _, ok := info.SyscallNames[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

func loadFilter(pid int) error {
	f, err := filter(pid)
	if err != nil {
		return err
	}
	return seccomp.LoadFilter(f)
}

// checkFilter tries what the filter forbids and the process could do
// before: make a socket. EPERM is the filter's answer.
func checkFilter() error {
	fd, _, e := unix.RawSyscall(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if e == 0 {
		unix.Close(int(fd))
		return errors.New("could still make a socket")
	}
	if e != unix.EPERM {
		return fmt.Errorf("socket failed with %v, not the filter's EPERM", e)
	}
	return nil
}
