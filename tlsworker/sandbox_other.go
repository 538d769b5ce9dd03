//go:build !amd64 && !arm64

package tlsworker

import "github.com/elastic/go-seccomp-bpf/arch"

// No allow-list is written for other architectures (their names differ:
// mmap2, _llseek, ...): Sandbox fails, and so does every worker's start,
// with "no seccomp filter for GOARCH".
var (
	filterArch  *arch.Info
	archAllowed []string
)
