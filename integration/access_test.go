package integration

// Access rules: sslserver -x, -X and -y with cdbs compiled in the test
// by the project's sslrules, and clients from several loopback
// addresses. Each case is a list of steps: replace a cdb, then connect
// from an address and expect a deny, a drop with a warning, or a session
// whose program sees the given environment.

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

type ruleStep struct {
	// Before connecting, replace cdb ("x" or "y") with one compiled
	// from source, or with the raw bytes garbage.
	cdb     string
	source  string
	garbage []byte

	from string // then connect from this address ("": no connection)

	deny   bool              // dropped with a "deny" line
	drop   string            // dropped with a warning matching this, after "unable to read rules: "
	env    map[string]string // otherwise served: the program sees these (SSLREMOTEIP defaults to from)
	absent []string          // and not these (names, or prefixes ending in "*")
}

type ruleCase struct {
	name  string
	flags []string // {x} and {y} stand for the cdb paths
	steps []ruleStep
}

// A garbage cdb: a full header whose every hash table lies far beyond
// the end of the file.
var badHeader = []byte(strings.Repeat("\xff", 2048))

var ruleCases = []ruleCase{
	{name: "deny by address", flags: []string{"-x", "{x}"}, steps: []ruleStep{
		{cdb: "x", source: "127.0.0.2:deny\n"},
		{from: "127.0.0.2", deny: true},
		{from: "127.0.0.1", env: map[string]string{"PROTO": "SSL"}},
		{from: "127.0.0.2", deny: true},
	}},
	{name: "allow with variables", flags: []string{"-x", "{x}"}, steps: []ruleStep{
		// A later assignment wins; a rule overrides a standard variable
		// (PROTO) but neither the fd variables nor the server's secrets.
		{cdb: "x", source: `127.:allow,RELAYCLIENT="",GREETING="first",GREETING="a b",PROTO="X",` +
			`SSLCTLFD="0",SSLREADFD="7",SSLWRITEFD="1",MAXCONIP="9",KEYFILE="/etc/shadow",CERTFILE=|/k|` + "\n"},
		{from: "127.0.0.1", env: map[string]string{"RELAYCLIENT": "", "GREETING": "a b", "PROTO": "X",
			"SSLCTLFD": "3", "SSLREADFD": "4", "SSLWRITEFD": "5"},
			absent: []string{"MAXCONIP", "KEYFILE", "CERTFILE"}},
		{from: "127.0.0.9", env: map[string]string{"GREETING": "a b", "SSLREMOTEIP": "127.0.0.9"}},
	}},
	{name: "replaced between connections", flags: []string{"-x", "{x}"}, steps: []ruleStep{
		{cdb: "x", source: "127.0.0.1:allow,RULES=\"one\"\n", from: "127.0.0.1", env: map[string]string{"RULES": "one"}},
		{cdb: "x", source: "127.0.0.1:allow,RULES=\"two\"\n", from: "127.0.0.1", env: map[string]string{"RULES": "two"}},
		{cdb: "x", source: "127.0.0.1:deny\n", from: "127.0.0.1", deny: true},
		{cdb: "x", source: "127.0.0.1:allow\n", from: "127.0.0.1", absent: []string{"RULES"}},
	}},
	{name: "missing cdb", flags: []string{"-x", "{x}"}, steps: []ruleStep{
		{from: "127.0.0.1", drop: `.*no such file or directory`},
		{cdb: "x", source: "127.0.0.1:allow,RULES=\"now\"\n", from: "127.0.0.1", env: map[string]string{"RULES": "now"}},
	}},
	{name: "missing cdb with -X", flags: []string{"-X", "-x", "{x}"}, steps: []ruleStep{
		{from: "127.0.0.1", absent: []string{"RULES"}},
		{cdb: "x", source: "127.0.0.1:deny\n", from: "127.0.0.1", deny: true},
	}},
	{name: "malformed cdb", flags: []string{"-x", "{x}"}, steps: []ruleStep{
		{cdb: "x", garbage: []byte("this is not a cdb\n"), from: "127.0.0.1", drop: `.*malformed cdb`},
		{cdb: "x", garbage: badHeader, from: "127.0.0.1", drop: `.*malformed cdb`},
		{cdb: "x", source: "127.0.0.1:allow,FIXED=\"yes\"\n", from: "127.0.0.1", env: map[string]string{"FIXED": "yes"}},
	}},
	{name: "malformed cdb with -X", flags: []string{"-X", "-x", "{x}"}, steps: []ruleStep{
		{cdb: "x", garbage: []byte("garbage"), from: "127.0.0.1", drop: `.*malformed cdb`},
	}},
	{name: "-y decides before -x", flags: []string{"-y", "{y}", "-x", "{x}"}, steps: []ruleStep{
		{cdb: "y", source: "127.0.0.2:deny\n127.0.0.3:allow,FROM=\"y\"\n"},
		{cdb: "x", source: "127.0.0.2:allow,FROM=\"x\"\n127.0.0.3:deny\n127.0.0.1:allow,FROM=\"x\"\n"},
		{from: "127.0.0.2", deny: true},
		{from: "127.0.0.3", env: map[string]string{"FROM": "y"}},
		{from: "127.0.0.1", env: map[string]string{"FROM": "x"}},
	}},
}

