// Package docs holds the manuals; its tests check that they stay true:
// every relative link resolves, sslserver's and sslclient's option tables
// match their --help, and each manual renders as a man page without a
// warning.
package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/ucspi-tls/sslserver/client"
	"github.com/ucspi-tls/sslserver/supervisor"
)

// documents are the markdown files whose links are checked.
func documents(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manuals here: %v", err)
	}
	return append(files, filepath.Join("..", "README.md"))
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestRelativeLinks: every "](path)" and "](path#anchor)" outside code
// names a file that exists and, with an anchor, a heading of that file.
func TestRelativeLinks(t *testing.T) {
	for _, doc := range documents(t) {
		text := proseOf(t, doc)
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := doc
			if file != "" {
				path = filepath.Join(filepath.Dir(doc), file)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s: link %q: %v", doc, target, err)
				continue
			}
			if anchor != "" && !slices.Contains(anchors(t, path), anchor) {
				t.Errorf("%s: link %q: %s has no heading with that anchor", doc, target, path)
			}
		}
	}
}

// proseOf is a markdown file without its fenced code blocks and code
// spans, where "](" is not a link.
func proseOf(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fenced := false
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			out = append(out, regexp.MustCompile("`[^`]*`").ReplaceAllString(l, ""))
		}
	}
	return strings.Join(out, "\n")
}

// anchors lists the anchors GitHub makes for a file's headings: lower
// case, punctuation but "-" and "_" dropped, spaces as "-", and "-1",
// "-2"... for repeats.
func anchors(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	seen := map[string]int{}
	fenced := false
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(l, "#") {
			continue
		}
		a := githubAnchor(strings.TrimLeft(l, "# "))
		if n := seen[a]; n > 0 {
			out = append(out, a+"-"+string(rune('0'+n)))
		} else {
			out = append(out, a)
		}
		seen[a]++
	}
	return out
}

func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestAnchorsLikeGitHub pins githubAnchor to anchors GitHub gives.
func TestAnchorsLikeGitHub(t *testing.T) {
	for heading, want := range map[string]string{
		"Why root": "why-root",
		"Supervisor ↔ key holder (key holder fd 3)":       "supervisor--key-holder-key-holder-fd-3",
		"Not done yet, and residual risks":                "not-done-yet-and-residual-risks",
		"What `sslrules` refuses that `tcprules` accepts": "what-sslrules-refuses-that-tcprules-accepts",
		"UCSPI-TLS from the client side (`-y`)":           "ucspi-tls-from-the-client-side--y",
		"sslserver(8)":                                    "sslserver8",
	} {
		if got := githubAnchor(heading); got != want {
			t.Errorf("%q: %q, want %q", heading, got, want)
		}
	}
}

// TestOptionTables: each option that sslserver's and sslclient's --help
// lists has a row in the manual's option table, and each row is in the
// help.
func TestOptionTables(t *testing.T) {
	for _, tc := range []struct{ manual, help string }{
		{"sslserver.md", supervisor.Help},
		{"sslclient.md", client.Help},
	} {
		inHelp := helpOptions(tc.help)
		inTable := tableOptions(t, tc.manual)
		for o := range inHelp {
			if !inTable[o] {
				t.Errorf("%s: %s is in --help but not in the option table", tc.manual, o)
			}
		}
		for o := range inTable {
			if !inHelp[o] {
				t.Errorf("%s: %s is in the option table but not in --help", tc.manual, o)
			}
		}
		if len(inHelp) < 10 {
			t.Errorf("%s: only %d options found in the help", tc.manual, len(inHelp))
		}
	}
}

var optionWord = regexp.MustCompile(`^-(-help|[0-9A-Za-z])$`)

// helpOptions reads "  -c n   ..." and "  -h, -H   ..." lines.
func helpOptions(help string) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(help, "\n") {
		if !strings.HasPrefix(l, "  -") {
			continue
		}
		for _, w := range strings.Fields(strings.ReplaceAll(l, ",", " ")) {
			if !optionWord.MatchString(w) {
				break
			}
			out[w] = true
		}
	}
	return out
}

// tableOptions reads the first cell of each row of the table under
// "## Options": "`-c n`", "`-h`, `-H`".
func tableOptions(t *testing.T, manual string) map[string]bool {
	t.Helper()
	text := proseOrAll(t, manual)
	start := strings.Index(text, "\n## Options\n")
	if start < 0 {
		t.Fatalf("%s has no Options section", manual)
	}
	section := text[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	out := map[string]bool{}
	for _, l := range strings.Split(section, "\n") {
		cells := strings.Split(l, "|")
		if len(cells) < 3 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`-") {
			continue
		}
		for _, m := range regexp.MustCompile("`(-[^` ]+)[^`]*`").FindAllStringSubmatch(cells[1], -1) {
			out[m[1]] = true
		}
	}
	return out
}

func proseOrAll(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
