package integration

// More helper roles (see roles_test.go for how roles run), for the limit
// and resilience tests. They join the role table when the package
// starts, before TestMain dispatches.

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func init() {
	roles["readyecho"] = func() int { return roleReadyEcho(false) }
	roles["hang"] = func() int { return roleReadyEcho(true) }
	roles["sink"] = roleSink
	roles["tick"] = roleTick
	roles["ignoreterm"] = roleIgnoreTerm
}

// roleReadyEcho says "READY pid" and echoes until EOF. With stay, it
// then goes on running, as a program with work left to do would: only a
// signal ends it before roleDeadline.
func roleReadyEcho(stay bool) int {
	if err := goTLS(); err != nil {
		return fail("%v", err)
	}
	if err := writeString(1, fmt.Sprintf("READY %d\n", os.Getpid())); err != nil {
		return 1
	}
	code := echo()
	if stay {
		time.Sleep(roleDeadline)
	}
	return code
}

// roleSink says READY, reads its input to EOF without answering, and
// then reports the byte count: "GOT n".
func roleSink() int {
	if err := goTLS(); err != nil {
		return fail("%v", err)
	}
	if err := writeString(1, "READY\n"); err != nil {
		return 1
	}
	n, err := io.Copy(io.Discard, rawFD(0))
	if err != nil {
		return fail("reading: %v", err)
	}
	if err := writeString(1, fmt.Sprintf("GOT %d\n", n)); err != nil {
		return 1
	}
	return 0
}

// roleTick writes "." every $ITEST_TICK_MS milliseconds, $ITEST_TICKS
// times, then a newline, without reading anything, and exits.
func roleTick() int {
	n, errN := strconv.Atoi(os.Getenv("ITEST_TICKS"))
	ms, errMS := strconv.Atoi(os.Getenv("ITEST_TICK_MS"))
	if errN != nil || errMS != nil {
		return fail("ITEST_TICKS=%q ITEST_TICK_MS=%q", os.Getenv("ITEST_TICKS"), os.Getenv("ITEST_TICK_MS"))
	}
	if err := goTLS(); err != nil {
		return fail("%v", err)
	}
	for i := 0; i < n; i++ {
		time.Sleep(time.Duration(ms) * time.Millisecond)
		if err := writeString(1, "."); err != nil {
			return 1
		}
	}
	if err := writeString(1, "\n"); err != nil {
		return 1
	}
	return 0
}

// roleIgnoreTerm catches SIGTERM, says so on stderr (which is sslserver's
// log) and carries on, so only SIGKILL ends it before roleDeadline. It
// says "ready" once the handler is in place, so a test can wait for that
// before making the server send SIGTERM.
func roleIgnoreTerm() int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	fmt.Fprintf(os.Stderr, "itest: ignoreterm %d: ready\n", os.Getpid())
	deadline := time.After(roleDeadline)
	for {
		select {
		case <-sigs:
			fmt.Fprintf(os.Stderr, "itest: ignoreterm %d: SIGTERM ignored\n", os.Getpid())
		case <-deadline:
			return 0
		}
	}
}
