package testutil

import (
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