func TestRules(t *testing.T) {
	for _, tc := range ruleCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cdbs := map[string]string{"x": filepath.Join(dir, "rules.cdb"), "y": filepath.Join(dir, "iprules.cdb")}
			flags := make([]string, len(tc.flags))
			for i, f := range tc.flags {
				flags[i] = strings.NewReplacer("{x}", cdbs["x"], "{y}", cdbs["y"]).Replace(f)
			}
			s := startServer(t, serverConfig{flags: flags, role: "env"})
			for i, step := range tc.steps {
				if step.cdb != "" {
					writeCDB(t, cdbs[step.cdb], step)
				}
				if step.from != "" {
					t.Logf("step %d: connecting from %s", i, step.from)
					s.ruleStep(t, step)
				}
			}
			s.waitChildren(t)
		})
	}
}

// writeCDB replaces a cdb: garbage is written in place, source is
// compiled by sslrules, which renames its new file over the old one.
func writeCDB(t testing.TB, path string, step ruleStep) {
	t.Helper()
	if step.garbage != nil {
		if err := os.WriteFile(path, step.garbage, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	compileRules(t, path, step.source)
}

// compileRules runs sslrules path path.tmp < source.
func compileRules(t testing.TB, path, source string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t, "sslrules"), path, path+".tmp")
	cmd.Stdin = strings.NewReader(source)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sslrules %s < %q: %v\n%s", path, source, err, out)
	}
}

func (s *server) ruleStep(t testing.TB, step ruleStep) {
	t.Helper()
	before := s.countLog(pidLines(step.from))
	switch {
	case step.deny:
		s.expectDeny(t, step.from)
	case step.drop != "":
		s.expectRulesDrop(t, step.from, step.drop)
	default:
		s.expectServed(t, step)
		return
	}
	if after := s.countLog(pidLines(step.from)); after != before {
		t.Errorf("a session was started for the dropped client from %s", step.from)
	}
	s.waitChildren(t)
}

// expectDeny: the client is dropped with "deny 0 local remote", no
// worker or program is started, and the connection is closed.
func (s *server) expectDeny(t testing.TB, from string) {
	t.Helper()
	c := s.dialFrom(t, from)
	deny := regexp.MustCompile(`^sslserver: deny 0 :127\.0\.0\.1:` + strconv.Itoa(s.port) + ` :` +
		regexp.QuoteMeta(from) + `::` + strconv.Itoa(localPort(c)) + `$`)
	expectClosed(t, c)
	s.waitSeq(t, deny, statusLine)
}

// expectRulesDrop: the client is dropped with a warning naming the
// problem with the rules.
func (s *server) expectRulesDrop(t testing.TB, from, problem string) {
	t.Helper()
	warn := regexp.MustCompile(`^sslserver: warning: dropping connection from ` + regexp.QuoteMeta(from) +
		`, unable to read rules: ` + problem)
	n := s.countLog(warn)
	c := s.dialFrom(t, from)
	expectClosed(t, c)
	s.waitCount(t, warn, n+1)
	s.waitSeq(t, warn, statusLine)
}

// expectServed runs one session of the env role and checks what the
// program saw.
func (s *server) expectServed(t testing.TB, step ruleStep) {
	t.Helper()
	raw := s.dialFrom(t, step.from)
	tc := s.startTLS(t, raw, nil)
	pid := s.sessionPIDFrom(t, step.from, localPort(raw))
	out, err := io.ReadAll(tc)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("reading the environment: %v", err)
	}
	if status := s.waitEnd(t, pid); status != 0 {
		t.Errorf("session %d ended with status %d, want 0", pid, status)
	}
	s.waitSeq(t, endLine(pid), statusLine)
	got := parseEnvDump(t, string(out))
	want := map[string]string{"SSLREMOTEIP": step.from}
	for k, v := range step.env {
		want[k] = v
	}
	checkVars(t, "environment", got, want)
	checkAbsent(t, got, step.absent)
}
