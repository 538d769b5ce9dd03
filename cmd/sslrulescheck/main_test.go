package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucspi-tls/sslserver/internal/testutil"
)

// runBinary runs bin with exactly the given environment.
func runBinary(t *testing.T, bin string, env []string, args ...string) testutil.Result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	return testutil.Run(t, cmd)
}

// expectedOutput is tcprulescheck's output for a lookups.tsv row: the
// matched key as the reference printed it, each assignment, the verdict.
func expectedOutput(key, verdict, env string) string {
	var sb strings.Builder
	if key == "default" {
		sb.WriteString("default:\n")
	} else {
		sb.WriteString("rule " + key + ":\n")
	}
	for _, nv := range strings.Split(env, ";") {
		if nv != "" {
			sb.WriteString("set environment variable " + nv + "\n")
		}
	}
	sb.WriteString(verdict + " connection\n")
	return sb.String()
}

func TestLookupsTSV(t *testing.T) {
	bin := buildBinary(t)
	cdb := vectorFile(t, "rules.fehcom.cdb")
	raw, err := os.ReadFile(vectorFile(t, "lookups.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		env := []string{"TCPREMOTEIP=" + f[0]}
		if f[1] != "-" {
			env = append(env, "TCPREMOTEHOST="+f[1])
		}
		if f[2] != "-" {
			env = append(env, "TCPREMOTEINFO="+f[2])
		}
		r := runBinary(t, bin, env, cdb)
		if want := expectedOutput(f[5], f[3], f[4]); r.Code != 0 || r.Stdout != want {
			t.Errorf("row %q: exit %d, stdout %q, want %q (stderr %q)", line, r.Code, r.Stdout, want, r.Stderr)
		}
	}
}

func TestSSLVariablesAreAFallback(t *testing.T) {
	bin := buildBinary(t)
	cdb := vectorFile(t, "rules.fehcom.cdb")
	cases := []struct {
		env  []string
		want string
	}{
		{[]string{"SSLREMOTEIP=18.23.0.32"}, "rule 18.23.0.32:\ndeny connection\n"},
		{[]string{"SSLREMOTEIP=127.0.0.1", "SSLREMOTEINFO=joe"}, "rule joe@127.0.0.1:\nset environment variable IDENT=joe\nallow connection\n"},
		{[]string{"TCPREMOTEIP=18.23.0.32", "SSLREMOTEIP=8.8.8.8"}, "rule 18.23.0.32:\ndeny connection\n"},
		{[]string{"TCPREMOTEIP=", "SSLREMOTEIP=8.8.8.8", "SSLREMOTEHOST=foo.org"}, "rule =:\nset environment variable HASNAME=1\nallow connection\n"},
	}
	for _, c := range cases {
		if r := runBinary(t, bin, c.env, cdb); r.Code != 0 || r.Stdout != c.want {
			t.Errorf("env %q: exit %d, stdout %q, want %q", c.env, r.Code, r.Stdout, c.want)
		}
	}
}

func TestErrors(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.cdb")
	if err := os.WriteFile(junk, []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}
	cdb := vectorFile(t, "rules.fehcom.cdb")
	ip := []string{"TCPREMOTEIP=1.2.3.4"}
	cases := []struct {
		name   string
		env    []string
		args   []string
		code   int
		prefix string
	}{
		{"no argument", ip, nil, 100, "sslrulescheck: usage: "},
		{"two arguments", ip, []string{cdb, cdb}, 100, "sslrulescheck: usage: "},
		{"no remote IP", nil, []string{cdb}, 100, "sslrulescheck: fatal: "},
		{"bad remote IP", []string{"TCPREMOTEIP=1.2.3"}, []string{cdb}, 100, "sslrulescheck: fatal: "},
		{"missing cdb", ip, []string{filepath.Join(dir, "missing.cdb")}, 111, "sslrulescheck: fatal: unable to read: "},
		{"malformed cdb", ip, []string{junk}, 111, "sslrulescheck: fatal: unable to read: "},
	}
	for _, c := range cases {
		r := runBinary(t, bin, c.env, c.args...)
		lines := 1 // a usage error adds a line pointing to --help
		if strings.HasSuffix(c.prefix, "usage: ") {
			lines = 2
		}
		if r.Code != c.code || r.Stdout != "" || !strings.HasPrefix(r.Stderr, c.prefix) || strings.Count(r.Stderr, "\n") != lines {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", c.name, r.Code, r.Stdout, r.Stderr)
		}
	}
	if r := runBinary(t, bin, ip, "--", cdb); r.Code != 0 || r.Stdout != "default:\nset environment variable DEFAULT=1\nallow connection\n" {
		t.Errorf("with --: exit %d, stdout %q", r.Code, r.Stdout)
	}
}

// TestHelp: -h and --help print the usage, the options and the variables
// read, on stdout, and exit 0; a usage error points to --help.
func TestHelp(t *testing.T) {
	bin := buildBinary(t)
	for _, arg := range []string{"-h", "--help"} {
		r := runBinary(t, bin, nil, arg)
		if r.Code != 0 || r.Stderr != "" || !strings.HasPrefix(r.Stdout, "usage: sslrulescheck rules.cdb\n") ||
			!strings.Contains(r.Stdout, "TCPREMOTEIP") || !strings.Contains(r.Stdout, "--help") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", arg, r.Code, r.Stdout, r.Stderr)
		}
	}
	if r := runBinary(t, bin, nil); !strings.HasSuffix(r.Stderr, "\nsslrulescheck: try \"sslrulescheck --help\"\n") {
		t.Errorf("usage error without a pointer to --help: %q", r.Stderr)
	}
}

func vectorFile(t *testing.T, name string) string {
	return testutil.Tcprules(t, name)
}

func buildBinary(t *testing.T) string { return testutil.BuildCommand(t, progName) }
