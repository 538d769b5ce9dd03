package bench

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// Variants is the default line-up, in the order each round visits them.
// A variant is one line: its first word picks how the server is started
// (a key of kinds), words of the form NAME=value go into its environment
// and the others are extra flags for it, so that "sslserver -w 60" is
// sslserver with -w 60 added to its command line, and "sslserver
// SSL_PREFORK=0" is sslserver starting a worker per connection on
// demand instead of keeping four ready; "sslserver
// SSL_WORKER_SESSIONS=1000" lets a worker serve sessions one after
// another (the weaker isolation the targets of its fast path are set
// for). For stunnel4 every extra word is a line of its service's
// configuration ("stunnel4 TIMEOUTclose=0").
var Variants = []string{
	"sslserver",
	"sslserver SSL_PREFORK=0",
	"sslserver SSL_WORKER_SESSIONS=1000",
	"sslhandle",
	"ceiling",
	"stunnel4",
	"socat",
	"tcpserver",
	"hitch",
}

// The variants every other one is compared with.
const (
	refPeer    = "stunnel4"
	refCeiling = "ceiling"
)

// setup is what a cell asks of every server: listen on addr, present
// cert, and run program for each connection.
type setup struct {
	dir     string // for configuration files
	addr    string // 127.0.0.1:port
	port    int
	cert    *certFiles
	program []string // argv; program[0] is a path; none in the front cells
	backend string   // the front cells: host:port of the backend
	closes  bool     // the backend closes at once
	// starttls: the program turns TLS on itself (UCSPI-TLS, sslserver -n);
	// servers without UCSPI-TLS use their own STARTTLS, if any.
	starttls bool
	maxConn  int
}

// tools is where the driver finds its own programs.
type tools struct {
	bin  string // directory with sslserver and ucspitls-smtpd
	self string // the sslbench binary, which serves the ceiling
	// nobody's ids, for sslserver's workers and key holder
	uid, gid int
}

// kind is one way of starting a server.
type kind struct {
	config    bool   // extra words are configuration lines, not flags and environment
	tls       bool   // false: plaintext, the spawn floor
	starttls  bool   // can serve an SMTP program through STARTTLS
	x25519    bool   // can agree on X25519 (socat 1.7 offers P-256 only)
	root      bool   // must run as root
	binary    string // looked up in PATH, or in tools.bin when local
	local     bool
	pooled    bool   // keeps more processes idle after a busy round than before it
	pkg       string // the Debian package that brings binary
	front     bool   // can front a TCP backend (the front cells)
	onlyFront bool   // runs no program: the front cells only
	command   func(t *tools, s *setup, extra []string) (*exec.Cmd, error)
}

var kinds = map[string]*kind{
	"sslserver": {tls: true, starttls: true, x25519: true, root: true, binary: "sslserver", local: true, pooled: true, front: true, command: sslserverCmd},
	"ceiling":   {tls: true, starttls: true, x25519: true, command: ceilingCmd},
	"stunnel4":  {config: true, tls: true, starttls: true, x25519: true, binary: "stunnel4", pkg: "stunnel4", front: true, command: stunnelCmd},
	"sslhandle": {tls: true, x25519: true, root: true, binary: "sslhandle", local: true, front: true, onlyFront: true, command: sslhandleCmd},
	"hitch":     {config: true, tls: true, x25519: true, binary: "hitch", pkg: "hitch", front: true, onlyFront: true, command: hitchCmd},
	"socat":     {tls: true, binary: "socat", pkg: "socat", command: socatCmd},
	"tcpserver": {binary: "tcpserver", pkg: "ucspi-tcp", command: tcpserverCmd},
}

// variant is one entry of the line-up.
type variant struct {
	name  string
	kind  *kind
	env   []string // NAME=value
	extra []string
	bin   string // "@DIR": this variant's own build of a local binary
}

func parseVariant(s string) (*variant, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return nil, errors.New("empty server variant")
	}
	k, ok := kinds[f[0]]
	if !ok {
		return nil, fmt.Errorf("server variant %q: unknown server %q", s, f[0])
	}
	v := &variant{name: strings.Join(f, " "), kind: k}
	for _, w := range f[1:] {
		if dir, ok := strings.CutPrefix(w, "@"); ok && k.local {
			v.bin = dir
			continue
		}
		if name, _, ok := strings.Cut(w, "="); ok && !k.config && envName.MatchString(name) {
			v.env = append(v.env, w)
		} else {
			v.extra = append(v.extra, w)
		}
	}
	return v, nil
}

var envName = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

