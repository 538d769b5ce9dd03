package tlsworker

import "golang.org/x/sys/unix"

// The seccomp filter's architecture (see sandbox_amd64.go); arm64 has
// one ABI and nothing beyond the common list.
const (
	auditArch = unix.AUDIT_ARCH_AARCH64
	x32Bit    = 0
)

var archAllowed []uintptr
