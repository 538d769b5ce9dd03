// Command hostileserver is sslserver whose TLS worker can be made to
// play a compromised worker, for the integration tests of the boundary
// between processes (integration/boundary_test.go). It is never built
// by "make build" or installed.
//
// A worker it starts looks for a plan file named plan-UID next to the
// binary, UID being the worker's own; without one it is the real worker.
// With one, it carries out the plan's steps with exactly the descriptors,
// ids, session and namespaces a real worker starts with (and before it
// confines itself, so it has even more than a confined worker would),
// reports each step's result on its stderr, and exits. A step is one
// line:
//
//	shutdown      shutdown(2, SHUT_WR)
//	truncate      ftruncate(2, 0)
//	tiocsti       ioctl(2, TIOCSTI) for each byte of "id\n"
//	kill PID      kill(PID, SIGKILL)
//	ptrace PID    ptrace(PTRACE_ATTACH, PID)
//	flood N       N lines on stderr, then a second's pause, after which
//	              the supervisor's relay takes its lines again
//
// and its report is "hostile: STEP: ok" or "hostile: STEP: ERROR",
// followed by "hostile: done".
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/protocol"
	"github.com/ucspi-tls/sslserver/supervisor"
	"github.com/ucspi-tls/sslserver/tlsworker"
)

func main() {
	switch os.Args[0] {
	case protocol.WorkerArgv0:
		if plan, err := os.ReadFile(planPath()); err == nil {
			os.Exit(attack(string(plan)))
		}
		os.Exit(tlsworker.WorkerMain())
	case protocol.KeyHolderArgv0:
		os.Exit(tlsworker.KeyHolderMain())
	}
	os.Exit(supervisor.Main(os.Args[1:], os.Stdout, os.Stderr))
}

func planPath() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return filepath.Join(filepath.Dir(exe), "plan-"+strconv.Itoa(os.Getuid()))
}

func attack(plan string) int {
	for _, step := range strings.Split(strings.TrimSpace(plan), "\n") {
		fmt.Fprintf(os.Stderr, "hostile: %s: %s\n", step, result(do(strings.Fields(step))))
	}
	fmt.Fprintln(os.Stderr, "hostile: done")
	return protocol.ExitTemp
}

func do(step []string) error {
	if len(step) == 0 {
		return fmt.Errorf("empty step")
	}
	arg := 0
	if len(step) > 1 {
		arg, _ = strconv.Atoi(step[1])
	}
	switch step[0] {
	case "shutdown":
		return unix.Shutdown(2, unix.SHUT_WR)
	case "truncate":
		return unix.Ftruncate(2, 0)
	case "tiocsti":
		return inject(2, "id\n")
	case "kill":
		return unix.Kill(arg, unix.SIGKILL)
	case "ptrace":
		return unix.PtraceAttach(arg)
	case "flood":
		for i := 0; i < arg; i++ {
			fmt.Fprintf(os.Stderr, "flood %d\n", i)
		}
		time.Sleep(time.Second)
		return nil
	}
	return fmt.Errorf("unknown step %q", step[0])
}

// inject pushes s into the input of the terminal on fd, a byte at a time.
func inject(fd int, s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCSTI, uintptr(unsafe.Pointer(&c))); e != 0 {
			return e
		}
	}
	return nil
}

func result(err error) string {
	if err == nil {
		return "ok"
	}
	if e, ok := err.(syscall.Errno); ok {
		return unix.ErrnoName(e)
	}
	return err.Error()
}
