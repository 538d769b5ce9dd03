package integration

// Roles for the boundary tests (see roles_test.go for how roles run):
// programs that attack the stderr they share with sslserver.

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

func init() {
	roles["shutstderr"] = roleShutStderr
	roles["tiocsti"] = roleTIOCSTI
}

// roleShutStderr shuts down the write side of its stderr, which
// sslserver shares with it, reports "SHUT result" and echoes.
func roleShutStderr() int {
	if err := goTLS(); err != nil {
		return fail("%v", err)
	}
	if err := writeString(1, "SHUT "+errnoName(unix.Shutdown(2, unix.SHUT_WR))+"\n"); err != nil {
		return 1
	}
	return echo()
}

// roleTIOCSTI pushes "id\n" into the input of the terminal on its stderr,
// as input typed at the shell that started sslserver would be; it
// reports "TIOCSTI result", says READY and waits for EOF.
func roleTIOCSTI() int {
	if err := goTLS(); err != nil {
		return fail("%v", err)
	}
	var err error
	for _, c := range []byte("id\n") {
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, 2, unix.TIOCSTI, uintptr(unsafe.Pointer(&c))); e != 0 {
			err = e
			break
		}
	}
	if err := writeString(1, fmt.Sprintf("TIOCSTI %s\nREADY %d\n", errnoName(err), os.Getpid())); err != nil {
		return 1
	}
	pollIn(0, 2*roleDeadline)
	return 0
}

// errnoName is "ok", or the errno's name (ENOTTY).
func errnoName(err error) string {
	if err == nil {
		return "ok"
	}
	if e, ok := err.(unix.Errno); ok {
		if e == 0 {
			return "ok"
		}
		return unix.ErrnoName(e)
	}
	return err.Error()
}
