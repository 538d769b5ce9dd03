package testutil

import (
	"os"
	"os/exec"
	"regexp"
	"testing"
)

// HelpListsOptions fails t for each option letter, a key of any of sets,
// that has no line of its own in help ("  -c n ..." or "  -h, -H ...").
func HelpListsOptions[F, A any](t testing.TB, help string, flags map[byte]F, args map[byte]A) {
	t.Helper()
	var letters []byte
	for c := range flags {
		letters = append(letters, c)
	}
	for c := range args {
		letters = append(letters, c)
	}
	for _, c := range letters {
		line := regexp.MustCompile(`(?m)^  (-., )?-` + regexp.QuoteMeta(string(c)) + `\b`)
		if !line.MatchString(help) {
			t.Errorf("option -%c has no line in the help", c)
		}
	}
}

// NeedTool returns the path of an external program; when it is missing
// the test is skipped, or fails under CI=true, where every tool the tests
// use must be installed (scripts/install-test-deps).
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("this test needs %s (CI=true: a missing tool is a failure)", name)
	}
	t.Skipf("this test needs %s", name)
	return ""
}
