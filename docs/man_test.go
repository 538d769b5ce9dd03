package docs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucspi-tls/sslserver/internal/manpage"
	"github.com/ucspi-tls/sslserver/internal/testutil"
)

// TestManPages renders each manual as "make man" does and reads it with
// man(1) at 80 columns with groff's warnings on: a warning (a table too
// wide, a line that cannot be broken) fails the test, and so does a page
// without its NAME or a synopsis.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	var pages []manpage.Page
	for file, want := range manpage.Pages {
		md, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		page, roff, err := manpage.Render(md, manpage.Pages)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if page != want {
			t.Errorf("%s renders as %s, want %s", file, page.Ref(), want.Ref())
		}
		writePage(t, dir, page, roff)
		pages = append(pages, page)
	}
	for alias, to := range manpage.Aliases {
		writePage(t, dir, alias, manpage.Alias(to))
		pages = append(pages, alias)
	}
	for _, p := range pages {
		text := readManPage(t, dir, p)
		if !strings.Contains(text, "NAME\n") || !strings.Contains(text, "SYNOPSIS\n") {
			t.Errorf("%s: no NAME or SYNOPSIS section:\n%.400s", p.Ref(), text)
		}
	}
}

func writePage(t *testing.T, dir string, p manpage.Page, data []byte) {
	t.Helper()
	path := filepath.Join(dir, p.File())
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// readManPage formats the page p under the man directory dir as a reader
// at an 80-column terminal sees it, and fails t on any warning of man or
// groff. It runs in dir, where the alias pages' ".so man1/..." resolve.
func readManPage(t *testing.T, dir string, p manpage.Page) string {
	t.Helper()
	man := testutil.NeedTool(t, "man")
	cmd := exec.Command(man, "--warnings=all", "-l", p.File())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat", "LC_ALL=C.UTF-8")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("man -l %s: %v\n%s", p.File(), err, stderr.String())
	}
	return stdout.String()
}
