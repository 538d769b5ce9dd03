package tlsworker

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"unsafe"

	"github.com/elastic/go-seccomp-bpf"
	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/net/bpf"
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
	var err error
	if l.Landlock, err = restrictLandlock(); err != nil {
		return l, fmt.Errorf("sandbox: landlock: %w", err)
	}
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

// restrictLandlock enforces landlockConfig with no rule, so nothing it
// handles is allowed, and returns the ABI version enforced (0: none).
func restrictLandlock() (uint8, error) {
	if err := landlockConfig.BestEffort().Restrict(); err != nil {
		return 0, err
	}
	return landlockVersion(), nil
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

// The filter's answers. Anything not on the allow-list fails with EPERM
// rather than killing the process: a system call that a future Go
// release starts to use shows as an error in the tests, not as sessions
// that die. clone3 answers ENOSYS, so that Go falls back to clone, whose
// flags the filter can read (clone3's are behind a pointer). The policy
// names the default as a bare errno action, which the library answers
// with EPERM.
const (
	retAllow = seccomp.ActionAllow
	retEPERM = seccomp.ActionErrno | seccomp.Action(unix.EPERM)
	retNoSys = seccomp.ActionErrno | seccomp.Action(unix.ENOSYS)
)

// allowed is every system call a TLS worker or the key holder makes once
// confined, by name: the Go runtime's (memory, threads, signals, time,
// the poller) and input and output on descriptors it already holds,
// found by running them under a logging filter (see docs/security.md).
// Nothing here takes a path, makes a socket or a process, or reaches
// another process. archAllowed adds what one architecture has and
// another lacks.
var allowed = []string{
	// memory
	"mmap", "munmap", "madvise", "mprotect", "brk",
	// threads and scheduling
	"futex", "sched_yield", "nanosleep", "clock_nanosleep",
	"gettid", "getpid", "exit", "exit_group",
	"restart_syscall", "sched_getaffinity",
	// signals
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack",
	// time
	"clock_gettime", "gettimeofday",
	// the poller
	"epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2",
	"eventfd2", "pipe2",
	// descriptors already open
	"read", "write", "readv", "writev", "pread64",
	"close", "fcntl", "dup", "dup3", "fstat",
	"recvfrom", "sendto", "recvmsg", "sendmsg", "shutdown",
	"getsockopt", "setsockopt", "getsockname", "getpeername",
	// randomness for TLS
	"getrandom",
}

// filter is the program for process pid: cloneGuard, then the program
// github.com/elastic/go-seccomp-bpf assembles from the allow-list. The
// library maps the names to the numbers of the architecture the binary
// is built for, refuses calls made for another architecture (the
// default answer) and, on x86-64, answers the x32 ABI's numbers
// (0x40000000 and up) with ENOSYS before any of ours is compared. pid is
// the only target kill and tgkill may have (Go's runtime preempts its
// threads with SIGURG and re-raises a crash's signal); clone passes only
// with CLONE_THREAD, a thread and never a process.
func filter(pid int) ([]bpf.Instruction, error) {
	if filterArch == nil {
		return nil, fmt.Errorf("no seccomp filter for %s", runtime.GOARCH)
	}
	self := seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.Equal, Value: uint64(pid)}}
	thread := seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.BitsSet, Value: unix.CLONE_THREAD}}
	policy := seccomp.Policy{
		DefaultAction: seccomp.ActionErrno,
		Syscalls: []seccomp.SyscallGroup{
			{Names: append(slices.Clip(allowed), archAllowed...), Action: retAllow},
			{Names: []string{"clone3"}, Action: retNoSys},
			// last, so that a failed argument check falls to the default
			{NamesWithCondtions: []seccomp.NameWithConditions{
				{Name: "clone", Conditions: thread},
				{Name: "kill", Conditions: self},
				{Name: "tgkill", Conditions: self},
			}, Action: retAllow},
		},
	}
	prog, err := policy.Assemble()
	if err != nil {
		return nil, err
	}
	return append(cloneGuard(uint32(filterArch.SyscallNames["clone"])), prog...), nil
}

// Offsets in the kernel's struct seccomp_data: the call's number, the
// architecture, and the low and high halves of the first argument
// (little-endian on every architecture the filter is written for).
const (
	offNr     = 0
	offArch   = 4
	offArg0Lo = 16
	offArg0Hi = 20
)

// cloneGuard refuses clone without CLONE_THREAD before the library's
// program runs. That program refuses it too, but go-seccomp-bpf v1.6.0,
// after an argument check fails, compares the argument it loaded, not
// the call's number, with the calls that follow in the group: clone with
// flags equal to kill's number (62 on x86-64) would pass as kill(pid)
// where pid is that number, as sslclient's TLS process's can be. With
// the guard, clone's check in the library cannot fail, and a failed
// check on kill or tgkill can only end in the default. It runs before
// the architecture check; another architecture's call is refused
// either way.
func cloneGuard(clone uint32) []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadAbsolute{Off: offNr, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: clone, SkipTrue: 3},
		bpf.LoadAbsolute{Off: offArg0Lo, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: unix.CLONE_THREAD, SkipTrue: 1},
		bpf.RetConstant{Val: uint32(retEPERM)},
	}
}

// loadFilter installs the filter on every thread at once (TSYNC). It
// makes the seccomp call itself rather than through the library's
// LoadFilter, which would assemble the policy a second time and takes
// only an errno for failure: with TSYNC the kernel answers with the id
// of a thread it could not synchronise, and installs nothing. (The
// no_new_privs the kernel wants first is Confine's.)
func loadFilter(pid int) error {
	insns, err := filter(pid)
	if err != nil {
		return err
	}
	raw, err := bpf.Assemble(insns)
	if err != nil {
		return err
	}
	prog := unix.SockFprog{Len: uint16(len(raw)), Filter: (*unix.SockFilter)(unsafe.Pointer(&raw[0]))}
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(raw)
	switch {
	case e != 0:
		return e
	case r != 0:
		return fmt.Errorf("thread %d could not take the filter", r)
	}
	return nil
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
