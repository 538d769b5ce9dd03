package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMain lets the driver start this test binary as the ceiling server,
// as it starts sslbench itself: "bench.test ceiling ...".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "ceiling" {
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestParseVariant(t *testing.T) {
	v, err := parseVariant("  sslserver   -K 8 ")
	if err != nil {
		t.Fatal(err)
	}
	if v.name != "sslserver -K 8" || v.kind != kinds["sslserver"] || !slices.Equal(v.extra, []string{"-K", "8"}) {
		t.Fatalf("parsed %+v", v)
	}
	v, err = parseVariant("sslserver SSL_PREFORK=16 -v lower=case")
	if err != nil || !slices.Equal(v.env, []string{"SSL_PREFORK=16"}) || !slices.Equal(v.extra, []string{"-v", "lower=case"}) {
		t.Fatalf("parsed %+v, %v: want SSL_PREFORK=16 in the environment", v, err)
	}
	v, err = parseVariant("stunnel4 TIMEOUTclose=0")
	if err != nil || v.env != nil || !slices.Equal(v.extra, []string{"TIMEOUTclose=0"}) {
		t.Fatalf("parsed %+v, %v: want a configuration line", v, err)
	}
	for _, bad := range []string{"", "   ", "nginx -t"} {
		if _, err := parseVariant(bad); err == nil {
			t.Errorf("parseVariant(%q) succeeded", bad)
		}
	}
	for _, name := range Variants {
		if _, err := parseVariant(name); err != nil {
			t.Errorf("default variant %q: %v", name, err)
		}
	}
}

// TestVariantFlags: a variant's extra flags reach its command line, as
// options, before the address and the program.
func TestVariantFlags(t *testing.T) {
	st := &setup{dir: t.TempDir(), addr: "127.0.0.1:4433", port: 4433, cert: &certFiles{Cert: "/c.pem", Key: "/k.pem"},
		program: []string{"/bin/true"}, maxConn: 10}
	tl := &tools{bin: "/opt/bin", self: "/opt/bin/sslbench", uid: 65534, gid: 65534}
	cases := map[string][]string{
		"sslserver -K 8":          {"/opt/bin/sslserver", "-H", "-R", "-l", "localhost", "-D", "-c", "10", "-b", "1024", "-K", "8", "127.0.0.1", "4433", "/bin/true"},
		"tcpserver -v":            {"tcpserver", "-H", "-R", "-l", "localhost", "-D", "-c", "10", "-b", "1024", "-v", "127.0.0.1", "4433", "/bin/true"},
		"ceiling":                 {"/opt/bin/sslbench", "ceiling", "-cert", "/c.pem", "-key", "/k.pem", "-addr", "127.0.0.1:4433", "--", "/bin/true"},
		"sslserver SSL_PREFORK=0": {"/opt/bin/sslserver", "-H", "-R", "-l", "localhost", "-D", "-c", "10", "-b", "1024", "127.0.0.1", "4433", "/bin/true"},
	}
	for name, want := range cases {
		v, err := parseVariant(name)
		if err != nil {
			t.Fatal(err)
		}
		cmd, err := v.command(tl, st)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cmd.Args, want) {
			t.Errorf("%s: %q\nwant %q", name, cmd.Args, want)
		}
		if env := strings.Join(cmd.Env, "\n"); strings.Contains(name, "SSL_PREFORK=0") != strings.Contains(env, "SSL_PREFORK=0") {
			t.Errorf("%s: environment %q", name, cmd.Env)
		}
	}
}

