package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestCanExec: workers start with their own ids, so sslserver's binary
// must be executable by them; a binary only root may run is refused at
// start with the fix in the message.
func TestCanExec(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sslserver")
	if err := os.WriteFile(path, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	owner := st.Sys().(*syscall.Stat_t)
	other := &tlsSetup{uid: owner.Uid + 1000, gid: owner.Gid + 1000}
	sameGroup := &tlsSetup{uid: owner.Uid + 1000, gid: owner.Gid}
	for _, c := range []struct {
		mode os.FileMode
		t    *tlsSetup
		ok   bool
	}{
		{0o755, other, true},
		{0o751, other, true},
		{0o750, other, false},
		{0o750, sameGroup, true},
		{0o700, sameGroup, false},
		{0o700, &tlsSetup{uid: owner.Uid, gid: owner.Gid + 1000}, true},
	} {
		if err := os.Chmod(path, c.mode); err != nil {
			t.Fatal(err)
		}
		err := c.t.canExec(path)
		if (err == nil) != c.ok {
			t.Errorf("mode %04o, workers %d:%d: %v, want ok %v", c.mode, c.t.uid, c.t.gid, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "chmod a+x") {
			t.Errorf("mode %04o: %q does not say what to do", c.mode, err)
		}
	}
	if err := other.canExec(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing binary passed")
	}
}

// TestRootByDescriptor: workers chroot into SSL_CHROOT by the
// descriptor the supervisor opened, so only the directory itself must be
// searchable by their ids; a 0700 directory above it does not matter.
func TestRootByDescriptor(t *testing.T) {
	top := t.TempDir()
	jail := filepath.Join(top, "a", "jail")
	if err := os.MkdirAll(jail, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(top, "a"), 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(jail)
	if err != nil {
		t.Fatal(err)
	}
	owner := st.Sys().(*syscall.Stat_t)
	ts := &tlsSetup{uid: owner.Uid + 1000, gid: owner.Gid + 1000}
	if err := ts.workerRoot(jail); err != nil {
		t.Fatalf("under a closed parent: %v", err)
	}
	defer ts.cleanup()
	var byFD syscall.Stat_t
	if err := syscall.Fstat(int(ts.rootDir.Fd()), &byFD); err != nil || byFD.Ino != owner.Ino || byFD.Dev != owner.Dev {
		t.Errorf("the root descriptor is not the jail (%v)", err)
	}
	if err := os.Chmod(jail, 0o700); err != nil {
		t.Fatal(err)
	}
	closed := &tlsSetup{uid: owner.Uid + 1000, gid: owner.Gid + 1000}
	err = closed.workerRoot(jail)
	if err == nil || !strings.Contains(err.Error(), "not searchable") || closed.rootDir != nil {
		t.Fatalf("a jail closed to the workers: %v, want refused as not searchable", err)
	}
}
