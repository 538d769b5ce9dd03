package supervisor

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/internal/getopt"
	"github.com/ucspi-tls/sslserver/internal/testutil"
)

func mustParse(t *testing.T, args ...string) *Options {
	t.Helper()
	o, err := ParseArgs(args)
	if err != nil {
		t.Fatalf("ParseArgs(%q): %v", args, err)
	}
	return o
}

// TestParseArgsDefaults checks the defaults of SPEC section 3's table.
func TestParseArgsDefaults(t *testing.T) {
	o := mustParse(t, "0", "465", "prog", "arg")
	want := &Options{
		Host: "0", Port: "465", Program: []string{"prog", "arg"},
		MaxConn: 40, Backlog: 20,
		RemoteLookup: true, Paranoid: false, Ident: false,
		IdentTimeout: 26 * time.Second, Handshake: 26 * time.Second, Idle: 3600 * time.Second,
		NoDelay: true, TCPVars: true, SSLEnv: false, Delayed: false,
		ClientCert: 'Z', Verbosity: Errors,
	}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", o, want)
	}
}

// TestParseArgsFlags sets every option without an argument against its
// default and reads back the field it should change.
func TestParseArgsFlags(t *testing.T) {
	cases := map[string]func(o *Options) bool{
		"-1": func(o *Options) bool { return o.PrintPort },
		"-3": func(o *Options) bool { return o.Passphrase },
		"-4": func(o *Options) bool { return o.Prefer == '4' },
		"-6": func(o *Options) bool { return o.Prefer == '6' },
		"-U": func(o *Options) bool { return o.FromEnvIDs },
		"-X": func(o *Options) bool { return o.RulesMissing },
		"-H": func(o *Options) bool { return !o.RemoteLookup },
		"-p": func(o *Options) bool { return o.Paranoid },
		"-r": func(o *Options) bool { return o.Ident },
		"-d": func(o *Options) bool { return !o.NoDelay },
		"-E": func(o *Options) bool { return !o.TCPVars },
		"-s": func(o *Options) bool { return o.SSLEnv },
		"-n": func(o *Options) bool { return o.Delayed },
		"-q": func(o *Options) bool { return o.Verbosity == Quiet },
		"-v": func(o *Options) bool { return o.Verbosity == Verbose },
		"-V": func(o *Options) bool { return o.Verbosity == Cipher },
		"-o": func(o *Options) bool { return reflect.DeepEqual(o, mustDefaults()) },
		"-O": func(o *Options) bool { return reflect.DeepEqual(o, mustDefaults()) },
		"-Z": func(o *Options) bool { return o.ClientCert == 'Z' },
	}
	for flag, ok := range cases {
		o := mustParse(t, flag, "0", "1", "prog")
		if !ok(o) {
			t.Errorf("%s: options %+v", flag, o)
		}
	}
}

// TestParseArgsClientNameUnderDelayedTLS: -z works under -n too (the
// worker waits for the supervisor's verdict on the name), in either
// order.
func TestParseArgsClientNameUnderDelayedTLS(t *testing.T) {
	for _, args := range [][]string{{"-n", "-z"}, {"-z", "-n"}, {"-nz"}} {
		o := mustParse(t, append(args, "0", "1", "prog")...)
		if !o.Delayed || o.ClientCert != 'z' {
			t.Errorf("%q: Delayed %v, ClientCert %q", args, o.Delayed, o.ClientCert)
		}
	}
}

// mustDefaults is what "0 1 prog" parses to.
func mustDefaults() *Options {
	o := defaultOptions()
	o.Host, o.Port, o.Program = "0", "1", []string{"prog"}
	return o
}

// TestParseArgsLastFlagWins: each pair undoes its partner, as run
// scripts rely on when they override an earlier setting.
func TestParseArgsLastFlagWins(t *testing.T) {
	pairs := [][2]string{{"-H", "-h"}, {"-p", "-P"}, {"-r", "-R"}, {"-d", "-D"}, {"-E", "-e"},
		{"-s", "-S"}, {"-n", "-N"}, {"-v", "-Q"}, {"-4", "-4"}}
	for _, p := range pairs {
		o := mustParse(t, p[0], p[1], "0", "1", "prog")
		want := mustParse(t, p[1], "0", "1", "prog")
		if !reflect.DeepEqual(o, want) {
			t.Errorf("%s %s: %+v, want %+v", p[0], p[1], o, want)
		}
	}
}

