package integration

// Privilege separation, checked from outside on a live session: ids,
// groups, no-new-privs, root directory, dumpability and open fds of the
// TLS worker and the key holder, and the absence of the private key in
// the worker's memory (with the key holder's memory as the control).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

type confineCase struct {
	name     string
	key      keyKind
	flags    []string // -u/-g for the program
	sslIDs   []string // SSL_UID=, SSL_GID=
	chroot   bool     // give a fresh SSL_CHROOT
	uid, gid int      // the worker's and key holder's; -1: nobody/nogroup
	progUID  int      // the program's
	progGID  int
}

var confineCases = []confineCase{
	{name: "defaults", key: keyECDSA, uid: -1, gid: -1},
	{name: "SSL ids and chroot", key: keyRSA, flags: []string{"-u", "1001", "-g", "1001"},
		sslIDs: []string{"SSL_UID=1002", "SSL_GID=1003"}, chroot: true,
		uid: 1002, gid: 1003, progUID: 1001, progGID: 1001},
	// SPEC 6: unset SSL_UID/SSL_GID default to the program's -u/-g.
	{name: "program ids", key: keyEd25519, flags: []string{"-u", "1001", "-g", "1001"},
		uid: 1001, gid: 1001, progUID: 1001, progGID: 1001},
}

// The program's descriptors under -N.
var programFDs = map[int]fdWant{
	0: {"pipe", "r", -1}, 1: {"pipe", "w", -1}, 2: {"stderr", "w", -1},
	3: {"unix", "rw", -1}, 4: {"pipe", "r", 0}, 5: {"pipe", "w", 1},
}

func TestConfinement(t *testing.T) {
	for _, tc := range confineCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testConfinement(t, tc)
		})
	}
}

func testConfinement(t *testing.T, tc confineCase) {
	if tc.uid < 0 {
		tc.uid, tc.gid = nobodyIDs(t)
	}
	env := tc.sslIDs
	var chroot string
	if tc.chroot {
		chroot = freshDir(t)
		env = append(env, "SSL_CHROOT="+chroot)
	}
	// A descriptor sslserver inherits must reach neither the worker nor
	// the key holder: their fd checks allow nothing unexpected.
	canary, err := os.Create(filepath.Join(t.TempDir(), "inherited-canary"))
	if err != nil {
		t.Fatal(err)
	}
	defer canary.Close()
	s := startServer(t, serverConfig{flags: tc.flags, env: env, cert: newCert(t, tc.key), role: "sleep",
		inherit: []*os.File{canary}})
	h := holdSession(t, s)
	keyHolder := s.keyHolder(t)
	checkProcessTree(t, s, h.worker, h.prog)
	for _, p := range []struct {
		who string
		pid int
	}{{"worker", h.worker}, {"key holder", keyHolder}} {
		checkIDs(t, p.who, p.pid, tc.uid, tc.gid)
		checkRoot(t, p.who, p.pid, chroot, p.who == "worker")
		checkNotDumpable(t, p.who, p.pid, tc.uid, tc.gid)
	}
	checkProgram(t, h.prog, tc.progUID, tc.progGID)
	checkApart(t, h, len(tc.sslIDs) > 0)
	checkSessionFDs(t, s, h, keyHolder)
	checkKeyMemory(t, s.cert, h.worker, keyHolder)
	h.conn.Close()
	if status := s.waitEnd(t, h.worker); status != 0 {
		t.Errorf("session ended with status %d, want 0", status)
	}
}

// heldSession is a session whose program (the sleep role) waits for EOF.
type heldSession struct {
	conn         *tls.Conn
	clientPort   int
	worker, prog int
}

func holdSession(t testing.TB, s *server) heldSession {
	t.Helper()
	return holdSessionWith(t, s, nil)
}