// packages lists the Debian packages the line-up needs.
func packages(vs []*variant) []string {
	var out []string
	for _, v := range vs {
		if p := v.kind.pkg; p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// available says why a variant cannot run here, or nil.
func (v *variant) available(t *tools) error {
	if v.kind.root && os.Geteuid() != 0 {
		return errors.New("needs root")
	}
	if v.kind.binary == "" {
		return nil
	}
	_, err := v.path(t)
	return err
}

// tools is t, with the variant's own directory of local binaries.
func (v *variant) tools(t *tools) *tools {
	if v.bin == "" {
		return t
	}
	vt := *t
	vt.bin = v.bin
	return &vt
}

func (v *variant) path(t *tools) (string, error) {
	t = v.tools(t)
	if v.kind.local {
		p := filepath.Join(t.bin, v.kind.binary)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s is missing: run make build", p)
		}
		return p, nil
	}
	p, err := exec.LookPath(v.kind.binary)
	if err != nil {
		return "", fmt.Errorf("%s is not installed (Debian package %s)", v.kind.binary, v.kind.pkg)
	}
	return p, nil
}

// serves says whether the variant can run the cell at all. A plaintext
// server runs the SMTP program without STARTTLS, but has nothing to show
// where only the key or the key exchange differs.
func (v *variant) serves(c *cell) bool {
	if c.prog.backend() != v.kind.front && (c.prog.backend() || v.kind.onlyFront) {
		return false
	}
	if !v.kind.tls {
		return !c.x25519 && c.key == ecdsaP256
	}
	return (c.prog != progSMTP || v.kind.starttls) && (!c.x25519 || v.kind.x25519)
}

// command builds the variant's command line for s.
func (v *variant) command(t *tools, s *setup) (*exec.Cmd, error) {
	cmd, err := v.kind.command(v.tools(t), s, v.extra)
	if err != nil || len(v.env) == 0 {
		return cmd, err
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, v.env...)
	return cmd, nil
}

// ucspiFlags are the flags sslserver and tcpserver share: no DNS or IDENT
// lookups (the TLS peers do none), TCP_NODELAY, room for every client.
func ucspiFlags(s *setup) []string {
	return []string{"-H", "-R", "-l", "localhost", "-D", "-c", strconv.Itoa(s.maxConn), "-b", "1024"}
}

func sslserverCmd(t *tools, s *setup, extra []string) (*exec.Cmd, error) {
	args := ucspiFlags(s)
	if s.starttls {
		args = append(args, "-n")
	}
	args = append(args, extra...)
	args = append(args, "127.0.0.1", strconv.Itoa(s.port))
	cmd := exec.Command(filepath.Join(t.bin, "sslserver"), append(args, frontProgram(s)...)...)
	cmd.Env = append(os.Environ(), "CERTFILE="+s.cert.Cert, "KEYFILE="+s.cert.Key,
		"SSL_UID="+strconv.Itoa(t.uid), "SSL_GID="+strconv.Itoa(t.gid))
	return cmd, nil
}

func ceilingCmd(t *tools, s *setup, extra []string) (*exec.Cmd, error) {
	args := []string{"ceiling", "-cert", s.cert.Cert, "-key", s.cert.Key, "-addr", s.addr}
	if s.starttls {
		args = append(args, "-n")
	}
	args = append(args, extra...)
	args = append(args, "--")
	return exec.Command(t.self, append(args, s.program...)...), nil
}

func tcpserverCmd(_ *tools, s *setup, extra []string) (*exec.Cmd, error) {
	args := append(ucspiFlags(s), extra...)
	args = append(args, "127.0.0.1", strconv.Itoa(s.port))
	return exec.Command("tcpserver", append(args, s.program...)...), nil
}

// socatCmd: one socat child per connection, which forks the program.
// nodelay matches the others; socat's exec splits its argument at spaces.
func socatCmd(_ *tools, s *setup, extra []string) (*exec.Cmd, error) {
	listen := fmt.Sprintf("openssl-listen:%d,bind=127.0.0.1,fork,reuseaddr,backlog=1024,nodelay,cert=%s,key=%s,verify=0",
		s.port, s.cert.Cert, s.cert.Key)
	args := append(append([]string{}, extra...), listen, "exec:"+strings.Join(s.program, " "))
	return exec.Command("socat", args...), nil
}

// stunnelCmd writes a configuration with one service and runs stunnel in
// the foreground, logging errors only as sslserver's default -Q does.
// Its STARTTLS is "protocol = smtp": stunnel itself answers EHLO and
// STARTTLS and hands the program the session after the handshake.
func stunnelCmd(_ *tools, s *setup, extra []string) (*exec.Cmd, error) {
	conf := filepath.Join(s.dir, fmt.Sprintf("stunnel-%d.conf", s.port))
	var b strings.Builder
	fmt.Fprintf(&b, "foreground = yes\npid =\nsyslog = no\ndebug = 3\n\n[bench]\n")
	fmt.Fprintf(&b, "accept = %s\ncert = %s\nkey = %s\n", s.addr, s.cert.Cert, s.cert.Key)
	if s.backend != "" {
		fmt.Fprintf(&b, "connect = %s\n", s.backend)
	} else {
		fmt.Fprintf(&b, "exec = %s\nexecArgs = %s\n", s.program[0], strings.Join(s.program, " "))
	}
	if s.starttls {
		b.WriteString("protocol = smtp\n")
	}
	for _, line := range extra {
		// Extra "flags" of stunnel are service options: "stunnel4 TIMEOUTclose=0".
		b.WriteString(strings.Replace(line, "=", " = ", 1) + "\n")
	}
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	return exec.Command("stunnel4", conf), nil
}

// frontProgram is what sslserver runs per session: the cell's program,
// or in the front cells socat relaying to the backend, a program per
// session where sslhandle has a long-lived handler. The shell closes
// fds 3 to 5 first: socat half-closes by closing fd 1, and fd 5 (the
// same pipe, $SSLWRITEFD) would keep the client waiting for the end of
// data until socat's own timeout. When the backend closes at once, -t 0
// has socat exit at that: the worker waits for the program's exit
// before it ends the session, and socat would wait half a second for
// the client's end of data.
func frontProgram(s *setup) []string {
	if s.backend == "" {
		return s.program
	}
	timeout := "0.5"
	if s.closes {
		timeout = "0"
	}
	return []string{"/bin/sh", "-c", "exec socat -t $1 STDIO TCP:$0 3<&- 4<&- 5>&-", s.backend, timeout}
}

// handleWorkers is how many handlers sslhandle runs in the front cells:
// enough for the 8 clients of the rate cell and their sessions that are
// still closing; each is a whole Go process.
const handleWorkers = 16

// sslhandleCmd: sslhandle relaying to the backend, with sslserver's
// flags (-c is the number of handler processes).
func sslhandleCmd(t *tools, s *setup, extra []string) (*exec.Cmd, error) {
	args := ucspiFlags(&setup{maxConn: handleWorkers})
	args = append(args, extra...)
	args = append(args, "127.0.0.1", strconv.Itoa(s.port), s.backend)
	cmd := exec.Command(filepath.Join(t.bin, "sslhandle"), args...)
	cmd.Env = append(os.Environ(), "CERTFILE="+s.cert.Cert, "KEYFILE="+s.cert.Key,
		"SSL_UID="+strconv.Itoa(t.uid), "SSL_GID="+strconv.Itoa(t.gid))
	return cmd, nil
}

// hitchCmd: hitch in the foreground with as many worker processes as
// cores (its advice), relaying to the backend; extra words are lines of
// its configuration ("hitch ciphers=...").
func hitchCmd(t *tools, s *setup, extra []string) (*exec.Cmd, error) {
	pem := filepath.Join(s.dir, fmt.Sprintf("hitch-%d.pem", s.port))
	if err := concatFiles(pem, s.cert.Cert, s.cert.Key); err != nil {
		return nil, err
	}
	conf := filepath.Join(s.dir, fmt.Sprintf("hitch-%d.conf", s.port))
	var b strings.Builder
	fmt.Fprintf(&b, "frontend = \"[127.0.0.1]:%d\"\nbackend = \"[%s]:%s\"\n", s.port, backendHost(s.backend), backendPort(s.backend))
	fmt.Fprintf(&b, "pem-file = \"%s\"\nworkers = %d\ndaemon = off\nbacklog = 1024\nquiet = on\n", pem, runtime.NumCPU())
	// It refuses to run its workers as root: the workers' ids of sslserver.
	if u, err := user.LookupId(strconv.Itoa(t.uid)); err == nil {
		fmt.Fprintf(&b, "user = \"%s\"\n", u.Username)
	}
	if g, err := user.LookupGroupId(strconv.Itoa(t.gid)); err == nil {
		fmt.Fprintf(&b, "group = \"%s\"\n", g.Name)
	}
	for _, line := range extra {
		name, value, _ := strings.Cut(line, "=")
		fmt.Fprintf(&b, "%s = %s\n", name, value)
	}
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	return exec.Command("hitch", "--config="+conf), nil
}

func backendHost(addr string) string { h, _, _ := net.SplitHostPort(addr); return h }
func backendPort(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

// concatFiles writes the files one after another into dst, for hitch's
// PEM of key and certificate.
func concatFiles(dst string, srcs ...string) error {
	var all []byte
	for _, f := range srcs {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		all = append(all, b...)
	}
	return os.WriteFile(dst, all, 0o600)
}
