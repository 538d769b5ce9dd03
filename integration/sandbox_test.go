package integration

// The syscall sandbox, proved from inside a real worker of a real
// sslserver (the plan "sandbox" of hostile_harness_test.go), and the
// chroot by descriptor.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
)

// sandboxWant is every attack of sbAttacks and the errno the sandbox
// answers with: EPERM, the filter's default, and ENOSYS for clone3, so
// that Go falls back to clone, whose flags the filter reads. Without
// the filter most would fail differently (ENOENT, EACCES, ENOTSOCK) or
// succeed: the errno tells which layer stopped the call.
var sandboxWant = map[string]string{
	"socket": "EPERM", "socketpair": "EPERM", "connect": "EPERM", "bind": "EPERM", "listen": "EPERM",
	"open-passwd": "EPERM", "open-dot": "EPERM", "mkdir": "EPERM", "execve": "EPERM",
	"ptrace-attach": "EPERM", "ptrace-traceme": "EPERM", "process_vm_readv": "EPERM",
	"kill-parent": "EPERM", "kill-all": "EPERM", "tkill-parent": "EPERM", "tgkill-parent": "EPERM",
	"fork": "EPERM", "clone3": "ENOSYS",
	"kill-self": "ok",
}

// TestSandboxRefusesAttacks: a worker that tries, once confined, to make
// sockets, open files, make directories, exec, trace or read another
// process, signal its supervisor or every process it may, or fork, gets
// the sandbox's errno for each; the supervisor and the key holder (same
// uid as the worker: kill(-1) would reach it) survive; and the worker
// then serves its session: handshake, signature and relay.
func TestSandboxRefusesAttacks(t *testing.T) {
	uid := hostileUID(t)
	setPlan(t, uid, "sandbox")
	s := startServer(t, serverConfig{hostile: uid, role: "echo", env: []string{"SSL_PREFORK=1"}})
	keyHolder := s.keyHolder(t)
	pid := s.goodSession(t, "after the attacks")
	for name, want := range sandboxWant {
		re := regexp.MustCompile(regexp.QuoteMeta(probePrefix+name+" ") + `(\S+)$`)
		m := s.log.wait(re, waitTime)
		if m == nil {
			t.Errorf("no probe line for %s", name)
			continue
		}
		if m[1] != want {
			t.Errorf("inside a worker, %s: %s, want %s", name, m[1], want)
		}
	}
	if again := s.goodSession(t, "a second session"); again == pid {
		t.Errorf("worker %d served two sessions", pid)
	}
	if err := syscall.Kill(keyHolder, 0); err != nil {
		t.Errorf("key holder %d is gone after the attacks: %v", keyHolder, err)
	}
	if lines := s.log.matches(regexp.MustCompile(`key holder \d+ ended`)); len(lines) > 0 {
		t.Errorf("the key holder died: %q", lines)
	}
	select {
	case <-s.exited:
		t.Fatal("sslserver exited")
	default:
	}
	s.log.wait(regexp.MustCompile(`worker sandbox: chroot, ids \d+:\d+, no_new_privs, no capabilities, seccomp, (landlock v\d+|no landlock)$`), waitTime)
}

// TestChrootByDescriptor: SSL_CHROOT under a directory that only root may
// enter works (workers enter it by descriptor), and a worker started
// after the directory was swapped for another still lands in the one
// sslserver opened and checked at start.
func TestChrootByDescriptor(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "closed") // 0700 all the way up: root's alone
	jail := filepath.Join(parent, "jail")
	if err := os.MkdirAll(jail, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(parent, 0o700); err != nil {
		t.Fatal(err)
	}
	var opened syscall.Stat_t
	if err := syscall.Stat(jail, &opened); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, serverConfig{role: "sleep", env: []string{"SSL_PREFORK=0", "SSL_CHROOT=" + jail}})
	s.keyHolder(t)
	// The swap: the path now names another directory, with a file in it.
	if err := os.Rename(jail, jail+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(jail, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(jail, "planted"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h := holdSession(t, s)
	defer h.conn.Close()
	var root syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/root/", h.worker), &root); err != nil {
		t.Fatal(err)
	}
	if root.Dev != opened.Dev || root.Ino != opened.Ino {
		t.Errorf("worker %d's root is inode %d, want the directory sslserver opened, inode %d", h.worker, root.Ino, opened.Ino)
	}
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/root/", h.worker))
	if err != nil || len(entries) != 0 {
		t.Errorf("worker %d's root has %d entries (%v), want the empty directory", h.worker, len(entries), err)
	}
	uid, gid := nobodyIDs(t)
	checkIDs(t, "worker", h.worker, uid, gid)
}
