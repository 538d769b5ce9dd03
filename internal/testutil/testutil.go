// Package testutil holds the few helpers several packages' tests share:
// where the shared interoperability vectors are, and building a command
// under test.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// SharedTestdata is the path of shared/testdata/elem..., which sits beside
// the module root (the directory of the first go.mod above the test's).
func SharedTestdata(t testing.TB, elem ...string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(append([]string{dir, "..", "shared", "testdata"}, elem...)...)
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