// holdSessionWith is holdSession with a client configuration (nil: the
// usual one). Reading READY takes a TLS 1.3 ticket that came before it.
func holdSessionWith(t testing.TB, s *server, cfg *tls.Config) heldSession {
	t.Helper()
	conn, raw := s.dialTLS(t, cfg)
	h := heldSession{conn: conn, clientPort: localPort(raw), worker: s.sessionPID(t, localPort(raw))}
	line, err := bufio.NewReader(conn).ReadString('\n')
	h.prog, _ = strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "READY "))
	if err != nil || h.prog == 0 {
		t.Fatalf("program said %q (%v), want READY pid", line, err)
	}
	return h
}

// checkApart: the worker is never root and, with SSL_UID set apart from
// -u, shares no uid with the program.
func checkApart(t testing.TB, h heldSession, sslIDs bool) {
	t.Helper()
	wuid, puid := realUID(t, h.worker), realUID(t, h.prog)
	if wuid == "0" || (sslIDs && wuid == puid) {
		t.Errorf("worker uid %s, program uid %s: the worker must be neither root nor the program", wuid, puid)
	}
}

func checkSessionFDs(t testing.TB, s *server, h heldSession, keyHolder int) {
	t.Helper()
	stderr := s.stderrLink(t)
	pfds := procFDs(t, h.prog)
	checkFDMap(t, "program", pfds, programFDs, stderr)
	wfds := procFDs(t, h.worker)
	checkWorkerFDs(t, wfds, pfds, stderr, tcpInode(t, s.port, h.clientPort))
	checkKeyHolderFDs(t, keyHolder, stderr)
	sup := procFDs(t, s.pid)
	checkRelayed(t, "worker", wfds[2], sup)
	checkRelayed(t, "key holder", procFDs(t, keyHolder)[2], sup)
}

// ownStderr: a worker's or the key holder's fd 2 is a pipe of its own,
// never sslserver's stderr, which a hostile one could shut down,
// truncate or use as a terminal.
func ownStderr(g fdInfo, stderr string) bool {
	return strings.HasPrefix(g.target, "pipe:") && g.mode == "w" && g.target != stderr
}

// checkRelayed: the read end of a child's stderr pipe is the supervisor's.
func checkRelayed(t testing.TB, who string, g fdInfo, sup map[int]fdInfo) {
	t.Helper()
	for _, s := range sup {
		if s.target == g.target && s.mode == "r" {
			return
		}
	}
	t.Errorf("%s: the supervisor does not read its stderr %s", who, g.target)
}

func realUID(t testing.TB, pid int) string {
	t.Helper()
	uid, _, _ := strings.Cut(procStatus(t, pid)["Uid"], "\t")
	return uid
}

func nobodyIDs(t testing.TB) (int, int) {
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("looking up nobody: %v", err)
	}
	gid := u.Gid
	if g, err := user.LookupGroup("nogroup"); err == nil {
		gid = g.Gid
	}
	uid, _ := strconv.Atoi(u.Uid)
	g, _ := strconv.Atoi(gid)
	return uid, g
}

// freshDir is an empty directory that every uid may reach and enter
// (t.TempDir's parent is root's alone), for files the workers' ids must
// reach by path.
func freshDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "itest-chroot")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	return resolved
}

// checkProcessTree: the worker and the program are both children of the
// supervisor, and the worker is the re-executed sslserver in its role.
func checkProcessTree(t testing.TB, s *server, worker, prog int) {
	t.Helper()
	if a := argv0(worker); a != "sslserver-tlsworker" {
		t.Errorf("worker %d has argv[0] %q, want sslserver-tlsworker", worker, a)
	}
	// Exec'd through /proc/self/exe, it would be named "exe" in ps -e,
	// top and pgrep.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", worker)); err != nil || string(b) != "sslserver\n" {
		t.Errorf("worker %d is named %q (%v), want sslserver", worker, b, err)
	}
	for _, p := range []struct {
		who string
		pid int
	}{{"worker", worker}, {"program", prog}} {
		if st, err := readStat(p.pid); err != nil || st.ppid != s.pid {
			t.Errorf("%s %d has parent %d (%v), want sslserver %d", p.who, p.pid, st.ppid, err, s.pid)
		}
	}
}

