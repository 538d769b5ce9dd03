package getopt

import (
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"
)

type opts struct {
	v, n bool
	c    int
}

var set = Set[*opts]{
	Flags: map[byte]func(*opts){'v': func(o *opts) { o.v = true }, 'n': func(o *opts) { o.n = true }},
	Args: map[byte]func(*opts, string) error{'c': func(o *opts, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errors.New("not a number")
		}
		o.c = n
		return nil
	}},
}

func TestParse(t *testing.T) {
	cases := []struct {
		args     []string
		want     opts
		operands []string
		err      string
	}{
		{[]string{"-vn", "-c40", "h", "p"}, opts{v: true, n: true, c: 40}, []string{"h", "p"}, ""},
		{[]string{"-c", "7", "-v", "h"}, opts{v: true, c: 7}, []string{"h"}, ""},
		{[]string{"-vc", "3", "--", "-n"}, opts{v: true, c: 3}, []string{"-n"}, ""},
		{[]string{"-", "x"}, opts{}, []string{"-", "x"}, ""},
		{[]string{"h", "-v"}, opts{}, []string{"h", "-v"}, ""},
		{[]string{"-k"}, opts{}, nil, "unknown option -k"},
		{[]string{"-v", "--verbose"}, opts{}, nil, `unknown option "--verbose" (the only long option is --help)`},
		{[]string{"-vc"}, opts{v: true}, nil, "option -c needs an argument"},
		{[]string{"-c", "x"}, opts{}, nil, "option -c: not a number"},
	}
	for _, c := range cases {
		var o opts
		operands, err := set.Parse(&o, c.args)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%q: error %v, want %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil || o != c.want || !reflect.DeepEqual(operands, c.operands) {
			t.Errorf("%q: got %+v %q %v, want %+v %q", c.args, o, operands, err, c.want, c.operands)
		}
	}
}

// TestHelp: "--help" among the options asks for help; after "--" or
// among the operands it is an operand like any other.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-v", "--help", "h"}, {"-c", "3", "--help"}} {
		if _, err := set.Parse(&opts{}, args); !errors.Is(err, ErrHelp) {
			t.Errorf("%q: %v, want ErrHelp", args, err)
		}
	}
	for _, args := range [][]string{{"--", "--help"}, {"h", "--help"}} {
		if ops, err := set.Parse(&opts{}, args); err != nil || ops[len(ops)-1] != "--help" {
			t.Errorf("%q: %q %v, want --help as an operand", args, ops, err)
		}
	}
	if _, err := set.Parse(&opts{}, []string{"-c", "--help"}); errors.Is(err, ErrHelp) {
		t.Errorf(`"-c --help": --help is -c's argument, not a request for help`)
	}
}

func TestUnknownHook(t *testing.T) {
	s := set
	s.Unknown = func(c byte) error { return errors.New("no -" + string(c) + " here") }
	if _, err := s.Parse(&opts{}, []string{"-r"}); err == nil || err.Error() != "no -r here" {
		t.Errorf("Unknown hook not used: %v", err)
	}
}

func TestSeconds(t *testing.T) {
	var d time.Duration
	if err := Seconds(&d, "26", 1); err != nil || d != 26*time.Second {
		t.Errorf("26: %v %v", d, err)
	}
	for _, v := range []string{"0", "-1", "x", "", "2147484"} {
		if err := Seconds(&d, v, 1); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
	if err := Seconds(&d, "0", 0); err != nil || d != 0 {
		t.Errorf("0 with min 0: %v %v", d, err)
	}
}
