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

// TestReachable: a worker chroots with its own ids, so SSL_CHROOT and
// every directory above it must be searchable by them.
func TestReachable(t *testing.T) {
	top, err := os.MkdirTemp("", "reachable") // t.TempDir's parent is closed to others
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	jail := filepath.Join(top, "a", "jail")
	if err := os.MkdirAll(jail, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(jail)
	if err != nil {
		t.Fatal(err)
	}
	owner := st.Sys().(*syscall.Stat_t)
	ts := &tlsSetup{uid: owner.Uid + 1000, gid: owner.Gid + 1000}
	if err := ts.reachable(jail); err != nil {
		t.Fatalf("open path: %v", err)
	}
	mid := filepath.Join(top, "a")
	if err := os.Chmod(mid, 0o700); err != nil {
		t.Fatal(err)
	}
	err = ts.reachable(jail)
	if err == nil || !strings.Contains(err.Error(), mid) {
		t.Fatalf("closed %s: %v, want an error naming it", mid, err)
	}
}
