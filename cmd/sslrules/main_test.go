package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucspi-tls/sslserver/internal/testutil"
)

func runBinary(t *testing.T, bin string, stdin []byte, args ...string) testutil.Result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	return testutil.Run(t, cmd)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustNotExist(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is left behind (%v)", path, err)
	}
}

func TestCompilesLikeFehcom(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	cdb, tmp := filepath.Join(dir, "rules.cdb"), filepath.Join(dir, "rules.tmp")
	if err := os.WriteFile(cdb, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runBinary(t, bin, readFile(t, vectorFile(t, "rules.txt")), cdb, tmp)
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
	}
	if !bytes.Equal(readFile(t, cdb), readFile(t, vectorFile(t, "rules.fehcom.cdb"))) {
		t.Error("rules.cdb differs from the reference rules.fehcom.cdb")
	}
	mustNotExist(t, tmp)
}

func TestParseErrorKeepsOldCDB(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	cdb, tmp := filepath.Join(dir, "rules.cdb"), filepath.Join(dir, "rules.tmp")
	old := readFile(t, vectorFile(t, "rules.fehcom.cdb"))
	if err := os.WriteFile(cdb, old, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runBinary(t, bin, []byte("# ok\n1.2.3.4:allow\n1.2.3.4:permit\n"), cdb, tmp)
	if r.Code != 100 {
		t.Errorf("exit %d, want 100", r.Code)
	}
	lines := strings.Split(strings.TrimSuffix(r.Stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "sslrules: fatal: unable to parse line 3: ") || !strings.Contains(lines[0], `"1.2.3.4:permit"`) {
		t.Errorf("stderr %q", r.Stderr)
	}
	if !bytes.Equal(readFile(t, cdb), old) {
		t.Error("rules.cdb was changed")
	}
	mustNotExist(t, tmp)
}

func TestUsage(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, args := range [][]string{{}, {a}, {a, b, "c"}, {"-x", a, b}, {"", b}} {
		r := runBinary(t, bin, []byte(":allow\n"), args...)
		if r.Code != 100 || !strings.HasPrefix(r.Stderr, "sslrules: usage: ") ||
			!strings.HasSuffix(r.Stderr, "\nsslrules: try \"sslrules --help\"\n") || strings.Count(r.Stderr, "\n") != 2 {
			t.Errorf("args %q: exit %d, stderr %q", args, r.Code, r.Stderr)
		}
	}
	mustNotExist(t, a)
	mustNotExist(t, b)
	if r := runBinary(t, bin, []byte(":allow\n"), "--", a, b); r.Code != 0 {
		t.Errorf("with --: exit %d, stderr %q", r.Code, r.Stderr)
	}
	mustNotExist(t, b)
	if _, err := os.Stat(a); err != nil {
		t.Error(err)
	}
}

func TestIOErrors(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	cdbDir := filepath.Join(dir, "cdb-is-a-directory")
	if err := os.Mkdir(cdbDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cdbDir, "keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "rules.tmp")
	cases := []struct{ name, cdb, tmp string }{
		{"temp file in a missing directory", filepath.Join(dir, "rules.cdb"), filepath.Join(dir, "missing", "rules.tmp")},
		{"rename onto a non-empty directory", cdbDir, tmp},
	}
	for _, c := range cases {
		r := runBinary(t, bin, []byte(":allow\n"), c.cdb, c.tmp)
		if r.Code != 111 || !strings.HasPrefix(r.Stderr, "sslrules: fatal: ") {
			t.Errorf("%s: exit %d, stderr %q", c.name, r.Code, r.Stderr)
		}
		mustNotExist(t, c.tmp)
	}
	mustNotExist(t, filepath.Join(dir, "rules.cdb"))
}

func vectorFile(t *testing.T, name string) string {
	return testutil.Tcprules(t, name)
}

func buildBinary(t *testing.T) string { return testutil.BuildCommand(t, progName) }

// TestHelp: -h and --help print the usage and options on stdout, exit 0,
// and write nothing.
func TestHelp(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	for _, arg := range []string{"-h", "--help"} {
		cmd := exec.Command(bin, arg)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil || !strings.HasPrefix(string(out), "usage: sslrules rules.cdb rules.tmp") || !strings.Contains(string(out), "--help") {
			t.Errorf("%s: %v, stdout %q", arg, err, out)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("help wrote files: %v", ents)
	}
}
