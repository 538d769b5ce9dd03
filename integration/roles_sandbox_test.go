package integration

// The sandbox probe: what a hostile worker with the plan "sandbox"
// (hostile_harness_test.go) tries once it is confined and sandboxed,
// before it says it is ready; then it serves its sessions as usual.

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/internal/testutil"
)

// probePrefix starts each line sandboxAttack writes.
const probePrefix = "sandbox-probe: "

// attack is one thing a compromised worker would try: a raw system call
// whose outcome is its errno.
type attack struct {
	name string
	try  func() unix.Errno
}

// sandboxAttack tries, from inside a real worker, what the sandbox
// refuses, and reports "sandbox-probe: NAME ERRNO" for each ("ok" when
// a call succeeded). The target of the signals and the trace is the
// supervisor, the worker's parent: it must survive.
func sandboxAttack() {
	for _, a := range sbAttacks(unix.Getppid()) {
		fmt.Fprintf(os.Stderr, "%s%s %s\n", probePrefix, a.name, testutil.ErrnoName(a.try()))
	}
}

func sbAttacks(target int) []attack {
	return []attack{
		{"socket", func() unix.Errno { return sbRawFD(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM, 0) }},
		{"socketpair", sbSocketpair},
		{"connect", func() unix.Errno { return sbSockaddrCall(unix.SYS_CONNECT) }},
		{"bind", func() unix.Errno { return sbSockaddrCall(unix.SYS_BIND) }},
		{"listen", func() unix.Errno { return sbRaw(unix.SYS_LISTEN, 0, 1, 0) }},
		{"open-passwd", func() unix.Errno { return sbOpenat("/etc/passwd", unix.O_RDONLY) }},
		{"open-dot", func() unix.Errno { return sbOpenat(".", unix.O_RDONLY|unix.O_DIRECTORY) }},
		{"mkdir", func() unix.Errno { return sbRaw(unix.SYS_MKDIRAT, atFDCWD, sbPtr(sbCstr("/planted")), 0o755) }},
		{"execve", func() unix.Errno { return sbRaw(unix.SYS_EXECVE, sbPtr(sbCstr("/")), 0, 0) }},
		{"ptrace-attach", func() unix.Errno { return sbRaw(unix.SYS_PTRACE, unix.PTRACE_ATTACH, uintptr(target), 0) }},
		{"ptrace-traceme", func() unix.Errno { return sbRaw(unix.SYS_PTRACE, unix.PTRACE_TRACEME, 0, 0) }},
		{"process_vm_readv", func() unix.Errno { return sbVmRead(target) }},
		{"kill-parent", func() unix.Errno { return sbRaw(unix.SYS_KILL, uintptr(target), uintptr(unix.SIGKILL), 0) }},
		{"kill-all", func() unix.Errno { return sbRaw(unix.SYS_KILL, minusOne, uintptr(unix.SIGKILL), 0) }},
		{"tkill-parent", func() unix.Errno { return sbRaw(unix.SYS_TKILL, uintptr(target), uintptr(unix.SIGKILL), 0) }},
		{"tgkill-parent", func() unix.Errno {
			return sbRaw(unix.SYS_TGKILL, uintptr(target), uintptr(target), uintptr(unix.SIGKILL))
		}},
		{"fork", sbFork},
		{"clone3", func() unix.Errno { return sbRaw(unix.SYS_CLONE3, 0, 0, 0) }},
		// The control: a signal to itself is what Go's runtime needs.
		{"kill-self", func() unix.Errno { return sbRaw(unix.SYS_KILL, uintptr(unix.Getpid()), 0, 0) }},
	}
}

const (
	atFDCWD  = ^uintptr(99) // AT_FDCWD, -100
	minusOne = ^uintptr(0)
)

func sbRaw(trap, a1, a2, a3 uintptr) unix.Errno {
	_, _, e := unix.RawSyscall(trap, a1, a2, a3)
	return e
}

// rawFD is raw for a call that returns a descriptor, closed if it came.
func sbRawFD(trap, a1, a2, a3 uintptr) unix.Errno {
	fd, _, e := unix.RawSyscall(trap, a1, a2, a3)
	if e == 0 {
		unix.Close(int(fd))
	}
	return e
}

func sbOpenat(path string, flags int) unix.Errno {
	return sbRawFD(unix.SYS_OPENAT, atFDCWD, sbPtr(sbCstr(path)), uintptr(flags))
}

func sbSocketpair() unix.Errno {
	var fds [2]int32
	_, _, e := unix.RawSyscall6(unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_STREAM, 0, uintptr(unsafe.Pointer(&fds)), 0, 0)
	if e == 0 {
		unix.Close(int(fds[0]))
		unix.Close(int(fds[1]))
	}
	return e
}

// sockaddrCall connects or binds descriptor 0 (not a socket: without
// the filter the answer would be ENOTSOCK) to 127.0.0.1:1.
func sbSockaddrCall(trap uintptr) unix.Errno {
	sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Port: 0x100, Addr: [4]byte{127, 0, 0, 1}}
	return sbRaw(trap, 0, uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa))
}

// vmRead reads a word of the target's memory at an address that is
// valid here (and so, for a Go binary, likely there too).
func sbVmRead(target int) unix.Errno {
	var word, there uint64
	local := unix.Iovec{Base: (*byte)(unsafe.Pointer(&word)), Len: 8}
	remote := unix.RemoteIovec{Base: uintptr(unsafe.Pointer(&there)), Len: 8}
	_, _, e := unix.RawSyscall6(unix.SYS_PROCESS_VM_READV, uintptr(target),
		uintptr(unsafe.Pointer(&local)), 1, uintptr(unsafe.Pointer(&remote)), 1, 0)
	return e
}

// fork is clone without CLONE_THREAD: a new process. Were it to work,
// the child would exit at once, before it ran any Go code.
func sbFork() unix.Errno {
	pid, _, e := unix.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
	if e == 0 && pid == 0 {
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	}
	return e
}

func sbCstr(s string) *byte {
	b, _ := unix.BytePtrFromString(s)
	return b
}

func sbPtr(b *byte) uintptr { return uintptr(unsafe.Pointer(b)) }
