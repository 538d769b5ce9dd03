package tlsworker

import "github.com/elastic/go-seccomp-bpf/arch"

// The seccomp filter's architecture (see sandbox_amd64.go); arm64 has
// one ABI and nothing beyond the common list.
var (
	filterArch  = arch.AARCH64
	archAllowed []string
)