func TestStunnelConfig(t *testing.T) {
	st := &setup{dir: t.TempDir(), addr: "127.0.0.1:4433", port: 4433, cert: &certFiles{Cert: "/c.pem", Key: "/k.pem"},
		program: []string{"/bin/smtpd", "mx"}, starttls: true}
	v, _ := parseVariant("stunnel4 TIMEOUTclose=0")
	cmd, err := v.command(&tools{}, st)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(cmd.Args[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"foreground = yes", "accept = 127.0.0.1:4433", "exec = /bin/smtpd", "execArgs = /bin/smtpd mx", "protocol = smtp", "TIMEOUTclose = 0"} {
		if !strings.Contains(string(conf), line+"\n") {
			t.Errorf("stunnel configuration lacks %q:\n%s", line, conf)
		}
	}
}

// TestServes: socat has no STARTTLS and no X25519, tcpserver serves the
// SMTP program in plaintext and sits out what only TLS changes.
func TestServes(t *testing.T) {
	plain := &cell{prog: progTrue}
	smtp := &cell{prog: progSMTP}
	x25519 := &cell{prog: progTrue, x25519: true}
	rsa := &cell{prog: progTrue, key: rsa2048}
	want := map[string][4]bool{
		"sslserver": {true, true, true, true},
		"ceiling":   {true, true, true, true},
		"stunnel4":  {true, true, true, true},
		"socat":     {true, false, false, true},
		"tcpserver": {true, true, false, false},
	}
	for name, w := range want {
		v, _ := parseVariant(name)
		got := [4]bool{v.serves(plain), v.serves(smtp), v.serves(x25519), v.serves(rsa)}
		if got != w {
			t.Errorf("%s serves plain, SMTP, X25519, RSA: %v, want %v", name, got, w)
		}
	}
}

func TestMedian(t *testing.T) {
	cases := []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}}
	for _, c := range cases {
		if got, ok := median(c.in); !ok || got != c.want {
			t.Errorf("median(%v) = %v, %v", c.in, got, ok)
		}
	}
	if _, ok := median(nil); ok {
		t.Error("median of nothing")
	}
}

func TestReportTables(t *testing.T) {
	c := &cell{name: "rate x", measure: mRate}
	r := newRow(c, c.metrics()[0])
	r.samples["stunnel4"] = []float64{200, 100, 300}
	r.samples["ceiling"] = []float64{400}
	r.samples["sslserver"] = []float64{50, 60}
	r.na["socat"] = true
	r.failed["tcpserver"] = "it broke"
	rep := &report{variants: []string{"sslserver", "ceiling", "stunnel4", "socat", "tcpserver"}, rows: []*row{r},
		rounds: 3, duration: time.Second, command: "sslbench run", started: time.Now()}
	md := rep.markdown()
	for _, want := range []string{
		"| rate x | sessions/s | 55.0 | 400 | 200~ | n/a | failed |",
		"| rate x | 0.28 / 0.14 | 2.00 / 1.00 | 1.00 / 0.50 | - / - | - / - |",
		"- machine: ", "- kernel: ", "command: `sslbench run`",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// TestTreePSS reads the memory of a real process tree: a shell and the
// sleep it waits for.
func TestTreePSS(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "sleep 30 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	n, err := stableCount(cmd.Process.Pid)
	if err != nil || n != 2 {
		t.Fatalf("tree of sh: %d processes, %v; want sh and sleep", n, err)
	}
	m, err := treePSS(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if m.Procs != 2 || m.KiB <= 0 || m.ByName["sleep"] <= 0 || m.ByName["sh"] <= 0 {
		t.Fatalf("memory %+v", m)
	}
}

// TestRunAgainstTheCeiling runs the driver for real, quick, with the
// ceiling alone: one rate round and one memory round.
func TestRunAgainstTheCeiling(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers and clients for a few seconds")
	}
	cfg := &config{quick: true, rounds: 1, duration: 300 * time.Millisecond, servers: []string{"ceiling"},
		cells: "rate /bin/true|memory", bin: t.TempDir(), command: "go test"}
	var log bytes.Buffer
	md, err := run(context.Background(), cfg, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	for _, want := range []string{"| rate /bin/true, 8 clients | sessions/s | ", "| memory, 20 idle sessions, per session | KiB | ", "| rate /bin/true, 8 clients | - / 1.00 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s\n%s", want, md, log.String())
		}
	}
	if strings.Contains(md, "failed") {
		t.Errorf("a cell failed:\n%s\n%s", md, log.String())
	}
}