// checkIDs reads /proc/PID/status: every uid and gid as wanted, no
// supplementary groups, no capabilities, an empty bounding set, no new
// privileges, and a seccomp filter (mode 2).
func checkIDs(t testing.TB, who string, pid, uid, gid int) {
	t.Helper()
	st := procStatus(t, pid)
	want := map[string]string{
		"Uid":        strings.Repeat(strconv.Itoa(uid)+"\t", 3) + strconv.Itoa(uid),
		"Gid":        strings.Repeat(strconv.Itoa(gid)+"\t", 3) + strconv.Itoa(gid),
		"Groups":     "",
		"NoNewPrivs": "1",
		"CapEff":     "0000000000000000",
		"CapPrm":     "0000000000000000",
		"CapAmb":     "0000000000000000",
		"CapBnd":     "0000000000000000",
		"Seccomp":    "2",
	}
	for k, w := range want {
		if st[k] != w {
			t.Errorf("%s %d: %s: %q, want %q", who, pid, k, st[k], w)
		}
	}
}

// checkRoot: the process's root is the given chroot (when set and exact)
// or else an empty directory that is not /.
func checkRoot(t testing.TB, who string, pid int, chroot string, exact bool) {
	t.Helper()
	root, err := os.Readlink(fmt.Sprintf("/proc/%d/root", pid))
	if err != nil {
		t.Fatalf("%s %d: %v", who, pid, err)
	}
	if chroot != "" && exact {
		if root != chroot {
			t.Errorf("%s %d: root %q, want SSL_CHROOT %q", who, pid, root, chroot)
		}
		return
	}
	if root == "/" {
		t.Errorf("%s %d: root is /", who, pid)
	}
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/root/", pid))
	if err != nil || len(entries) != 0 {
		t.Errorf("%s %d: root %q is not an empty directory (%d entries, %v)", who, pid, root, len(entries), err)
	}
}

// checkNotDumpable: the kernel hands a non-dumpable process's /proc files
// to root, and another process with the same ids may read neither its
// environment nor its memory.
func checkNotDumpable(t testing.TB, who string, pid, uid, gid int) {
	t.Helper()
	// (Not /proc/PID itself: world-readable directories keep the euid.)
	fi, err := os.Stat(fmt.Sprintf("/proc/%d/environ", pid))
	if err == nil && uid != 0 && fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("%s %d: /proc/%d/environ is owned by uid %d: the process is dumpable",
			who, pid, pid, fi.Sys().(*syscall.Stat_t).Uid)
	}
	if got := peek(t, pid, uid, gid); got != "environ=denied mem=denied" {
		t.Errorf("%s %d: a process with its ids may read it: %s", who, pid, got)
	}
}

// peek runs the peek role as uid:gid against pid.
func peek(t testing.TB, pid, uid, gid int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	cmd := exec.CommandContext(ctx, itestBin)
	cmd.Env = []string{roleVar + "=peek", "ITEST_PID=" + strconv.Itoa(pid)}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
		Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("peek as %d:%d: %v", uid, gid, err)
	}
	return strings.TrimSpace(string(out))
}

// checkProgram: the program runs with -u/-g and, as the control for
// checkNotDumpable, is readable by a process with its ids.
func checkProgram(t testing.TB, prog, uid, gid int) {
	t.Helper()
	st := procStatus(t, prog)
	if want := strings.Repeat(strconv.Itoa(uid)+"\t", 3) + strconv.Itoa(uid); st["Uid"] != want {
		t.Errorf("program %d: Uid %q, want %q", prog, st["Uid"], want)
	}
	if want := strings.Repeat(strconv.Itoa(gid)+"\t", 3) + strconv.Itoa(gid); st["Gid"] != want {
		t.Errorf("program %d: Gid %q, want %q", prog, st["Gid"], want)
	}
	if uid != 0 {
		if got := peek(t, prog, uid, gid); got != "environ=allowed mem=allowed" {
			t.Errorf("control: a process with the program's ids cannot read it: %s", got)
		}
	}
}

