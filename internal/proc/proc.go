// Package proc holds the small things sslserver, sslclient and
// sslhandle all do with the processes they run: find a program as
// execvp would, end it politely, then firmly, and name a re-executed
// role as ps shows it.
package proc

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// LookPath finds the program as execvp would; a name with a slash is
// used as it is, and a name not found is left for exec to report.
func LookPath(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return name
}

// Signaller is a process that can be signalled (*os.Process, or the
// supervisor's Process).
type Signaller interface {
	Signal(os.Signal) error
}

// Terminate sends SIGTERM, and SIGKILL if the process has not gone
// (gone closed) after grace.
func Terminate(p Signaller, gone <-chan struct{}, grace time.Duration) {
	p.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-t.C:
		p.Signal(syscall.SIGKILL)
	case <-gone:
	}
}
