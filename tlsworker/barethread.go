package tlsworker

import (
	"fmt"
	"runtime"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// A child inherits its capability bounding set from the thread that
// forks it, and keeps it across exec; every thread it then makes
// inherits it in turn. The set is per thread, so a Go process can only
// empty it on all its threads with one stop-the-world call per
// capability, some 40 of them and about a millisecond per worker. The
// supervisor instead forks its confined processes from one OS thread of
// its own whose bounding set holds only the capabilities StartAttr
// gives (a capability outside the bounding set cannot be made ambient):
// they start with those two on every thread, and Confine drops them.
var bare struct {
	once sync.Once
	jobs chan func()
	err  error
}

// OnBareThread runs start on the supervisor's thread whose capability
// bounding set holds only startCaps, made on first use (which needs CAP_SETPCAP),
// and waits for it. Go's runtime makes no new thread from a locked one,
// so the empty set stays on that thread alone.
func OnBareThread(start func()) error {
	bare.once.Do(startBareThread)
	if bare.err != nil {
		return bare.err
	}
	done := make(chan struct{})
	bare.jobs <- func() {
		defer close(done)
		start()
	}
	<-done
	return nil
}

func startBareThread() {
	ready := make(chan error)
	bare.jobs = make(chan func())
	go bareThread(ready)
	bare.err = <-ready
}

// bareThread empties its thread's bounding set but for startCaps and
// runs jobs on it
// forever. It never unlocks the thread: on failure the goroutine ends
// locked, and the runtime lets the thread go with it.
func bareThread(ready chan<- error) {
	runtime.LockOSThread()
	if err := narrowThisThread(); err != nil {
		ready <- fmt.Errorf("emptying the capability bounding set of the thread that starts workers: %w", err)
		return
	}
	ready <- nil
	for job := range bare.jobs {
		job()
	}
}

// narrowThisThread drops from this thread's bounding set all but
// startCaps.
func narrowThisThread() error {
	caps, err := boundingSet()
	if err != nil {
		return err
	}
	for _, c := range caps {
		if slices.Contains(startCaps, c) {
			continue
		}
		if _, _, e := unix.RawSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, c, 0); e != 0 {
			return fmt.Errorf("capability %d: %w", c, e)
		}
	}
	return nil
}