func TestParseArgsWithArguments(t *testing.T) {
	o := mustParse(t, "-c", "7", "-b", "99", "-x", "r.cdb", "-y", "ip.cdb", "-B", "220 hi\r\n",
		"-u", "1001", "-g", "1002", "-l", "mx.example.org", "-t", "5", "-T", "9", "-w", "60",
		"-I", "eth0", "::", "smtp", "prog")
	uid, gid := uint32(1001), uint32(1002)
	checks := map[string][2]any{
		"MaxConn":      {o.MaxConn, 7},
		"Backlog":      {o.Backlog, 99},
		"Rules":        {o.Rules, "r.cdb"},
		"IPRules":      {o.IPRules, "ip.cdb"},
		"Banner":       {o.Banner, "220 hi\r\n"},
		"UID":          {o.UID, &uid},
		"GID":          {o.GID, &gid},
		"LocalName":    {o.LocalName, "mx.example.org"},
		"IdentTimeout": {o.IdentTimeout, 5 * time.Second},
		"Handshake":    {o.Handshake, 9 * time.Second},
		"Idle":         {o.Idle, 60 * time.Second},
		"Interface":    {o.Interface, "eth0"},
		"Host":         {o.Host, "::"},
		"Port":         {o.Port, "smtp"},
	}
	for field, c := range checks {
		if !reflect.DeepEqual(c[0], c[1]) {
			t.Errorf("%s = %v, want %v", field, c[0], c[1])
		}
	}
}

func TestParseArgsClustering(t *testing.T) {
	cases := map[string][]string{
		"flags clustered":          {"-vn", "0", "1", "p"},
		"argument attached":        {"-c40", "-vn", "0", "1", "p"},
		"argument next":            {"-c", "40", "-v", "-n", "0", "1", "p"},
		"flags then arg attached":  {"-vnc40", "0", "1", "p"},
		"flags then arg next":      {"-vnc", "40", "0", "1", "p"},
		"double dash ends options": {"-vn", "-c", "40", "--", "0", "1", "p"},
	}
	for what, args := range cases {
		o, err := ParseArgs(args)
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		if o.Verbosity != Verbose || !o.Delayed || o.MaxConn != 40 || o.Host != "0" || o.Port != "1" ||
			!reflect.DeepEqual(o.Program, []string{"p"}) {
			t.Errorf("%s %q: %+v", what, args, o)
		}
	}
}

func TestParseArgsAttachedArgumentTakesTheRest(t *testing.T) {
	o := mustParse(t, "-Bvn", "0", "1", "p")
	if o.Banner != "vn" || o.Verbosity != Errors || o.Delayed {
		t.Fatalf("-Bvn: banner %q, verbosity %d, delayed %v", o.Banner, o.Verbosity, o.Delayed)
	}
}

func TestParseArgsStopsAtTheHost(t *testing.T) {
	o := mustParse(t, "-v", "0", "1", "prog", "-n", "--", "-c", "5")
	if o.Delayed || o.MaxConn != 40 {
		t.Errorf("options after the host were parsed: %+v", o)
	}
	if want := []string{"prog", "-n", "--", "-c", "5"}; !reflect.DeepEqual(o.Program, want) {
		t.Errorf("program = %q, want %q", o.Program, want)
	}
}

func TestParseArgsDoubleDashAllowsDashHost(t *testing.T) {
	o := mustParse(t, "--", "-weird", "1", "prog")
	if o.Host != "-weird" {
		t.Fatalf("host = %q", o.Host)
	}
}

