// Package getopt parses command lines the way the UCSPI tools do:
// clustered flags (-vn), an option's argument attached (-c40) or in the
// next word (-c 40), "--" to end the options, and the operands after.
//
//	set := getopt.Set[*Options]{Flags: flags, Args: withArgs}
//	operands, err := set.Parse(o, os.Args[1:])
package getopt

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Set is what each option letter does to a T.
type Set[T any] struct {
	Flags map[byte]func(T)               // options without an argument
	Args  map[byte]func(T, string) error // options with one
	// Unknown, if set, gives the error for a letter neither map has, so a
	// program can say why an option it leaves out is missing.
	Unknown func(byte) error
}

// ErrHelp is what Parse returns for "--help" among the options: the
// caller prints its help to standard output and exits 0.
var ErrHelp = errors.New("help requested")

// PrintUsage writes a usage error as every program here does: one line,
// prefixed by the program's name, that says what is wrong, and one that
// points to --help.
func PrintUsage(w io.Writer, prog string, problem any) {
	fmt.Fprintf(w, "%s: %v\n%s: try \"%s --help\"\n", prog, problem, prog, prog)
}

// Parse applies the options in args to o and returns the operands.
func (s Set[T]) Parse(o T, args []string) ([]string, error) {
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--help" {
			return nil, ErrHelp
		}
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		if a[1] == '-' {
			return nil, fmt.Errorf("unknown option %q (the only long option is --help)", a)
		}
		n, err := s.cluster(o, a[1:], args[i+1:])
		if err != nil {
			return nil, err
		}
		i += n
	}
	return args[i:], nil
}

// cluster applies one "-abc" word and returns how many following words
// it took as an option argument.
func (s Set[T]) cluster(o T, c string, rest []string) (int, error) {
	for j := 0; j < len(c); j++ {
		if set, ok := s.Flags[c[j]]; ok {
			set(o)
			continue
		}
		set, ok := s.Args[c[j]]
		if !ok {
			return 0, s.unknown(c[j])
		}
		if j+1 < len(c) {
			return 0, apply(set, o, c[j], c[j+1:])
		}
		if len(rest) == 0 {
			return 0, fmt.Errorf("option -%c needs an argument", c[j])
		}
		return 1, apply(set, o, c[j], rest[0])
	}
	return 0, nil
}

func (s Set[T]) unknown(c byte) error {
	if s.Unknown != nil {
		return s.Unknown(c)
	}
	return fmt.Errorf("unknown option -%c", c)
}

func apply[T any](set func(T, string) error, o T, opt byte, v string) error {
	if err := set(o, v); err != nil {
		return fmt.Errorf("option -%c: %v", opt, err)
	}
	return nil
}

// MaxSeconds keeps every timeout, in milliseconds, inside the uint32 the
// confined processes' configurations carry, with room for margins: about
// 24 days.
const MaxSeconds = 1 << 31 / 1000

// Seconds reads a timeout option's argument: a whole number of seconds
// from min to MaxSeconds.
func Seconds(dst *time.Duration, v string, min uint64) error {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n < min || n > MaxSeconds {
		return fmt.Errorf("%q is not a number of seconds from %d to %d", v, min, MaxSeconds)
	}
	*dst = time.Duration(n) * time.Second
	return nil
}