// procFDs reads a process's descriptors from /proc, leaving out the ones
// the Go runtime makes for itself (goRuntimeFD), and names sockets by
// their family: "unix:[inode]" or "tcp:[inode]".
func procFDs(t testing.TB, pid int) map[int]fdInfo {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("listing %s: %v", dir, err)
	}
	families := socketFamilies(t)
	fds := map[int]fdInfo{}
	for _, fd := range sortedFDs(entries) {
		target, err := os.Readlink(fmt.Sprintf("%s/%d", dir, fd))
		if err != nil || goRuntimeFD(target) {
			continue
		}
		if inode, ok := strings.CutPrefix(target, "socket:"); ok && families[inode] != "" {
			target = families[inode] + ":" + inode
		}
		info, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
		fds[fd] = fdInfo{target: target, mode: accessMode(string(info))}
	}
	return fds
}

// socketFamilies maps "[inode]" to "unix" or "tcp" for every socket in
// this network namespace.
func socketFamilies(t testing.TB) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, f := range []struct {
		path, family string
		column       int
	}{{"/proc/net/unix", "unix", 6}, {"/proc/net/tcp", "tcp", 9}, {"/proc/net/tcp6", "tcp", 9}} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatalf("reading %s: %v", f.path, err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if cols := strings.Fields(line); len(cols) > f.column {
				m["["+cols[f.column]+"]"] = f.family
			}
		}
	}
	return m
}

// checkWorkerFDs compares the worker's descriptors with the contract's
// map. The worker is started with 0, 1 /dev/null, 2 its stderr pipe, 3 and 4
// unix sockets (supervisor, key holder), 5 the connection, 6 the control
// socket, 7 and 8 the pipes; Go renumbers descriptors it wraps (net.FileConn
// dups), so past 2 the check is on what is open, not where: this one
// connection, the program's two pipes, at most three unix sockets, and
// nothing else.
func checkWorkerFDs(t testing.TB, wfds, pfds map[int]fdInfo, stderr, conn string) {
	t.Helper()
	want := map[string]int{"tcp:" + conn: 1, pfds[0].target + " w": 1, pfds[1].target + " r": 1}
	unix := 0
	for fd, g := range wfds {
		switch {
		case fd <= 1:
			if g.target != "/dev/null" {
				t.Errorf("worker: fd %d is %s, want /dev/null", fd, g.target)
			}
		case fd == 2:
			if !ownStderr(g, stderr) {
				t.Errorf("worker: fd 2 is %s (%s), want a pipe of its own, not sslserver's stderr %s", g.target, g.mode, stderr)
			}
		case strings.HasPrefix(g.target, "unix:"):
			unix++
		case want[g.target] == 1 && strings.HasPrefix(g.target, "tcp:"):
			want[g.target]--
		case want[g.target+" "+g.mode] == 1:
			want[g.target+" "+g.mode]--
		default:
			t.Errorf("worker: unexpected fd %d: %s (%s)", fd, g.target, g.mode)
		}
	}
	for what, n := range want {
		if n != 0 {
			t.Errorf("worker: %s is not open", what)
		}
	}
	if unix < 1 || unix > 3 {
		t.Errorf("worker: %d unix sockets, want 1 to 3 (supervisor, key holder, control)", unix)
	}
	if t.Failed() {
		t.Logf("worker: open fds %v", wfds)
	}
}

// tcpInode finds the socket of the connection between the two local ports
// in /proc/net/tcp and tcp6.
func tcpInode(t testing.TB, serverPort, clientPort int) string {
	t.Helper()
	local, remote := fmt.Sprintf(":%04X", serverPort), fmt.Sprintf(":%04X", clientPort)
	for _, path := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 9 && strings.HasSuffix(f[1], local) && strings.HasSuffix(f[2], remote) {
				return "[" + f[9] + "]"
			}
		}
	}
	t.Fatalf("no TCP socket from port %d to %d", serverPort, clientPort)
	return ""
}

