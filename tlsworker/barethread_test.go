package tlsworker

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOnBareThreadIsAlone: the job runs on a thread whose bounding set
// holds only startCaps, and every other thread of the process keeps the
// full set: the supervisor still starts programs that run as root.
func TestOnBareThreadIsAlone(t *testing.T) {
	utRequireRoot(t)
	want := fmt.Sprintf("%016x", uint64(1)<<unix.CAP_SYS_CHROOT|uint64(1)<<unix.CAP_SETPCAP)
	var tid int
	if err := OnBareThread(func() { tid = unix.Gettid() }); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	defer close(release)
	for range 4 { // threads made after the bare one, from elsewhere
		go utHoldThread(release)
	}
	runtime.Gosched()
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) < 2 {
		t.Fatalf("threads: %v %v", tasks, err)
	}
	bare := 0
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			t.Fatal(err)
		}
		st := utParseStatus(string(b))
		switch {
		case st["Pid"] == fmt.Sprint(tid):
			bare++
			if st["CapBnd"] != want {
				t.Errorf("the bare thread %d has CapBnd %s, want %s", tid, st["CapBnd"], want)
			}
		case st["CapBnd"] == want || strings.Trim(st["CapBnd"], "0") == "":
			t.Errorf("thread %s has CapBnd %s: the bare thread's set leaked", st["Pid"], st["CapBnd"])
		}
	}
	if bare != 1 {
		t.Errorf("found the bare thread %d %d times", tid, bare)
	}
}
