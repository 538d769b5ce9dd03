package integration

// Roles for the boundary tests (see roles_test.go for how roles run):
// programs that attack the stderr they share with sslserver.

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/internal/testutil"
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
	if err := writeString(1, "SHUT "+testutil.ErrnoName(unix.Shutdown(2, unix.SHUT_WR))+"\n"); err != nil {
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
	result := testutil.ErrnoName(injectInput(2, "id\n"))
	if err := writeString(1, fmt.Sprintf("TIOCSTI %s\nREADY %d\n", result, os.Getpid())); err != nil {
		return 1
	}
	pollIn(0, 2*roleDeadline)
	return 0
}
