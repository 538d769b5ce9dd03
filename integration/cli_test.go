package integration

// The command line as a person meets it: --help, usage errors, and the
// fatal lines about certificates and keys, from the real binaries.

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// helpCases: every program, every way it is asked for help, and words its
// help must hold (options and the variables the program reads).
var helpCases = []struct {
	prog, arg string
	mentions  []string
}{
	{"sslserver", "--help", []string{"-c n", "-h, -H", "-n, -N", "CERTFILE", "KEYFILE", "SSL_UID", "SSL_PREFORK", "MAXCONIP", "DNSCACHEIP", "PROXYFROM", "REUSEPORT", "LISTEN_FDS", "NOTIFY_SOCKET", "--help"}},
	{"sslclient", "--help", []string{"-T x+y", "-h, -H", "-y, -Y", "CAFILE", "CADIR", "CERTFILE", "SSL_CHROOT", "--help"}},
	{"sslrules", "--help", []string{"rules.tmp", "-h, --help"}},
	{"sslrules", "-h", []string{"rules.tmp"}},
	{"sslrulescheck", "--help", []string{"TCPREMOTEIP", "TCPREMOTEHOST", "TCPREMOTEINFO", "-h, --help"}},
	{"sslrulescheck", "-h", []string{"TCPREMOTEIP"}},
	{"ssltlsa", "--help", []string{"-a", "-n host", "-p port", "CERTFILE", "CERTFILE2:name", "-h, --help"}},
	{"ssltlsa", "-h", []string{"CERTFILE:name"}},
	{"ucspitls-smtpd", "--help", []string{"SSLCTLFD", "UCSPITLS"}},
	{"ucspitls-smtpd", "-h", []string{"SSLCTLFD"}},
	{"sslbench", "--help", []string{"sslbench run"}},
	{"sslbench", "-h", []string{"sslbench load"}},
}

// TestHelp: help goes to stdout, nothing to stderr, exit 0.
func TestHelp(t *testing.T) {
	for _, tc := range helpCases {
		t.Run(tc.prog+" "+tc.arg, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.prog, nil, tc.arg)
			if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "usage:") {
				t.Fatalf("exit %d, stderr %q, stdout %q", code, stderr, stdout)
			}
			for _, m := range tc.mentions {
				if !strings.Contains(stdout, m) {
					t.Errorf("the help does not mention %q", m)
				}
			}
		})
	}
}

// usageCases: command lines that are wrong, and the first line that says
// why. sslserver's and sslclient's -h is ucspi-ssl's PTR lookup, not
// help: alone it leaves the operands missing.
var usageCases = []struct {
	prog  string
	args  []string
	first string // regexp for the first line
}{
	{"sslserver", nil, `need host, port and program`},
	{"sslserver", []string{"-h"}, `need host, port and program`},
	{"sslserver", []string{"-k", "0", "25", "true"}, `unknown option -k`},
	{"sslserver", []string{"--verbose", "0", "25", "true"}, `unknown option "--verbose" \(the only long option is --help\)`},
	{"sslserver", []string{"-c", "x", "0", "25", "true"}, `option -c: "x" is not a positive number`},
	{"sslclient", nil, `need host, port and program`},
	{"sslclient", []string{"-h"}, `need host, port and program`},
	{"sslclient", []string{"-r", "h", "25", "true"}, `option -r: sslclient makes no IDENT lookups`},
	{"sslrules", []string{"a"}, `sslrules rules.cdb rules.tmp < rules.txt`},
	{"sslrulescheck", nil, `sslrulescheck rules.cdb`},
	{"ssltlsa", []string{"-p", "0"}, `option -p: bad port "0"`},
	{"ucspitls-smtpd", []string{"a", "b"}, `ucspitls-smtpd \[name\]`},
	{"sslbench", nil, `sslbench run\|ceiling\|load`},
	{"sslbench", []string{"frob"}, `unknown command "frob"`},
	{"sslbench", []string{"load", "-bogus"}, `flag provided but not defined: -bogus`},
}

// TestUsageErrors: exit 100, nothing on stdout, exactly two lines on
// stderr: what is wrong, prefixed "prog: usage: ", and where help is.
func TestUsageErrors(t *testing.T) {
	for _, tc := range usageCases {
		t.Run(tc.prog+" "+strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.prog, nil, tc.args...)
			want := regexp.MustCompile(`^` + tc.prog + `: usage: (.*)\n` + tc.prog + `: try "` + tc.prog + ` --help"\n$`)
			m := want.FindStringSubmatch(stderr)
			if code != 100 || stdout != "" || m == nil || !regexp.MustCompile(tc.first).MatchString(m[1]) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 100 and %q then the pointer to --help", code, stdout, stderr, tc.first)
			}
		})
	}
}

// TestKeyAndCertErrors: a bad certificate or key stops sslserver with one
// fatal line (exit 111) that names the variable and the file, and for a
// CERTFILE without a key says to set KEYFILE.
func TestKeyAndCertErrors(t *testing.T) {
	needRoot(t)
	c, other := newCert(t, keyECDSA), newCert(t, keyRSA)
	dir := t.TempDir()
	garbage := writeFile(t, filepath.Join(dir, "garbage.pem"), []byte("not a certificate\n"), 0o644)
	missing := filepath.Join(dir, "missing.key")
	q := regexp.QuoteMeta
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"CERTFILE without a key, KEYFILE unset", []string{"CERTFILE=" + c.certPath, "KEYFILE="},
			`CERTFILE=` + q(c.certPath) + ` holds no private key and KEYFILE is not set: set KEYFILE to the key's file`},
		{"garbage CERTFILE", []string{"CERTFILE=" + garbage},
			`CERTFILE=` + q(garbage) + `: keys: certificate file: no certificate \(want PEM CERTIFICATE blocks\)`},
		{"KEYFILE without a key", []string{"KEYFILE=" + c.certPath},
			`unable to load private key: KEYFILE=` + q(c.certPath) + `: keys: no private key`},
		{"KEYFILE missing", []string{"KEYFILE=" + missing},
			`unable to load private key: unable to read private key: open ` + q(missing) + `: no such file or directory`},
		{"KEYFILE of another certificate", []string{"KEYFILE=" + other.keyPath},
			`unable to load private key: private key KEYFILE=` + q(other.keyPath) + ` does not match its certificate`},
		{"SNI certificate without a key", []string{"CERTFILE:mail.test=" + c.certPath},
			`CERTFILE:mail.test=` + q(c.certPath) + ` holds no private key and KEYFILE:mail.test is not set: set KEYFILE:mail.test to the key's file`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := append(serverEnv(t, serverConfig{cert: c}), tc.env...)
			code, _, stderr := runCLI(t, "sslserver", env, "-1", "127.0.0.1", "0", "/bin/true")
			want := regexp.MustCompile(`^sslserver: fatal: ` + tc.want + `\n$`)
			if code != 111 || !want.MatchString(stderr) {
				t.Errorf("exit %d, stderr %q; want 111 and %s", code, stderr, want)
			}
		})
	}
}

// runCLI runs a project binary to its end (at most 20 s) with env (nil:
// the test's own) and returns its exit code and output.
func runCLI(t *testing.T, prog string, env []string, args ...string) (int, string, string) {
	t.Helper()
	return runCommand(t, binary(t, prog), env, args...)
}

// runCommand is runCLI for any program, given by its path.
func runCommand(t *testing.T, path string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := runBounded(t, cmd, 20*time.Second)
	return exitCode(err), stdout.String(), stderr.String()
}
