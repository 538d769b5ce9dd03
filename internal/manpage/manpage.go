// Package manpage turns the manuals in docs/ into man pages with
// go-md2man, and fixes what go-md2man leaves rough for man(1): the title
// line, section names, links and tables.
//
//	page, roff, err := manpage.Render(markdown, manpage.Pages)
//
// A manual starts with "# name(section)" and has "## Name", "## Synopsis"
// ... sections, so the same file reads well on GitHub and as a page.
package manpage

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"github.com/cpuguy83/go-md2man/v2/md2man"
)

// Pages are the documents that are man pages, by file name, with their
// page name and section; a link to one becomes a reference to the page.
var Pages = map[string]Page{
	"sslserver.md":     {"sslserver", "8"},
	"sslhandle.md":     {"sslhandle", "8"},
	"sslclient.md":     {"sslclient", "1"},
	"sslrules.md":      {"sslrules", "1"},
	"sslrulescheck.md": {"sslrulescheck", "1"},
	"ssltlsa.md":       {"ssltlsa", "1"},
}

// Aliases are pages that are another page: the scripts described in
// sslclient's page.
var Aliases = map[Page]Page{
	{"sslcat", "1"}:     {"sslclient", "1"},
	{"sslconnect", "1"}: {"sslclient", "1"},
	{"https@", "1"}:     {"sslclient", "1"},
}

// Page names a man page.
type Page struct{ Name, Section string }

// File is the page's path under a man directory: man8/sslserver.8.
func (p Page) File() string { return "man" + p.Section + "/" + p.Name + "." + p.Section }

// Ref is how text refers to the page: sslserver(8).
func (p Page) Ref() string { return p.Name + "(" + p.Section + ")" }

// Alias is the whole text of an alias page: a .so request, which man(1)
// follows to the page it names.
func Alias(to Page) []byte { return []byte(".so " + to.File() + "\n") }

// Render returns the roff page for a manual in markdown, and which page
// it is, from its first line.
func Render(md []byte, pages map[string]Page) (Page, []byte, error) {
	title := regexp.MustCompile(`^# ([a-z@]+)\(([1-8])\)\n`).FindSubmatch(md)
	if title == nil {
		return Page{}, nil, fmt.Errorf(`the first line is not "# name(section)"`)
	}
	p := Page{string(title[1]), string(title[2])}
	roff, err := polish(md2man.Render(unlink(md, pages)), p)
	if err == nil {
		err = check(roff)
	}
	return p, roff, err
}

var link = regexp.MustCompile(`\[([^\]\n]+)\]\(([^)\s]+)\)`)

// unlink rewrites markdown links as text: go-md2man would put each
// target on a line of its own, which breaks a table row. A link to
// another man page becomes a reference to it, one to another document
// names the file (installed beside the pages' documentation), one within
// the page or to a web page keeps its text (and the address).
func unlink(md []byte, pages map[string]Page) []byte {
	return link.ReplaceAllFunc(md, func(m []byte) []byte {
		sub := link.FindSubmatch(m)
		text, target := string(sub[1]), string(sub[2])
		file, _, _ := strings.Cut(target, "#")
		switch {
		case file == "":
			return []byte(text)
		case strings.Contains(file, "://"):
			return []byte(text + " <" + target + ">")
		}
		ref := file
		if p, ok := pages[file]; ok {
			ref = p.Ref()
		}
		if strings.Trim(text, "`") == file || strings.Trim(text, "`") == ref {
			return []byte(ref)
		}
		return []byte(text + " (" + ref + ")")
	})
}

// polish fixes go-md2man's output for man(1): a full .TH line, upper-case
// section names, "name \- what" under NAME (as whatis reads it), and
// tables whose long cells wrap.
func polish(roff []byte, p Page) ([]byte, error) {
	lines := strings.Split(string(roff), "\n")
	var out []string
	inName := false
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, ".TH "):
			l = fmt.Sprintf(`.TH %s %s "" "sslserver" "sslserver manual"`, strings.ToUpper(p.Name), p.Section)
		case strings.HasPrefix(l, ".SH "):
			l = strings.ToUpper(l)
			inName = l == ".SH NAME"
		case inName && !strings.HasPrefix(l, "."):
			l = strings.Replace(plain(l), " — ", ` \- `, 1)
		case l == ".TS":
			end := indexFrom(lines, i, ".TE")
			if end < 0 {
				return nil, fmt.Errorf("a table without its end")
			}
			out = append(out, table(lines[i+2:end])...)
			i = end
			continue
		}
		out = append(out, l)
	}
	return []byte(strings.Join(out, "\n")), nil
}

func indexFrom(lines []string, from int, want string) int {
	for i := from; i < len(lines); i++ {
		if lines[i] == want {
			return i
		}
	}
	return -1
}

