package supervisor

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseHandleArgs(t *testing.T) {
	var checked []string
	check := func(args []string) error {
		checked = args
		if len(args) > 0 && args[0] == "bad" {
			return errors.New("bad backend")
		}
		return nil
	}
	o, err := ParseHandleArgs("sslhandle", []string{"-f", "/var/lock/x", "-c", "3", "0", "443", "/run/a.sock", "proxy"}, check)
	if err != nil {
		t.Fatal(err)
	}
	if !o.SSLEnv || o.MaxConn != 3 || o.Host != "0" || o.Port != "443" ||
		!slices.Equal(o.Program, []string{"sslhandle", "/run/a.sock", "proxy"}) || !slices.Equal(checked, []string{"/run/a.sock", "proxy"}) {
		t.Errorf("parsed %+v, checked %q", o, checked)
	}
	if o, err := ParseHandleArgs("greet", []string{"-S", "0", "443"}, nil); err != nil || o.SSLEnv || !slices.Equal(o.Program, []string{"greet"}) {
		t.Errorf("-S, no handler arguments: %+v, %v", o, err)
	}
	for _, args := range [][]string{{"0"}, {"-f"}, {"0", "443", "bad"}} {
		if _, err := ParseHandleArgs("sslhandle", args, check); !errors.Is(err, ErrUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

func TestHandleHelpHasSSLServerOptions(t *testing.T) {
	for _, want := range []string{"usage: sslhandle", "-f file", "-x cdb", "CERTFILE", "Exit status"} {
		if !strings.Contains(HandleHelp, want) {
			t.Errorf("HandleHelp lacks %q", want)
		}
	}
}