// checkKeyHolderFDs: /dev/null, its stderr pipe and sockets only; above all, no
// key or certificate file stays open.
func checkKeyHolderFDs(t testing.TB, pid int, stderr string) {
	t.Helper()
	for fd, g := range procFDs(t, pid) {
		switch {
		case fd <= 1 && g.target == "/dev/null", fd == 2 && ownStderr(g, stderr):
		case fd >= 3 && strings.HasPrefix(g.target, "unix:"):
		default:
			t.Errorf("key holder %d: unexpected fd %d: %s", pid, fd, g.target)
		}
	}
}

// checkKeyMemory scans the worker's memory for the private key in every
// form (DER, PEM, the secret numbers): none may be there. Two controls
// show the scan can see: the worker's memory holds the certificate (it
// sends it), and the key holder's holds a secret of the key.
func checkKeyMemory(t testing.TB, cert *testCert, worker, keyHolder int) {
	t.Helper()
	patterns := keyPatterns(cert)
	patterns["cert-der"] = cert.certDER
	found, n := scanMemory(t, worker, patterns)
	if !slices.Contains(found, "cert-der") {
		t.Errorf("control failed: the certificate is not in the worker's memory (%d bytes scanned)", n)
	}
	if found = slices.DeleteFunc(found, func(s string) bool { return s == "cert-der" }); len(found) > 0 {
		t.Errorf("worker %d: private key material in memory (%d bytes scanned): %v", worker, n, found)
	}
	found, n = scanMemory(t, keyHolder, keyPatterns(cert))
	if !slices.ContainsFunc(found, func(s string) bool { return cert.secrets[s] != nil }) {
		t.Errorf("control failed: no secret of the %s key found in the key holder %d (%d bytes scanned, found %v)",
			cert.kind, keyHolder, n, found)
	}
}

// keyPatterns: the secrets, the PKCS #8 DER, the PEM text and each of its
// base64 lines.
func keyPatterns(cert *testCert) map[string][]byte {
	p := map[string][]byte{"pkcs8-der": cert.keyDER, "key-pem": cert.keyPEM}
	for name, s := range cert.secrets {
		p[name] = s
	}
	for i, line := range bytes.Split(cert.keyPEM, []byte("\n")) {
		if len(line) == 64 {
			p["pem-line-"+strconv.Itoa(i)] = line
		}
	}
	return p
}

// scanMemory reads every readable mapping of pid through /proc/PID/mem
// and returns the names of the patterns found and the bytes scanned.
func scanMemory(t testing.TB, pid int, patterns map[string][]byte) ([]string, int64) {
	t.Helper()
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatalf("opening memory of %d: %v", pid, err)
	}
	defer mem.Close()
	longest := 0
	for _, p := range patterns {
		longest = max(longest, len(p))
	}
	seen := map[string]bool{}
	var scanned int64
	for _, r := range readableRegions(t, pid) {
		scanned += scanRegion(mem, r, longest, patterns, seen)
	}
	if scanned == 0 {
		t.Fatalf("no memory of %d could be read", pid)
	}
	var found []string
	for name := range seen {
		found = append(found, name)
	}
	return found, scanned
}

type region struct{ start, end int64 }

var mapsLine = regexp.MustCompile(`^([0-9a-f]+)-([0-9a-f]+) (\S{4})`)

func readableRegions(t testing.TB, pid int) []region {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatalf("reading maps of %d: %v", pid, err)
	}
	var rs []region
	for _, line := range strings.Split(string(b), "\n") {
		m := mapsLine.FindStringSubmatch(line)
		if m == nil || m[3][0] != 'r' || strings.Contains(line, "[vvar") || strings.Contains(line, "[vsyscall]") {
			continue
		}
		start, _ := strconv.ParseUint(m[1], 16, 64)
		end, _ := strconv.ParseUint(m[2], 16, 64)
		rs = append(rs, region{int64(start), int64(end)})
	}
	return rs
}

