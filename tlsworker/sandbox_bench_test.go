package tlsworker

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/bpf"
)

// utNoSandboxVar, set, makes the sandbox-time child confine itself only.
const utNoSandboxVar = "TLSWORKER_UT_NOSANDBOX"

// utSandboxTime is the child's side of BenchmarkSandbox: it confines
// itself into the jail in utJailVar, sandboxes itself unless
// utNoSandboxVar is set, and prints how long the sandbox took, in
// nanoseconds.
func utSandboxTime() {
	if !utConfineFromEnv() {
		return
	}
	if os.Getenv(utNoSandboxVar) != "" {
		fmt.Printf("sandbox 0 none <nil>\n")
		return
	}
	start := time.Now()
	layers, err := Sandbox()
	fmt.Printf("sandbox %d %v %v\n", time.Since(start).Nanoseconds(), layers, err)
}

// BenchmarkSandbox measures what confinement and the sandbox cost a
// worker's start, in a fresh child each round started as the supervisor
// starts its workers (StartAttr, forked from OnBareThread): cpu-ms/op is
// the child's whole CPU time (runtime start, Confine, Sandbox), and
// sandbox-ns/op the sandbox's own time inside the child. "confine only"
// is the same child without the sandbox, for the difference. Root only.
func BenchmarkSandbox(b *testing.B) {
	utRequireRoot(b)
	bin := utChildBinary(b)
	uid, gid := utJailIDs(b)
	root := utJailDir(b)
	for _, sandbox := range []bool{false, true} {
		name := map[bool]string{false: "confine only", true: "confine and sandbox"}[sandbox]
		b.Run(name, func(b *testing.B) { utBenchStart(b, bin, uid, gid, root, sandbox) })
	}
}

func utBenchStart(b *testing.B, bin string, uid, gid uint32, root string, sandbox bool) {
	var inChild, cpu time.Duration
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), utBound)
		cmd := utChildCommand(ctx, bin, "sandbox-time", fmt.Sprintf("%s=%d:%d:32:%s", utJailVar, uid, gid, root))
		if !sandbox {
			cmd.Env = append(cmd.Env, utNoSandboxVar+"=1")
		}
		cmd.SysProcAttr = StartAttr(Jail{UID: uid, GID: gid, Root: root})
		out, err := utOutputBare(cmd)
		cancel()
		line, _, _ := strings.Cut(string(out), "\n")
		f := strings.Fields(line)
		if err != nil || len(f) < 3 || f[0] != "sandbox" || !strings.HasSuffix(line, "<nil>") {
			b.Fatalf("child: %q (%v)", out, err)
		}
		ns, _ := strconv.ParseInt(f[1], 10, 64)
		inChild += time.Duration(ns)
		cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	b.ReportMetric(float64(inChild.Nanoseconds())/float64(b.N), "sandbox-ns/op")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// utOutputBare runs cmd to its end, forked from OnBareThread.
func utOutputBare(cmd *exec.Cmd) ([]byte, error) {
	var out strings.Builder
	cmd.Stdout = &out
	var err error
	if berr := OnBareThread(func() { err = cmd.Start() }); berr != nil {
		return nil, berr
	}
	if err == nil {
		err = cmd.Wait()
	}
	return []byte(out.String()), err
}

// BenchmarkFilterAssemble is the part of the seccomp layer that runs in
// Go before the kernel sees the program: the allow-list, by name, to
// go-seccomp-bpf's policy, to BPF instructions, to the kernel's encoding.
func BenchmarkFilterAssemble(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		insns, err := filter(4242)
		if err == nil {
			_, err = bpf.Assemble(insns)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
