package integration

// Helpers for the boundary tests: sslserver's stderr as a socket, a file
// or a terminal, and descriptor counts.

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/internal/testutil"
)

// stderr makes sslserver's stderr of the given kind: r is where the test
// reads the log, w what sslserver gets (startServer closes w after the
// start). A file's path is kept in s.logPath, a terminal's other side in
// s.tty.
func (s *server) stderr(kind stderrKind) (r, w *os.File) {
	switch kind {
	case stderrSocket:
		return s.socketPair()
	case stderrFile:
		return s.appendFile()
	case stderrTTY:
		return s.openPTY()
	}
	return s.pipe()
}

func (s *server) socketPair() (r, w *os.File) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		s.t.Fatal(err)
	}
	r, w = os.NewFile(uintptr(fds[0]), "log reader"), os.NewFile(uintptr(fds[1]), "stderr socket")
	s.t.Cleanup(func() { r.Close() })
	return r, w
}

func (s *server) appendFile() (r, w *os.File) {
	s.logPath = filepath.Join(s.t.TempDir(), "log")
	w, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	if r, err = os.Open(s.logPath); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { r.Close() })
	return r, w
}

// openPTY makes a pseudo-terminal in raw mode (no echo, no line editing,
// no output processing: the log comes through as written, and every
// byte pushed into its input stays countable). sslserver gets the
// terminal side as stderr and as its controlling terminal, as when
// started from a root shell; the test reads the log from the master.
func (s *server) openPTY() (master, term *os.File) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		missing(s.t, "/dev/ptmx")
	}
	s.t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		s.t.Fatalf("unlocking the pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		s.t.Fatalf("pty number: %v", err)
	}
	term, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		s.t.Fatal(err)
	}
	tio, err := unix.IoctlGetTermios(int(term.Fd()), unix.TCGETS)
	if err != nil {
		s.t.Fatal(err)
	}
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	if err := unix.IoctlSetTermios(int(term.Fd()), unix.TCSETS, tio); err != nil {
		s.t.Fatal(err)
	}
	if s.tty, err = os.OpenFile(term.Name(), os.O_RDWR|syscall.O_NOCTTY, 0); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { s.tty.Close() })
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 2}
	return m, term
}

// ttyInput is how many bytes wait in the terminal's input queue, to be
// read by whatever reads the terminal (the root shell).
func (s *server) ttyInput(t testing.TB) int {
	t.Helper()
	n, err := unix.IoctlGetInt(int(s.tty.Fd()), unix.TIOCINQ)
	if err != nil {
		t.Fatalf("TIOCINQ: %v", err)
	}
	return n
}

// tailLog reads a log file as it grows, until sslserver has exited and
// everything it wrote is read.
func tailLog(f *os.File, b *logBook, exited <-chan struct{}) {
	r := bufio.NewReader(f)
	var part string
	done := false
	for {
		for {
			line, err := r.ReadString('\n')
			part += line
			if err != nil {
				break
			}
			b.add(strings.TrimSuffix(part, "\n"))
			part = ""
		}
		if done {
			b.close()
			return
		}
		select {
		case <-exited:
			done = true
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// settledFDs waits until pid's descriptor count holds still for a while
// (children just reaped have had their pipes closed) and returns it.
func settledFDs(t testing.TB, pid int) int {
	t.Helper()
	n := testutil.FdCount(t, pid)
	for deadline := time.Now().Add(waitTime); time.Now().Before(deadline); {
		time.Sleep(1500 * time.Millisecond)
		m := testutil.FdCount(t, pid)
		if m == n {
			return n
		}
		n = m
	}
	t.Fatalf("descriptors of %d never settled", pid)
	return 0
}
