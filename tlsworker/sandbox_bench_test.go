package tlsworker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// utSandboxTime is the child's side of BenchmarkSandbox: it sandboxes
// itself once and prints how long that took, in nanoseconds.
func utSandboxTime() {
	start := time.Now()
	layers, err := Sandbox()
	fmt.Printf("sandbox %d %v %v\n", time.Since(start).Nanoseconds(), layers, err)
}

// BenchmarkSandbox measures what the sandbox adds to a worker's start:
// Landlock and the seccomp filter, installed in a fresh child each time
// (a filter cannot be taken back), timed inside the child. The metric is
// sandbox-ns/op; ns/op is mostly the child's exec.
func BenchmarkSandbox(b *testing.B) {
	bin := utChildBinary(b)
	var total int64
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), utBound)
		out, err := utChildCommand(ctx, bin, "sandbox-time").Output()
		cancel()
		line, _, _ := strings.Cut(string(out), "\n")
		f := strings.Fields(line)
		if err != nil || len(f) < 3 || f[0] != "sandbox" || !strings.HasSuffix(line, "<nil>") {
			b.Fatalf("child: %q (%v)", out, err)
		}
		ns, _ := strconv.ParseInt(f[1], 10, 64)
		total += ns
	}
	b.ReportMetric(float64(total)/float64(b.N), "sandbox-ns/op")
}

// BenchmarkFilterAssemble is the part of the seccomp layer that runs in
// Go before the kernel sees the program: the allow-list to BPF.
func BenchmarkFilterAssemble(b *testing.B) {
	for b.Loop() {
		f, err := filter(4242)
		if err == nil {
			_, err = f.Policy.Assemble()
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
