package acl

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Var is one environment assignment of a rule.
type Var struct {
	Name, Value string
}

// Rule is one parsed line of tcprules source.
type Rule struct {
	Line    int    // 1-based line number in the source, 0 if not parsed from one
	Address string // as written: "1.2.3.4", "10.0.0.0/8", "=.example.com", ""
	Deny    bool
	Env     []Var // in the order written
}

// ParseError is a source line that is not a valid rule.
type ParseError struct {
	Line   int
	Text   string
	Reason error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("unable to parse line %d: %q: %v", e.Line, e.Text, e.Reason)
}

func (e *ParseError) Unwrap() error { return e.Reason }

// MaxLineLength bounds one source line; longer lines are a parse error.
const MaxLineLength = 1 << 20

var errLineTooLong = fmt.Errorf("line longer than %d bytes", MaxLineLength)

// ParseRules reads tcprules source: one rule per line, "#" at the start of
// a line begins a comment, blank lines are skipped. The first bad line ends
// parsing with a *ParseError.
func ParseRules(r io.Reader) ([]Rule, error) {
	br := bufio.NewReader(r)
	var rules []Rule
	for n := 1; ; n++ {
		line, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			if errors.Is(err, errLineTooLong) {
				return nil, &ParseError{Line: n, Text: line[:80] + "...", Reason: err}
			}
			return nil, fmt.Errorf("reading rules: %w", err)
		}
		if rule, ok, perr := ParseRule(line); perr != nil {
			return nil, &ParseError{Line: n, Text: trimLine(line), Reason: perr}
		} else if ok {
			rule.Line = n
			rules = append(rules, rule)
		}
		if err != nil {
			return rules, nil
		}
	}
}

// readLine returns the next line without its newline; io.EOF comes with
// the last (possibly empty) piece of input.
func readLine(br *bufio.Reader) (string, error) {
	var sb strings.Builder
	for {
		chunk, err := br.ReadSlice('\n')
		sb.Write(chunk)
		if sb.Len() > MaxLineLength {
			return sb.String(), errLineTooLong
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return strings.TrimSuffix(sb.String(), "\n"), err
		}
	}
}

// trimLine drops the trailing blanks the reference ignores (plus '\r', so
// files edited on Windows work).
func trimLine(line string) string {
	return strings.TrimRight(line, " \t\r\n")
}

// ParseRule parses one line of source. The bool is false for a comment or a
// blank line.
func ParseRule(line string) (Rule, bool, error) {
	if strings.HasPrefix(line, "#") {
		return Rule{}, false, nil
	}
	line = trimLine(line)
	if line == "" {
		return Rule{}, false, nil
	}
	if strings.IndexByte(line, 0) >= 0 {
		return Rule{}, false, errors.New("NUL byte in line")
	}
	// The address ends at the last colon before the first comma, so IPv6
	// addresses need no quoting and values may hold colons.
	head := line
	if i := strings.IndexByte(line, ','); i >= 0 {
		head = line[:i]
	}
	colon := strings.LastIndexByte(head, ':')
	if colon < 0 {
		return Rule{}, false, errors.New("no ':' between address and instruction")
	}
	rule := Rule{Address: line[:colon]}
	if _, err := addressKeys(rule.Address); err != nil {
		return Rule{}, false, err
	}
	if err := parseInstruction(&rule, line[colon+1:]); err != nil {
		return Rule{}, false, err
	}
	return rule, true, nil
}

// parseInstruction parses "allow" or "deny", then ",NAME=qvalueq" where q
// is any character, repeated.
func parseInstruction(rule *Rule, s string) error {
	switch {
	case strings.HasPrefix(s, "deny"):
		rule.Deny = true
		s = s[len("deny"):]
	case strings.HasPrefix(s, "allow"):
		s = s[len("allow"):]
	default:
		return errors.New("instruction must be allow or deny")
	}
	for s != "" {
		v, rest, err := parseAssignment(s)
		if err != nil {
			return err
		}
		rule.Env = append(rule.Env, v)
		s = rest
	}
	return nil
}

// parseAssignment parses one ",NAME=qvalueq" from the start of s.
func parseAssignment(s string) (Var, string, error) {
	if s[0] != ',' {
		return Var{}, "", fmt.Errorf("want ',' before %q", s)
	}
	name, rest, found := strings.Cut(s[1:], "=")
	switch {
	case !found:
		return Var{}, "", fmt.Errorf("no '=' in %q", s[1:])
	case name == "" || strings.Contains(name, ","):
		return Var{}, "", fmt.Errorf("bad variable name %q", name)
	case rest == "":
		return Var{}, "", fmt.Errorf("no value for %s", name)
	}
	quote := rest[0]
	value, rest, found := strings.Cut(rest[1:], string(quote))
	if !found {
		return Var{}, "", fmt.Errorf("value of %s has no closing %q", name, quote)
	}
	return Var{Name: name, Value: value}, rest, nil
}

// String returns the rule as a source line that parses back to it.
func (r Rule) String() string {
	instruction := "allow"
	if r.Deny {
		instruction = "deny"
	}
	var sb strings.Builder
	sb.WriteString(r.Address + ":" + instruction)
	for _, v := range r.Env {
		q := quoteFor(v.Value)
		sb.WriteString("," + v.Name + "=" + string(q) + v.Value + string(q))
	}
	return sb.String()
}

// quoteFor picks a delimiter that does not occur in value, preferring the
// usual double quote, and a non-blank one so it survives trimming.
func quoteFor(value string) byte {
	const preferred = "\"/'|"
	for i := range len(preferred) {
		if strings.IndexByte(value, preferred[i]) < 0 {
			return preferred[i]
		}
	}
	for c := 0x21; c < 0x100; c++ {
		if strings.IndexByte(value, byte(c)) < 0 {
			return byte(c)
		}
	}
	return '"'
}
