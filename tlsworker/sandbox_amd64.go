package tlsworker

import "github.com/elastic/go-seccomp-bpf/arch"

// The seccomp filter's architecture, whose audit number and system call
// table go-seccomp-bpf uses, and the calls x86-64 has besides the common
// list (Go's poller uses epoll_wait here).
var (
	filterArch  = arch.X86_64
	archAllowed = []string{"epoll_wait"}
)
