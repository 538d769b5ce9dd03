//go:build !amd64 && !arm64

package tlsworker

// No seccomp filter is written for other architectures: Sandbox fails,
// and so does every worker's start, with "no seccomp filter for GOARCH".
const (
	auditArch = 0
	x32Bit    = 0
)

var archAllowed []uintptr
