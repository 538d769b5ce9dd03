package tlsworker

import "golang.org/x/sys/unix"

// The seccomp filter's architecture: its audit number, the bit that marks
// the x32 ABI's system call numbers (refused), and the calls x86-64 has
// besides the common list (Go's poller uses epoll_wait here).
const (
	auditArch = unix.AUDIT_ARCH_X86_64
	x32Bit    = 0x40000000
)

var archAllowed = []uintptr{unix.SYS_EPOLL_WAIT}
