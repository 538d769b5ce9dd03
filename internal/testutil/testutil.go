// Package testutil holds the few helpers several packages' tests share:
// where the tcprules interoperability vectors are, building a command
// under test and running one, counting descriptors and naming errnos.
package testutil

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Tcprules is the path of one file of the tcprules interoperability
// vectors, acl/testdata/tcprules/name, found from the module root (the
// directory of the first go.mod above the test's), so every package's
// tests read the one copy inside the repository.
func Tcprules(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "acl", "testdata", "tcprules", name)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// BuildCommand builds the main package in the test's directory into a
// temporary directory as name, and returns its path.
func BuildCommand(t testing.TB, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Result is how a command run by Run ended.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// Run runs cmd, with its output captured, to its end; a command that
// could not be started or waited for fails the test.
func Run(t testing.TB, cmd *exec.Cmd) Result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("running %s: %v", cmd.Path, err)
	}
	return Result{Code: cmd.ProcessState.ExitCode(), Stdout: stdout.String(), Stderr: stderr.String()}
}