// scanRegion reads r in chunks that overlap by longest-1 bytes, so a
// pattern across a chunk border is still found.
func scanRegion(mem *os.File, r region, longest int, patterns map[string][]byte, seen map[string]bool) int64 {
	const chunk = 4 << 20
	buf := make([]byte, chunk+longest)
	var scanned int64
	for off := r.start; off < r.end; off += chunk {
		n, _ := mem.ReadAt(buf[:min(int64(len(buf)), r.end-off)], off)
		if n <= 0 {
			break
		}
		scanned += int64(min(n, chunk))
		for name, p := range patterns {
			if !seen[name] && bytes.Contains(buf[:n], p) {
				seen[name] = true
			}
		}
	}
	return scanned
}

// TestWorkerReach: workers start with their own ids, so sslserver
// refuses at start, in one line and with exit 111, an SSL_CHROOT they
// cannot enter and a binary they cannot execute. (The directories above
// SSL_CHROOT do not matter: TestChrootByDescriptor.)
func TestWorkerReach(t *testing.T) {
	c := newCert(t, keyECDSA)
	jail := filepath.Join(freshDir(t), "jail")
	if err := os.Mkdir(jail, 0o700); err != nil {
		t.Fatal(err)
	}
	private := filepath.Join(freshDir(t), "sslserver")
	b, err := os.ReadFile(binary(t, "sslserver"))
	if err == nil {
		err = os.WriteFile(private, b, 0o700)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, bin, env, want string
	}{
		{"closed chroot", binary(t, "sslserver"), "SSL_CHROOT=" + jail,
			`^sslserver: fatal: SSL_CHROOT="` + regexp.QuoteMeta(jail) + `" \(mode 0700\) is not searchable by the TLS workers' uid 65534 gid 65534\n$`},
		{"binary root's alone", private, "",
			`^sslserver: fatal: ` + regexp.QuoteMeta(private) + ` \(mode 0700, uid 0 gid 0\) is not executable by the TLS workers' uid 65534 gid 65534: chmod a\+x it\n$`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(tc.bin, "-1", "127.0.0.1", "0", "/bin/true")
			cmd.Env = append(serverEnv(t, serverConfig{cert: c}), "SSL_UID=65534", "SSL_GID=65534", tc.env)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := runBounded(t, cmd, 20*time.Second)
			if code := exitCode(err); code != 111 {
				t.Errorf("exit %d (%v), want 111; stderr %q", code, err, stderr.String())
			}
			if !regexp.MustCompile(tc.want).MatchString(stderr.String()) {
				t.Errorf("stderr %q, want %s", stderr.String(), tc.want)
			}
		})
	}
}

// TestWorkerReuse: with SSL_WORKER_SESSIONS=3 one worker serves three
// sessions one after another, each a full handshake signed by the real
// key holder, which allows a worker one signature per session (granted
// as it goes back to idle); the fourth session goes to a new worker.
func TestWorkerReuse(t *testing.T) {
	s := startServer(t, serverConfig{env: []string{"SSL_WORKER_SESSIONS=3", "SSL_PREFORK=0"}, role: "echo"})
	var pids []int
	idle := regexp.MustCompile(`^sslserver: status: 0/40$`)
	for i := range 4 {
		pids = append(pids, s.goodSession(t, fmt.Sprintf("session %d", i)))
		// The worker goes back to idle just after its end line.
		deadline := time.Now().Add(waitTime)
		for len(s.log.matches(idle)) < i+2 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if pids[0] != pids[1] || pids[1] != pids[2] || pids[3] == pids[0] {
		t.Fatalf("sessions served by workers %v, want three by one worker and the fourth by another", pids)
	}
	ends := regexp.MustCompile(`^sslserver: end ` + strconv.Itoa(pids[0]) + ` status 0$`)
	deadline := time.Now().Add(waitTime)
	for len(s.log.matches(ends)) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(s.log.matches(ends)); n != 3 {
		t.Errorf("%d sessions of worker %d ended with status 0, want 3; log:\n%s", n, pids[0], s.log.text())
	}
}
