package docs

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ucspi-tls/sslserver/internal/manpage"
	"github.com/ucspi-tls/sslserver/internal/testutil"
)

// installed are the files "make install PREFIX=/usr/local" puts in place
// besides the documents (docs/*.md, README.md) and the examples
// (contrib/), with their modes.
var installed = map[string]fs.FileMode{
	"usr/local/bin/sslserver":                                            0o755,
	"usr/local/bin/sslhandle":                                            0o755,
	"usr/local/bin/sslclient":                                            0o755,
	"usr/local/bin/sslrules":                                             0o755,
	"usr/local/bin/sslrulescheck":                                        0o755,
	"usr/local/bin/ssltlsa":                                              0o755,
	"usr/local/bin/sslcat":                                               0o755,
	"usr/local/bin/sslconnect":                                           0o755,
	"usr/local/bin/https@":                                               0o755,
	"usr/local/share/man/man8/sslserver.8":                               0o644,
	"usr/local/share/man/man8/sslhandle.8":                               0o644,
	"usr/local/share/man/man1/sslclient.1":                               0o644,
	"usr/local/share/man/man1/sslrules.1":                                0o644,
	"usr/local/share/man/man1/sslrulescheck.1":                           0o644,
	"usr/local/share/man/man1/ssltlsa.1":                                 0o644,
	"usr/local/share/man/man1/sslcat.1":                                  0o644,
	"usr/local/share/man/man1/sslconnect.1":                              0o644,
	"usr/local/share/man/man1/https@.1":                                  0o644,
	"usr/local/lib/systemd/system/sslserver@.service":                    0o644,
	"usr/local/lib/systemd/system/sslserver@.socket":                     0o644,
	"usr/local/share/doc/sslserver/installed-files":                      0o644,
	"usr/local/share/doc/sslserver/README.md":                            0o644,
	"usr/local/share/doc/sslserver/examples/systemd/smtpd.conf":          0o644,
	"usr/local/share/doc/sslserver/examples/daemontools/qmail-smtpd/run": 0o755,
}

// TestInstall runs "make install" into a staging tree as a packager
// would, checks every file and mode, reads each man page as installed,
// checks the example scripts' syntax and the unit, then "make uninstall"
// and checks that no file is left.
func TestInstall(t *testing.T) {
	testutil.NeedTool(t, "make")
	if testing.Short() {
		t.Skip("builds every program")
	}
	dest := t.TempDir()
	runMake(t, "install", "DESTDIR="+dest, "PREFIX=/usr/local")
	want := expectedTree(t)
	got := filesUnder(t, dest)
	for path, mode := range want {
		if m, ok := got[path]; !ok {
			t.Errorf("%s was not installed", path)
		} else if mode != 0 && m != mode {
			t.Errorf("%s has mode %04o, want %04o", path, m, mode)
		}
	}
	for path := range got {
		if _, ok := want[path]; !ok {
			t.Errorf("%s was installed, and is not expected", path)
		}
	}
	checkInstalledPages(t, filepath.Join(dest, "usr/local/share/man"))
	checkExamples(t, dest)
	verifyUnit(t)

	runMake(t, "uninstall", "DESTDIR="+dest, "PREFIX=/usr/local")
	if left := filesUnder(t, dest); len(left) > 0 {
		t.Errorf("make uninstall left files: %v", sortedKeys(left))
	}
}

func runMake(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("make", append([]string{"-C", ".."}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// expectedTree: installed, plus each document and each example.
func expectedTree(t *testing.T) map[string]fs.FileMode {
	t.Helper()
	want := map[string]fs.FileMode{}
	for p, m := range installed {
		want[p] = m
	}
	docs, _ := filepath.Glob("*.md")
	for _, d := range docs {
		want["usr/local/share/doc/sslserver/"+d] = 0o644
	}
	err := filepath.WalkDir("../contrib", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if info.Mode()&0o100 != 0 {
			mode = 0o755
		}
		want["usr/local/share/doc/sslserver/examples/"+strings.TrimPrefix(path, "../contrib/")] = mode
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return want
}

// filesUnder maps each file under root (relative) to its permissions.
func filesUnder(t *testing.T, root string) map[string]fs.FileMode {
	t.Helper()
	out := map[string]fs.FileMode{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		out[rel] = info.Mode().Perm()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sortedKeys(m map[string]fs.FileMode) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// checkInstalledPages reads every installed page, aliases included, as
// man(1) shows it.
func checkInstalledPages(t *testing.T, mandir string) {
	t.Helper()
	for _, p := range manpage.Pages {
		readManPage(t, mandir, p)
	}
	for alias, to := range manpage.Aliases {
		if text := readManPage(t, mandir, alias); !strings.Contains(text, strings.ToUpper(to.Name)) {
			t.Errorf("man %s does not show %s", alias.Ref(), to.Ref())
		}
	}
}

// checkExamples: no placeholder is left, and the run scripts parse.
func checkExamples(t *testing.T, dest string) {
	t.Helper()
	examples := filepath.Join(dest, "usr/local/share/doc/sslserver/examples")
	unit := filepath.Join(dest, "usr/local/lib/systemd/system/sslserver@.service")
	paths := []string{unit, filepath.Join(dest, "usr/local/lib/systemd/system/sslserver@.socket")}
	filepath.WalkDir(examples, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			paths = append(paths, path)
		}
		return err
	})
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("@BINDIR@")) || bytes.Contains(b, []byte("@DOCDIR@")) {
			t.Errorf("%s still has a placeholder", p)
		}
		if filepath.Base(p) == "run" {
			if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
				t.Errorf("sh -n %s: %v\n%s", p, err, out)
			}
		}
	}
	if b, _ := os.ReadFile(unit); !bytes.Contains(b, []byte("ExecStart=/usr/local/bin/sslserver ")) {
		t.Errorf("the unit does not run /usr/local/bin/sslserver")
	}
}

// verifyUnit runs systemd-analyze verify on an instance of the units,
// the service and the socket with the example drop-in giving its port,
// as installed under a real prefix (it checks that ExecStart exists and
// the Documentation page opens). A warning fails the test.
func verifyUnit(t *testing.T) {
	t.Helper()
	analyze := testutil.NeedTool(t, "systemd-analyze")
	prefix := t.TempDir()
	runMake(t, "install", "PREFIX="+prefix)
	units := t.TempDir()
	for _, u := range []string{"service", "socket"} {
		unit := filepath.Join(prefix, "lib/systemd/system/sslserver@."+u)
		if err := os.Symlink(unit, filepath.Join(units, "sslserver@smtpd."+u)); err != nil {
			t.Fatal(err)
		}
	}
	dropIn := filepath.Join(prefix, "share/doc/sslserver/examples/systemd/sslserver@smtpd.socket.d")
	if err := os.Symlink(dropIn, filepath.Join(units, "sslserver@smtpd.socket.d")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", filepath.Join(units, "sslserver@smtpd.service"), filepath.Join(units, "sslserver@smtpd.socket"))
	cmd.Env = append(os.Environ(), "MANPATH="+filepath.Join(prefix, "share/man"), "SYSTEMD_LOG_LEVEL=notice")
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	runMake(t, "uninstall", "PREFIX="+prefix)
}
