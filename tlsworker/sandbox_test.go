package tlsworker

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/internal/testutil"
)

// TestFilterDecides runs the seccomp program, as go-seccomp-bpf
// assembles it and loadFilter loads it, in x/net/bpf's interpreter on
// the kernel's struct seccomp_data, for each kind of decision: the
// allow-list, the argument checks on clone, kill and tgkill, clone3's
// ENOSYS, EPERM for the rest and for another architecture, and ENOSYS
// for the x32 ABI. The numbers are x/sys/unix's, not the library's
// tables. The real kernel's answers are TestSandboxRefusesAttacks's
// (integration).
func TestFilterDecides(t *testing.T) {
	const pid = 4242
	vm := utFilterVM(t, pid)
	auditArch := uint32(filterArch.ID)
	cases := []struct {
		what string
		arch uint32
		nr   uintptr
		arg0 uint64
		want seccomp.Action
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
	if filterArch == arch.X86_64 { // the x32 ABI's numbers would pass for x86-64's
		cases = append(cases, struct {
			what string
			arch uint32
			nr   uintptr
			arg0 uint64
			want seccomp.Action
		}{"read, x32 ABI", auditArch, unix.SYS_READ | x32SyscallBit, 0, retNoSys})
	}
	for _, c := range cases {
		got, err := vm.Run(seccompData(c.arch, c.nr, c.arg0))
		if err != nil || seccomp.Action(got) != c.want {
			t.Errorf("%s: %#x (%v), want %#x", c.what, got, err, uint32(c.want))
		}
	}
}

// TestFilterFallThrough plays an attacker against go-seccomp-bpf's
// argument checks, which, once one fails, compare the loaded argument
// with the numbers of the calls that follow (see cloneGuard): a process
// made with clone, its flags equal to the process's pid where that pid
// is kill's or tgkill's number; kill and tgkill whose first argument's
// high half is clone's or clone3's number. Each is refused with EPERM,
// and the process still signals itself.
func TestFilterFallThrough(t *testing.T) {
	const pid = 4242
	for _, own := range []uint64{unix.SYS_KILL, unix.SYS_TGKILL, pid} {
		vm := utFilterVM(t, int(own))
		auditArch := uint32(filterArch.ID)
		cases := []struct {
			what string
			nr   uintptr
			arg0 uint64
			want seccomp.Action
		}{
			{"a process, flags = pid", unix.SYS_CLONE, own, retEPERM},
			{"a process, flags = clone3", unix.SYS_CLONE, unix.SYS_CLONE3, retEPERM},
			{"kill, high half clone", unix.SYS_KILL, unix.SYS_CLONE<<32 | unix.CLONE_THREAD, retEPERM},
			{"kill, high half tgkill", unix.SYS_KILL, unix.SYS_TGKILL<<32 | own, retEPERM},
			{"kill, high half clone3", unix.SYS_KILL, unix.SYS_CLONE3 << 32, retEPERM},
			{"kill clone3", unix.SYS_KILL, unix.SYS_CLONE3, retEPERM},
			{"tgkill, high half clone", unix.SYS_TGKILL, unix.SYS_CLONE<<32 | unix.CLONE_THREAD, retEPERM},
			{"kill self", unix.SYS_KILL, own, retAllow},
			{"tgkill self", unix.SYS_TGKILL, own, retAllow},
		}
		for _, c := range cases {
			got, err := vm.Run(seccompData(auditArch, c.nr, c.arg0))
			if err != nil || seccomp.Action(got) != c.want {
				t.Errorf("pid %d, %s: %#x (%v), want %#x", own, c.what, got, err, uint32(c.want))
			}
		}
	}
}

// utFilterVM is x/net/bpf's interpreter loaded with the filter for pid,
// which must also assemble for the kernel.
func utFilterVM(t *testing.T, pid int) *bpf.VM {
	t.Helper()
	insns, err := filter(pid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bpf.Assemble(insns); err != nil {
		t.Fatalf("the program does not assemble: %v", err)
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

// x32SyscallBit marks the x32 ABI's numbers on x86-64.
const x32SyscallBit = 0x40000000

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

// TestLandlockAlone: Landlock by itself, in a confined child without the
// seccomp filter, refuses what it handles: reading the root directory
// (which the jail's ids may read), a TCP connection to a listener here
// (ABI 4 and later), a signal to a process of its own uid outside its
// domain (ABI 6 and later), each
// with its own errno, while the child still makes sockets (seccomp's
// business, not Landlock's). Without Landlock in the kernel it skips.
func TestLandlockAlone(t *testing.T) {
	utRequireRoot(t)
	abi := landlockVersion()
	if abi == 0 {
		t.Skip("the kernel has no Landlock")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	uid, gid := utJailIDs(t)
	root := utJailDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), utBound)
	defer cancel()
	sleeper := exec.CommandContext(ctx, "/bin/sleep", "30")
	sleeper.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleeper.Wait()
	defer sleeper.Process.Kill()
	cmd := utChildCommand(ctx, utChildBinary(t), "landlock", fmt.Sprintf("%s=%d:%d:32:%s", utJailVar, uid, gid, root),
		utTargetVar+"="+ln.Addr().String(), fmt.Sprintf("%s=%d", utSleeperVar, sleeper.Process.Pid))
	out, err := cmd.Output()
	report, _ := utReadReport(strings.NewReader(string(out) + "ready\n"))
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	want := map[string]string{"landlock": fmt.Sprintf("%d <nil>", abi), "opendir": "EACCES", "socket": "ok"}
	if abi >= 4 {
		want["connect"] = "EACCES"
	}
	if abi >= 6 {
		want["kill-neighbour"] = "EPERM"
	}
	for k, v := range want {
		if report[k] != v {
			t.Errorf("under Landlock alone, %s: %q, want %q", k, report[k], v)
		}
	}
}

// utTargetVar names the listener the landlock child tries to reach,
// utSleeperVar the pid of a process of its uid that it tries to signal.
const (
	utTargetVar  = "TLSWORKER_UT_TARGET"
	utSleeperVar = "TLSWORKER_UT_SLEEPER"
)

// utLandlockChild confines itself, enforces Landlock only, and reports
// what it can still do: "name errno" lines.
func utLandlockChild() {
	if !utConfineFromEnv() {
		return
	}
	abi, err := restrictLandlock()
	fmt.Printf("landlock %d %v\n", abi, err)
	fd, err := unix.Open(".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	utReportErr("opendir", fd, err)
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	utReportErr("socket", -1, err)
	if err == nil {
		addr, perr := netip.ParseAddrPort(os.Getenv(utTargetVar))
		if perr == nil {
			err = unix.Connect(s, &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()})
			utReportErr("connect", -1, err)
		}
		unix.Close(s)
	}
	pid, _ := strconv.Atoi(os.Getenv(utSleeperVar))
	utReportErr("kill-neighbour", -1, unix.Kill(pid, 0))
}

// utConfineFromEnv confines a child into the jail in utJailVar, or
// prints why it could not ("confine ...") and says so.
func utConfineFromEnv() bool {
	j, err := utParseJail(os.Getenv(utJailVar))
	if err == nil {
		err = Confine(j)
	}
	if err != nil {
		fmt.Printf("confine %v\n", err)
		return false
	}
	return true
}

func utReportErr(what string, fd int, err error) {
	if fd >= 0 {
		unix.Close(fd)
	}
	fmt.Printf("%s %s\n", what, testutil.ErrnoName(err))
}
