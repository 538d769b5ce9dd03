package tlsworker

import (
	"encoding/binary"

	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// TestFilterDecides runs the seccomp program in x/net/bpf's interpreter
// on the kernel's struct seccomp_data, for each kind of decision: the
// allow-list, the argument checks on clone, kill and tgkill, clone3's
// ENOSYS, and EPERM for the rest and for another architecture. The real
// kernel's answers are TestSandboxRefusesAttacks's (integration).
func TestFilterDecides(t *testing.T) {
	const pid = 4242
	raw, err := filter(pid)
	if err != nil {
		t.Fatal(err)
	}
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("the program does not disassemble")
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		what string
		arch uint32
		nr   uintptr
		arg0 uint64
		want uint32
	}{
		{"read", auditArch, unix.SYS_READ, 0, retAllow},
		{"getrandom", auditArch, unix.SYS_GETRANDOM, 0, retAllow},
		{"socket", auditArch, unix.SYS_SOCKET, unix.AF_INET, retEPERM},
		{"openat", auditArch, unix.SYS_OPENAT, 0, retEPERM},
		{"execve", auditArch, unix.SYS_EXECVE, 0, retEPERM},
		{"ptrace", auditArch, unix.SYS_PTRACE, 0, retEPERM},
		{"a thread", auditArch, unix.SYS_CLONE, unix.CLONE_VM | unix.CLONE_THREAD | unix.CLONE_SIGHAND, retAllow},
		{"a process", auditArch, unix.SYS_CLONE, uint64(unix.SIGCHLD), retEPERM},
		{"clone3", auditArch, unix.SYS_CLONE3, 0, retNoSys},
		{"kill self", auditArch, unix.SYS_KILL, pid, retAllow},
		{"kill other", auditArch, unix.SYS_KILL, pid + 1, retEPERM},
		{"kill -1", auditArch, unix.SYS_KILL, ^uint64(0), retEPERM},
		{"kill self, high bits set", auditArch, unix.SYS_KILL, 1<<32 | pid, retEPERM},
		{"tgkill self", auditArch, unix.SYS_TGKILL, pid, retAllow},
		{"tgkill other", auditArch, unix.SYS_TGKILL, 1, retEPERM},
		{"tkill", auditArch, unix.SYS_TKILL, pid, retEPERM},
		{"read, another architecture", auditArch ^ 1, unix.SYS_READ, 0, retEPERM},
		{"an unknown number", auditArch, 999, 0, retEPERM},
	}
	if x32Bit != 0 {
		cases = append(cases, struct {
			what string
			arch uint32
			nr   uintptr
			arg0 uint64
			want uint32
		}{"read, x32 ABI", auditArch, unix.SYS_READ | x32Bit, 0, retEPERM})
	}
	for _, c := range cases {
		got, err := vm.Run(seccompData(c.arch, c.nr, c.arg0))
		if err != nil || uint32(got) != c.want {
			t.Errorf("%s: %#x (%v), want %#x", c.what, got, err, c.want)
		}
	}
}

// seccompData is struct seccomp_data as a filter sees it: nr, arch,
// instruction pointer, six arguments. The kernel loads each 32-bit word
// in the machine's order, little-endian here, so the low half of an
// argument comes first; x/net/bpf's interpreter loads words big-endian,
// as packets have them, so each word is written so for it.
func seccompData(arch uint32, nr uintptr, arg0 uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[offNr:], uint32(nr))
	binary.BigEndian.PutUint32(b[offArch:], arch)
	binary.BigEndian.PutUint32(b[offArg0Lo:], uint32(arg0))
	binary.BigEndian.PutUint32(b[offArg0Hi:], uint32(arg0>>32))
	return b
}
