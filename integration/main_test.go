package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"

	"github.com/ucspi-tls/sslserver/tlsworker"
)

// roleEnv selects a helper role: the test binary started with it set acts
// as that program (see roles_test.go) instead of running tests.
const roleVar = "ITEST_ROLE"

// Set by TestMain for the tests.
var (
	binDir    string           // the project's binaries and the itest copy
	itestBin  string           // a world-executable copy of this test binary
	buildErrs map[string]error // per binary under cmd/, when it did not build
)

func TestMain(m *testing.M) {
	if code, ok := runHostile(); ok {
		os.Exit(code)
	}
	if role := os.Getenv(roleVar); role != "" {
		os.Exit(runRole(role))
	}
	os.Exit(runTests(m))
}

// runTests builds the binaries once, runs the tests and removes the build.
func runTests(m *testing.M) int {
	// This binary itself runs as sslserver in the hostile tests, and a
	// cgo build cannot confine its workers: say so once, not per test.
	if err := tlsworker.CanConfine(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v (make integration does)\n", err)
		return 111
	}
	closeInheritedOnExec()
	dir, err := os.MkdirTemp("", "itest-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 111
	}
	defer os.RemoveAll(dir)
	if err := prepareBinaries(dir); err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 111
	}
	return m.Run()
}

// prepareBinaries fills dir with the project's binaries and a copy of the
// test binary. The directory and the copy are world-readable so a program
// started with -u (an unprivileged uid) can still exec the helper roles.
func prepareBinaries(dir string) error {
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	binDir = dir
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	buildErrs = buildAll(root, dir)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	itestBin = filepath.Join(dir, "itest")
	return copyFile(self, itestBin, 0o755)
}

// closeInheritedOnExec keeps descriptors this process inherited (from a
// CI runner, say) out of sslserver, so that every descriptor the tests
// find in its processes was opened or passed on purpose.
func closeInheritedOnExec() {
	entries, _ := os.ReadDir("/proc/self/fd")
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// moduleRoot walks up from the package directory to the go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the package directory")
		}
		dir = parent
	}
}

// buildAll builds ./cmd/... into dir in one go. When that fails it builds
// each command alone, so one broken command fails only the tests that
// need it; the returned map holds the compiler output for those.
func buildAll(root, dir string) map[string]error {
	errs := map[string]error{}
	if _, err := goBuild(root, dir, "./cmd/..."); err == nil {
		return errs
	}
	cmds, _ := filepath.Glob(filepath.Join(root, "cmd", "*"))
	for _, c := range cmds {
		name := filepath.Base(c)
		if out, err := goBuild(root, dir, "./cmd/"+name); err != nil {
			errs[name] = fmt.Errorf("go build ./cmd/%s: %w\n%s", name, err, out)
		}
	}
	return errs
}

func goBuild(root, dir, pkg string) ([]byte, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(gobin, "build", "-buildvcs=false", "-o", dir+string(filepath.Separator), pkg)
	cmd.Dir = root
	// As "make build": sslserver sets no_new_privs on all its threads
	// (syscall.AllThreadsSyscall), which a cgo binary cannot do.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.Bytes(), err
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// binary returns the path of a project binary; a binary that did not
// build fails the test with the compiler's output.
func binary(t testing.TB, name string) string {
	t.Helper()
	if err := buildErrs[name]; err != nil {
		t.Fatalf("%s did not build: %v", name, err)
	}
	p := filepath.Join(binDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("binary %s missing after the build: %v", name, err)
	}
	return p
}
