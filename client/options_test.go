package client

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/internal/getopt"
	"github.com/ucspi-tls/sslserver/internal/testutil"
)

func TestParseArgsDefaults(t *testing.T) {
	o, err := ParseArgs([]string{"mx.example.org", "465", "prog", "-x", "arg"})
	if err != nil {
		t.Fatal(err)
	}
	want := defaultOptions()
	want.Host, want.Port, want.Program = "mx.example.org", "465", []string{"prog", "-x", "arg"}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("got %+v\nwant %+v", o, want)
	}
	if !o.Verify || !o.NameCheck || o.Delayed || o.SSLEnv || o.TCPVars {
		t.Errorf("defaults: verify %v name %v delayed %v -s %v -e %v", o.Verify, o.NameCheck, o.Delayed, o.SSLEnv, o.TCPVars)
	}
	if o.Connect != [2]time.Duration{2 * time.Second, 58 * time.Second} || o.Handshake() != time.Minute {
		t.Errorf("default -T %v, handshake %v; want 2s+58s and 1m", o.Connect, o.Handshake())
	}
}

func TestParseArgsOptions(t *testing.T) {
	o, err := ParseArgs([]string{"-yXNse3", "-T5+10", "-i", "127.0.0.2", "-p1025", "-l0", "-H", "-w", "30",
		"-a", "ca.pem", "-A/etc/ssl/certs", "-c", "c.pem", "-k", "k.pem", "-z", "ECDHE-RSA-AES128-GCM-SHA256",
		"-6dqv", "--", "-host-", "smtp", "prog"})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"delayed", o.Delayed, true}, {"verify", o.Verify, false}, {"name check", o.NameCheck, false},
		{"-s", o.SSLEnv, true}, {"-e", o.TCPVars, true}, {"-3", o.Passphrase, true},
		{"-T", o.Connect, [2]time.Duration{5 * time.Second, 10 * time.Second}},
		{"-i", o.LocalIP, "127.0.0.2"}, {"-p", o.LocalPort, "1025"}, {"-l", o.LocalName, "0"},
		{"-H", o.RemoteLookup, false}, {"-w", o.Idle, 30 * time.Second},
		{"-a", o.CAFile, "ca.pem"}, {"-A", o.CADir, "/etc/ssl/certs"}, {"-c", o.CertFile, "c.pem"},
		{"-k", o.KeyFile, "k.pem"}, {"-z", o.Ciphers, "ECDHE-RSA-AES128-GCM-SHA256"},
		{"-6", o.Family, byte('6')}, {"-d", o.NoDelay, false}, {"-v after -q", o.Verbosity, Verbose},
		{"host after --", o.Host, "-host-"}, {"service port", o.Port, "smtp"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseArgsLaterWins(t *testing.T) {
	o, err := ParseArgs([]string{"-X", "-x", "-N", "-n", "-y", "-Y", "-T", "7", "h", "1", "p"})
	if err != nil {
		t.Fatal(err)
	}
	if !o.Verify || !o.NameCheck || o.Delayed {
		t.Errorf("-X -x -N -n -y -Y: verify %v, name %v, delayed %v", o.Verify, o.NameCheck, o.Delayed)
	}
	if o.Connect != [2]time.Duration{7 * time.Second, 0} {
		t.Errorf("-T 7 gave %v, want 7s and no second pass", o.Connect)
	}
}

func TestParseArgsUsage(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"host", "443"},
		{"-Q"},
		{"-j", "h", "1", "p"},
		{"-r", "h", "1", "p"},
		{"-t", "5", "h", "1", "p"},
		{"-T", "h", "1", "p"},
		{"-T", "0+5", "h", "1", "p"},
		{"-T", "2+x", "h", "1", "p"},
		{"-T", "+5", "h", "1", "p"},
		{"-T", "2000000+2000000", "h", "1", "p"},
		{"-w", "-1", "h", "1", "p"},
		{"h", "0", "p"},
		{"h", "no-such-service-here", "p"},
		{"h", "70000", "p"},
		{"-p", "x y", "h", "1", "p"},
		{"", "1", "p"},
		{"h", "1", ""},
		{"-i"},
	} {
		if o, err := ParseArgs(args); !errors.Is(err, ErrUsage) {
			t.Errorf("ParseArgs(%q) = %+v, %v; want a usage error", args, o, err)
		}
	}
}

// TestHelpListsEveryOption: each letter the parser knows has its line in
// Help, so a new option cannot be added without its help.
func TestHelpListsEveryOption(t *testing.T) {
	testutil.HelpListsOptions(t, Help, flagOptions, argOptions)
	if _, err := ParseArgs([]string{"--help"}); !errors.Is(err, getopt.ErrHelp) {
		t.Errorf("--help: %v, want getopt.ErrHelp", err)
	}
}