// plain removes font changes.
func plain(s string) string {
	return regexp.MustCompile(`\\f[BIRP]`).ReplaceAllString(s, "")
}

// width is how many characters s takes on a terminal.
func width(s string) int {
	s = plain(s)
	s = regexp.MustCompile(`\\\(..|\\\[[a-z]+\]|\\[-e]`).ReplaceAllString(s, "x")
	s = strings.ReplaceAll(s, `\&`, "")
	return len([]rune(s))
}

// lineWidth is what a table may take, in characters, within an 80-column
// terminal: less the page's indent and margin.
const lineWidth = 80 - 7 - 2

// table rebuilds a go-md2man table (its format lines and rows) so that it
// fits lineWidth: short columns keep their width, the others share the
// rest, and their cells become text blocks that wrap.
func table(body []string) []string {
	for len(body) > 0 && !strings.HasSuffix(body[0], ".") {
		body = body[1:] // go-md2man's format lines, the last ending in "."
	}
	rows := tableRows(body[1:])
	widths := columnWidths(rows)
	var format []string
	for _, w := range widths {
		format = append(format, fmt.Sprintf("lw(%dn)", w))
	}
	out := []string{".TS", "allbox;", strings.Join(format, " ") + "."}
	for _, row := range rows {
		var cells []string
		for c, cell := range row {
			if c < len(widths) && width(cell) > widths[c] {
				// Ragged right: a narrow block cannot always be justified.
				cell = "T{\n.na\n" + cell + "\nT}"
			}
			cells = append(cells, cell)
		}
		out = append(out, strings.Join(cells, "\t"))
	}
	return append(out, ".TE")
}

// tableRows reads go-md2man's rows: cells split by tabs, a cell between
// "T{" and "T}" spanning lines.
func tableRows(lines []string) [][]string {
	var rows [][]string
	for i := 0; i < len(lines); {
		var row []string
		line := lines[i]
		i++
		for {
			cell, rest, more := strings.Cut(line, "\t")
			if cell == "T{" {
				var block []string
				for ; i < len(lines) && !strings.HasPrefix(lines[i], "T}"); i++ {
					block = append(block, lines[i])
				}
				row = append(row, strings.Join(block, "\n"))
				if i == len(lines) {
					break
				}
				rest, more = strings.CutPrefix(lines[i], "T}\t")
				i++
			} else {
				row = append(row, cell)
			}
			if !more {
				break
			}
			line = rest
		}
		rows = append(rows, row)
	}
	return rows
}

// narrow columns, at most this wide, keep their natural width; a column
// that wraps is at least minWide.
const narrow, minWide = 16, 10

// columnWidths gives each column its natural width when the table fits;
// otherwise narrow columns keep theirs and the rest share what is left in
// proportion to how much text each holds.
func columnWidths(rows [][]string) []int {
	var natural, text, floor []int
	for _, row := range rows {
		for c, cell := range row {
			if c == len(natural) {
				natural, text, floor = append(natural, 0), append(text, 0), append(floor, minWide)
			}
			natural[c] = max(natural[c], width(cell))
			text[c] += width(cell)
			for _, word := range strings.Fields(plain(cell)) {
				floor[c] = max(floor[c], width(word))
			}
		}
	}
	// Each column takes 3 more for its rules and gaps, the table one more.
	room := lineWidth - 3*len(natural) - 1
	avail, total, wideText := room, 0, 0
	for c, w := range natural {
		total += w
		if w > narrow {
			wideText += text[c]
		} else {
			avail -= w
		}
	}
	if total <= room {
		return natural
	}
	widths := make([]int, len(natural))
	sum := 0
	for c, w := range natural {
		widths[c] = w
		if w > narrow {
			widths[c] = max(floor[c], avail*text[c]/wideText)
		}
		sum += widths[c]
	}
	// The floors may overshoot: take it from the column with the most
	// above its floor.
	for ; sum > room; sum-- {
		c := mostSlack(widths, floor)
		if c < 0 {
			break // too wide whatever is done: man --warnings tells
		}
		widths[c]--
	}
	return widths
}

func mostSlack(widths, floor []int) int {
	best := -1
	for c := range widths {
		if widths[c] > floor[c] && (best < 0 || widths[c]-floor[c] > widths[best]-floor[best]) {
			best = c
		}
	}
	return best
}

// check is a quick test of a rendered page's shape, before man(1) sees
// it: the sections man(1) and whatis look for.
func check(roff []byte) error {
	for _, want := range []string{"\n.SH NAME\n", "\n.SH SYNOPSIS\n", "\n.SH DESCRIPTION\n"} {
		if !bytes.Contains(roff, []byte(want)) {
			return fmt.Errorf("no %q section", strings.TrimSpace(want))
		}
	}
	return nil
}
