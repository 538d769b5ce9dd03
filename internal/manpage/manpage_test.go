package manpage

import (
	"reflect"
	"strings"
	"testing"
)

func TestUnlink(t *testing.T) {
	for in, want := range map[string]string{
		"see [Bugs](#bugs).":                        "see Bugs.",
		"[sslclient(1)](sslclient.md)":              "sslclient(1)",
		"[sslclient.md](sslclient.md#wrappers)":     "sslclient(1)",
		"the [protocol](protocol.md)":               "the protocol (protocol.md)",
		"[security.md](security.md#x)":              "security.md",
		"[go](https://go.dev/doc)":                  "go <https://go.dev/doc>",
		"[ -c limit ] [ args ]":                     "[ -c limit ] [ args ]",
		"the [wrappers](sslclient.md#wrappers) too": "the wrappers (sslclient(1)) too",
	} {
		if got := string(unlink([]byte(in), Pages)); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// TestTableRows reads go-md2man's rows back, text blocks included.
func TestTableRows(t *testing.T) {
	rows := tableRows(strings.Split("a\tb\n\\fBx\\fR\tT{\nlong\ntext\nT}\nT{\nleft\nT}\tright", "\n"))
	want := [][]string{{"a", "b"}, {`\fBx\fR`, "long\ntext"}, {"left", "right"}}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows %q, want %q", rows, want)
	}
}

// TestColumnWidths: a table that fits keeps its widths; one that does not
// fits lineWidth, keeps its narrow column, and no column is narrower than
// its longest word.
func TestColumnWidths(t *testing.T) {
	if w := columnWidths([][]string{{"ab", "cde"}}); !reflect.DeepEqual(w, []int{2, 3}) {
		t.Errorf("fitting table: %v", w)
	}
	long := strings.Repeat("word ", 40)
	w := columnWidths([][]string{{"-c n", long, "unbreakable_word_of_24ch", long}})
	sum := 0
	for _, x := range w {
		sum += x + 3
	}
	if sum+1 > lineWidth || w[0] != 4 || w[2] < 24 {
		t.Errorf("widths %v take %d of %d", w, sum+1, lineWidth)
	}
}

func TestRenderNeedsTitle(t *testing.T) {
	if _, _, err := Render([]byte("# Not a page\n\n## Name\n"), Pages); err == nil {
		t.Error("a manual without \"# name(section)\" rendered")
	}
	p, roff, err := Render([]byte("# sslrules(1)\n\n## Name\n\n`sslrules` — compile\n\n## Synopsis\n\nx\n\n## Description\n\ny\n"), Pages)
	if err != nil || p != (Page{"sslrules", "1"}) || !strings.Contains(string(roff), "\n.SH NAME\nsslrules \\- compile\n") ||
		!strings.Contains(string(roff), `.TH SSLRULES 1 "" "sslserver" "sslserver manual"`) {
		t.Errorf("%v %v:\n%s", p, err, roff)
	}
}
