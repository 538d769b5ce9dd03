package proc

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestLookPath(t *testing.T) {
	if got := LookPath("./relative/prog"); got != "./relative/prog" {
		t.Errorf("a name with a slash changed: %q", got)
	}
	if got := LookPath("sh"); got == "sh" || got[0] != '/' {
		t.Errorf("sh was not found on PATH: %q", got)
	}
	if got := LookPath("no-such-program-here"); got != "no-such-program-here" {
		t.Errorf("a missing name changed: %q", got)
	}
}

// TestTerminate: a process that exits on SIGTERM is not killed; one that
// ignores it is killed after the grace period.
func TestTerminate(t *testing.T) {
	for _, c := range []struct {
		script string
		signal syscall.Signal
	}{
		{"exec sleep 30", syscall.SIGTERM},
		{"trap '' TERM; sleep 30 & wait; sleep 30", syscall.SIGKILL},
	} {
		cmd := exec.Command("/bin/sh", "-c", c.script)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		gone := make(chan struct{})
		var ws syscall.WaitStatus
		go func() {
			cmd.Wait()
			ws = cmd.ProcessState.Sys().(syscall.WaitStatus)
			close(gone)
		}()
		time.Sleep(100 * time.Millisecond) // let the shell set its trap
		start := time.Now()
		Terminate(cmd.Process, gone, 300*time.Millisecond)
		<-gone
		if !ws.Signaled() || ws.Signal() != c.signal {
			t.Errorf("%q ended with %v, want signal %v", c.script, ws, c.signal)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("%q took %v to end", c.script, time.Since(start))
		}
	}
}