func TestParseArgsUsageErrors(t *testing.T) {
	cases := map[string][]string{
		"nothing":              {},
		"host only":            {"0"},
		"no program":           {"0", "1"},
		"options only":         {"-v", "-n"},
		"empty program":        {"0", "1", ""},
		"missing -c argument":  {"-c"},
		"missing -x argument":  {"-x"},
		"missing clustered":    {"-vc"},
		"unknown option":       {"-k", "0", "1", "p"},
		"unknown in cluster":   {"-vkn", "0", "1", "p"},
		"-c zero":              {"-c", "0", "0", "1", "p"},
		"-c negative":          {"-c", "-1", "0", "1", "p"},
		"-c not a number":      {"-c", "forty", "0", "1", "p"},
		"-c trailing junk":     {"-c40x", "0", "1", "p"},
		"-c overflow":          {"-c", "99999999999999999999", "0", "1", "p"},
		"-b zero":              {"-b0", "0", "1", "p"},
		"-b not a number":      {"-b", "", "0", "1", "p"},
		"-t negative":          {"-t", "-1", "0", "1", "p"},
		"-T not a number":      {"-T", "1s", "0", "1", "p"},
		"-w too big":           {"-w", "99999999999", "0", "1", "p"},
		"-u name":              {"-u", "root", "0", "1", "p"},
		"-g negative":          {"-g", "-5", "0", "1", "p"},
		"-u too big":           {"-u", "4294967296", "0", "1", "p"},
		"dash dash then short": {"--", "0", "1"},
	}
	for what, args := range cases {
		_, err := ParseArgs(args)
		if !errors.Is(err, ErrUsage) {
			t.Errorf("%s %q: error %v, want ErrUsage", what, args, err)
		}
	}
}

func TestParseArgsErrorsNameTheOptionAndValue(t *testing.T) {
	_, err := ParseArgs([]string{"-c", "forty", "0", "1", "p"})
	if err == nil || !strings.Contains(err.Error(), "-c") || !strings.Contains(err.Error(), `"forty"`) {
		t.Fatalf("error %v does not name -c and quote the value", err)
	}
	_, err = ParseArgs([]string{"-k", "0", "1", "p"})
	if err == nil || !strings.Contains(err.Error(), "-k") {
		t.Fatalf("error %v does not name the unknown option", err)
	}
}

// TestParseArgsTimeoutBounds: a handshake or IDENT deadline of 0 would
// fail every session; the idle timeout may be 0; every accepted value
// fits the worker's 32-bit milliseconds.
func TestParseArgsTimeoutBounds(t *testing.T) {
	for _, bad := range [][]string{{"-t0"}, {"-T", "0"}, {"-T", "2147484"}, {"-w", "2147484"}} {
		if _, err := ParseArgs(append(bad, "0", "1", "p")); !errors.Is(err, ErrUsage) {
			t.Errorf("%q: error %v, want ErrUsage", bad, err)
		}
	}
	o := mustParse(t, "-w0", "-T", "2147483", "-t1", "0", "1", "p")
	if o.Idle != 0 || o.Handshake != 2147483*time.Second || o.IdentTimeout != time.Second {
		t.Fatalf("bounds: %+v", o)
	}
}

// TestTimeoutsSurviveTheWorkerConfig: whatever -T and -w accept must
// reach the TLS worker unchanged; WorkerConfig carries milliseconds in
// 32 bits, so a value that does not fit must be refused, not wrapped.
func TestTimeoutsSurviveTheWorkerConfig(t *testing.T) {
	for _, args := range [][]string{{"-w", "5000000"}, {"-T", "5000000"}, {"-w", "2147483647"}} {
		o, err := ParseArgs(append(args, "0", "1", "p"))
		if err != nil {
			continue // refusing is fine
		}
		c := (&Server{opt: o, tls: &tlsSetup{}}).workerConfig(&certSet{})
		if got := time.Duration(c.IdleMsec) * time.Millisecond; got != o.Idle {
			t.Errorf("%q: idle %v reaches the worker as %v", args, o.Idle, got)
		}
		if got := time.Duration(c.HandshakeMsec) * time.Millisecond; got != o.Handshake {
			t.Errorf("%q: handshake %v reaches the worker as %v", args, o.Handshake, got)
		}
	}
}

// TestHelpListsEveryOption: each letter the parser knows has its line in
// Help, so a new option cannot be added without its help.
func TestHelpListsEveryOption(t *testing.T) {
	testutil.HelpListsOptions(t, Help, flagOptions, argOptions)
	if _, err := ParseArgs([]string{"-v", "--help"}); !errors.Is(err, getopt.ErrHelp) {
		t.Errorf("--help: %v, want getopt.ErrHelp", err)
	}
	if o, err := ParseArgs([]string{"-h", "0", "25", "prog"}); err != nil || !o.RemoteLookup {
		t.Errorf("-h is ucspi-ssl's PTR lookup, not help: %+v %v", o, err)
	}
}
