package supervisor

import (
	"os"
	"syscall"
	"testing"
)

// BenchmarkStartNamespaces measures what a PID (and IPC) namespace of
// its own adds to starting a child: /bin/true started and reaped, as
// root, with each set of clone flags the workers could be given.
func BenchmarkStartNamespaces(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("new namespaces need root")
	}
	cases := []struct {
		name  string
		flags uintptr
	}{
		{"plain", 0},
		{"newpid", syscall.CLONE_NEWPID},
		{"newpid+newipc", syscall.CLONE_NEWPID | syscall.CLONE_NEWIPC},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) { startTrue(b, c.flags) })
	}
}

func startTrue(b *testing.B, flags uintptr) {
	attr := &os.ProcAttr{Sys: &syscall.SysProcAttr{Setsid: true, Cloneflags: flags}}
	for i := 0; i < b.N; i++ {
		p, err := os.StartProcess("/bin/true", []string{"true"}, attr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Wait(); err != nil {
			b.Fatal(err)
		}
	}
}
