package tlsworker

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"unsafe"

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
// flags the filter can read (clone3's are behind a pointer).
const (
	retAllow = unix.SECCOMP_RET_ALLOW
	retEPERM = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retNoSys = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

// allowed is every system call a TLS worker or the key holder makes once
// confined: the Go runtime's (memory, threads, signals, time, the
// poller) and input and output on descriptors it already holds, found by
// running them under a logging filter (see docs/security.md). Nothing
// here takes a path, makes a socket or a process, or reaches another
// process. archAllowed adds what one architecture has and another lacks.
var allowed = []uintptr{
	// memory
	unix.SYS_MMAP, unix.SYS_MUNMAP, unix.SYS_MADVISE, unix.SYS_MPROTECT, unix.SYS_BRK,
	// threads and scheduling
	unix.SYS_FUTEX, unix.SYS_SCHED_YIELD, unix.SYS_NANOSLEEP, unix.SYS_CLOCK_NANOSLEEP,
	unix.SYS_GETTID, unix.SYS_GETPID, unix.SYS_EXIT, unix.SYS_EXIT_GROUP,
	unix.SYS_RESTART_SYSCALL, unix.SYS_SCHED_GETAFFINITY,
	// signals
	unix.SYS_RT_SIGACTION, unix.SYS_RT_SIGPROCMASK, unix.SYS_RT_SIGRETURN, unix.SYS_SIGALTSTACK,
	// time
	unix.SYS_CLOCK_GETTIME, unix.SYS_GETTIMEOFDAY,
	// the poller
	unix.SYS_EPOLL_CREATE1, unix.SYS_EPOLL_CTL, unix.SYS_EPOLL_PWAIT, unix.SYS_EPOLL_PWAIT2,
	unix.SYS_EVENTFD2, unix.SYS_PIPE2,
	// descriptors already open
	unix.SYS_READ, unix.SYS_WRITE, unix.SYS_READV, unix.SYS_WRITEV, unix.SYS_PREAD64,
	unix.SYS_CLOSE, unix.SYS_FCNTL, unix.SYS_DUP, unix.SYS_DUP3, unix.SYS_FSTAT,
	unix.SYS_RECVFROM, unix.SYS_SENDTO, unix.SYS_RECVMSG, unix.SYS_SENDMSG, unix.SYS_SHUTDOWN,
	unix.SYS_GETSOCKOPT, unix.SYS_SETSOCKOPT, unix.SYS_GETSOCKNAME, unix.SYS_GETPEERNAME,
	// randomness for TLS
	unix.SYS_GETRANDOM,
}

// Offsets in the kernel's struct seccomp_data: the call's number, the
// architecture, and the low and high halves of the first argument
// (little-endian on every architecture this builds for).
const (
	offNr     = 0
	offArch   = 4
	offArg0Lo = 16
	offArg0Hi = 20
)

// filter is the program for process pid, whose number it writes in as
// the only target kill and tgkill may have (Go's runtime preempts its
// threads with SIGURG and re-raises a crash's signal); clone passes only
// with CLONE_THREAD, a thread and never a process. The system calls are
// compared one after another; the list is short, and the kernel compiles
// the program.
func filter(pid int) ([]bpf.RawInstruction, error) {
	if auditArch == 0 {
		return nil, fmt.Errorf("no seccomp filter for %s", runtime.GOARCH)
	}
	var p program
	p.load(offArch)
	p.jump(bpf.JumpEqual, auditArch, next, deny)
	p.load(offNr)
	if x32Bit != 0 { // the x32 ABI's numbers would pass for others
		p.jump(bpf.JumpGreaterOrEqual, x32Bit, deny, next)
	}
	for _, nr := range append(slices.Clip(allowed), archAllowed...) {
		p.jump(bpf.JumpEqual, uint32(nr), allow, next)
	}
	p.jump(bpf.JumpEqual, unix.SYS_CLONE, cloneFlags, next)
	p.jump(bpf.JumpEqual, unix.SYS_KILL, selfOnly, next)
	p.jump(bpf.JumpEqual, unix.SYS_TGKILL, selfOnly, next)
	p.jump(bpf.JumpEqual, unix.SYS_CLONE3, noSys, deny)
	p.mark(cloneFlags)
	p.load(offArg0Lo)
	p.jump(bpf.JumpBitsSet, unix.CLONE_THREAD, allow, deny)
	p.mark(selfOnly)
	p.load(offArg0Hi)
	p.jump(bpf.JumpEqual, 0, next, deny)
	p.load(offArg0Lo)
	p.jump(bpf.JumpEqual, uint32(pid), allow, deny)
	p.ret(noSys, retNoSys)
	p.ret(deny, retEPERM)
	p.ret(allow, retAllow)
	return p.assemble()
}

// label names a place in a program; next is the instruction after.
type label int

const (
	next label = iota
	allow
	deny
	noSys
	cloneFlags
	selfOnly
)

// program is a classic BPF program whose jumps go to labels, resolved by
// assemble.
type program struct {
	insns  []bpf.Instruction
	jumps  map[int][2]label // instruction index: its two targets
	labels map[label]int
}

func (p *program) load(off uint32) {
	p.insns = append(p.insns, bpf.LoadAbsolute{Off: off, Size: 4})
}

func (p *program) jump(cond bpf.JumpTest, val uint32, yes, no label) {
	if p.jumps == nil {
		p.jumps = map[int][2]label{}
	}
	p.jumps[len(p.insns)] = [2]label{yes, no}
	p.insns = append(p.insns, bpf.JumpIf{Cond: cond, Val: val})
}

func (p *program) mark(l label) {
	if p.labels == nil {
		p.labels = map[label]int{}
	}
	p.labels[l] = len(p.insns)
}

func (p *program) ret(l label, action uint32) {
	p.mark(l)
	p.insns = append(p.insns, bpf.RetConstant{Val: action})
}

// assemble resolves the jumps: a classic BPF jump goes forward by at
// most 255 instructions.
func (p *program) assemble() ([]bpf.RawInstruction, error) {
	for i, to := range p.jumps {
		j := p.insns[i].(bpf.JumpIf)
		var err error
		if j.SkipTrue, err = p.skip(i, to[0]); err == nil {
			j.SkipFalse, err = p.skip(i, to[1])
		}
		if err != nil {
			return nil, err
		}
		p.insns[i] = j
	}
	return bpf.Assemble(p.insns)
}

func (p *program) skip(from int, to label) (uint8, error) {
	if to == next {
		return 0, nil
	}
	at, ok := p.labels[to]
	if !ok || at <= from || at-from-1 > 255 {
		return 0, fmt.Errorf("seccomp program: no jump from %d to label %d", from, to)
	}
	return uint8(at - from - 1), nil
}

// loadFilter installs the filter on every thread at once (TSYNC). The
// kernel answers with a thread's id when it cannot synchronise that
// thread.
func loadFilter(pid int) error {
	raw, err := filter(pid)
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
