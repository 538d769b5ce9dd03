package integration

// Helper roles: sslserver runs this test binary (its copy itestBin) as the
// program, with ITEST_ROLE naming what to do. Under sslserver -n a role
// starts in plaintext on the TCP connection (fds 0 and 1) and turns TLS on
// through $SSLCTLFD like a real UCSPI-TLS application; under -N fds 0 and
// 1 are already the decrypted channel.
//
// The roles do their I/O on raw descriptors (rawFD), not os.Stdin: they
// dup2 new descriptors onto 0 and 1, which the Go poller would not notice,
// and they must not change the O_NONBLOCK flag of file descriptions they
// share with the TLS worker.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The program's descriptors and the two commands, as the contract states
// them (see the package comment for why they are not imported).
const (
	ctlFD   = 3
	readFD  = 4
	writeFD = 5

	roleDeadline = 30 * time.Second // no role waits longer on anything
)

var roles = map[string]func() int{
	"echo":   roleEcho,
	"ytls":   func() int { return roleStartTLS('Y') },
	"latey":  roleLateY,
	"ylower": func() int { return roleStartTLS('y') },
	"inject": roleInject,
	"sha":    roleSHA,
	"badctl": roleBadCtl,
	"die":    func() int { return 3 },
	"env":    roleEnvDump,
	"fds":    roleFDs,
	"sleep":  roleSleep,
	"peek":   rolePeek,
}

// roleFirst runs other roles, so it joins the table after it is built.
func init() { roles["first"] = roleFirst }

func runRole(name string) int {
	f, ok := roles[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "itest: unknown role %q\n", name)
		return 100
	}
	return f()
}

// fail reports a role's error on stderr (it lands in sslserver's log) and
// to the client, where the test sees it.
func fail(format string, args ...any) int {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(os.Stderr, "itest: %s: %s\n", os.Getenv(roleVar), msg)
	writeString(1, "ERR "+msg+"\n")
	return 1
}

// rawFD is blocking I/O on a descriptor whatever its O_NONBLOCK flag.
type rawFD int

func (f rawFD) Read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(int(f), p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if _, err := pollIn(int(f), roleDeadline); err != nil {
				return 0, err
			}
			continue
		case err != nil:
			return 0, fmt.Errorf("read fd %d: %w", f, err)
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f rawFD) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, err := syscall.Write(int(f), p[done:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if err := pollOut(int(f)); err != nil {
				return done, err
			}
			continue
		case err != nil:
			return done, fmt.Errorf("write fd %d: %w", f, err)
		}
		done += n
	}
	return done, nil
}

func writeString(fd int, s string) error {
	_, err := rawFD(fd).Write([]byte(s))
	return err
}

// pollIn waits until fd is readable; false means the wait timed out.
func pollIn(fd int, d time.Duration) (bool, error) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(d.Milliseconds()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("poll fd %d: %w", fd, err)
		}
		return n > 0, nil
	}
}

func pollOut(fd int) error {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	for {
		_, err := unix.Poll(fds, int(roleDeadline.Milliseconds()))
		if err != unix.EINTR {
			return err
		}
	}
}

// delayed reports whether fd 0 is the TCP socket (sslserver -n) rather
// than a pipe from the TLS worker (-N).
func delayed() bool {
	var st unix.Stat_t
	return unix.Fstat(0, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFSOCK
}

// readLineRaw reads up to and including '\n' one byte at a time, so not a
// byte after the line is taken from the descriptor.
func readLineRaw(fd int) (string, error) {
	var line []byte
	b := make([]byte, 1)
	for len(line) < 4096 {
		if _, err := rawFD(fd).Read(b); err != nil {
			return string(line), err
		}
		line = append(line, b[0])
		if b[0] == '\n' {
			return string(line), nil
		}
	}
	return string(line), errors.New("line too long")
}

// startTLS writes cmd to $SSLCTLFD and reads the control socket to EOF,
// returning what came back: the NAME=value block after Y, nothing after y.
func startTLS(cmd byte) ([]byte, error) {
	if got := os.Getenv("SSLCTLFD"); got != strconv.Itoa(ctlFD) {
		return nil, fmt.Errorf("SSLCTLFD is %q, want %d", got, ctlFD)
	}
	if _, err := rawFD(ctlFD).Write([]byte{cmd}); err != nil {
		return nil, err
	}
	var reply bytes.Buffer
	deadline := time.Now().Add(roleDeadline)
	buf := make([]byte, 4096)
	for {
		ok, err := pollIn(ctlFD, time.Until(deadline))
		if err != nil || !ok {
			return reply.Bytes(), fmt.Errorf("control fd: no EOF after %d bytes: %v", reply.Len(), err)
		}
		n, err := rawFD(ctlFD).Read(buf)
		reply.Write(buf[:n])
		if err == io.EOF {
			return reply.Bytes(), syscall.Close(ctlFD)
		}
		if err != nil {
			return reply.Bytes(), err
		}
	}
}

// switchFDs moves $SSLREADFD and $SSLWRITEFD onto 0 and 1, as mailfront,
// qmail and s/qmail do.
func switchFDs() error {
	for _, m := range []struct {
		name     string
		from, to int
	}{{"SSLREADFD", readFD, 0}, {"SSLWRITEFD", writeFD, 1}} {
		if got := os.Getenv(m.name); got != strconv.Itoa(m.from) {
			return fmt.Errorf("%s is %q, want %d", m.name, got, m.from)
		}
		if err := syscall.Dup3(m.from, m.to, 0); err != nil {
			return fmt.Errorf("dup3 %d %d: %w", m.from, m.to, err)
		}
		if err := syscall.Close(m.from); err != nil {
			return fmt.Errorf("close %d: %w", m.from, err)
		}
	}
	return nil
}

// goTLS starts TLS with y and switches when running under -n.
func goTLS() error {
	if !delayed() {
		return nil
	}
	if reply, err := startTLS('y'); err != nil || len(reply) != 0 {
		return fmt.Errorf("y: reply %q, %v", reply, err)
	}
	return switchFDs()
}

// echo copies fds 0 to 1 until EOF. A client that went away (EPIPE,
// ECONNRESET) is a normal end, so the session's status stays 0.
func echo() int {
	signal.Ignore(syscall.SIGPIPE)
	_, err := io.Copy(rawFD(1), rawFD(0))
	if err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		fmt.Fprintf(os.Stderr, "itest: echo: %v\n", err)
		return 1
	}
	return 0
}

func roleEcho() int {
	if err := goTLS(); err != nil {
		return fail("%v", err)
	}
	return echo()
}

// roleStartTLS is an application that reads one plaintext line, answers
// "GO", starts TLS with cmd and reports, inside TLS, the line and what
// the control fd returned; then it echoes.
func roleStartTLS(cmd byte) int {
	line, err := readLineRaw(0)
	if err != nil {
		return fail("reading the plaintext line: %v", err)
	}
	if err := writeString(1, "GO\n"); err != nil {
		return fail("%v", err)
	}
	reply, err := startTLS(cmd)
	if err != nil {
		return fail("%c: %v", cmd, err)
	}
	if err := switchFDs(); err != nil {
		return fail("%v", err)
	}
	report, err := describeReply(cmd, reply)
	if err != nil {
		return fail("%c reply %q: %v", cmd, reply, err)
	}
	if err := writeString(1, fmt.Sprintf("LINE %q\n%sEND\n", line, report)); err != nil {
		return 1
	}
	return echo()
}

// roleLateY runs under -N, after the handshake: it asks for the reply
// block with "Y" and writes it to the client.
func roleLateY() int {
	reply, err := startTLS('Y')
	if err != nil {
		return fail("Y: %v", err)
	}
	report, err := describeReply('Y', reply)
	if err != nil {
		return fail("Y reply %q: %v", reply, err)
	}
	if err := writeString(1, report+"END\n"); err != nil {
		return 1
	}
	return 0
}

// describeReply checks the reply to cmd and renders it as one
// "VAR quoted-NAME=value" line per entry.
func describeReply(cmd byte, reply []byte) (string, error) {
	if cmd == 'y' {
		if len(reply) != 0 {
			return "", errors.New("y got a reply")
		}
		return "", nil
	}
	vars, err := parseBlock(reply)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, kv := range vars {
		fmt.Fprintf(&b, "VAR %q\n", kv)
	}
	return b.String(), nil
}

// parseBlock splits NAME=value\0...\0\0 and requires the two variables
// every consumer reads.
func parseBlock(p []byte) ([]string, error) {
	if !bytes.HasSuffix(p, []byte{0, 0}) {
		return nil, errors.New("block does not end in \\0\\0")
	}
	var vars []string
	have := map[string]bool{}
	for _, e := range strings.Split(string(p[:len(p)-2]), "\x00") {
		name, value, ok := strings.Cut(e, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("entry %q is not NAME=value", e)
		}
		have[name] = value != ""
		vars = append(vars, e)
	}
	for _, name := range []string{"SSL_PROTOCOL", "SSL_CIPHER"} {
		if !have[name] {
			return nil, fmt.Errorf("no %s in the block", name)
		}
	}
	return vars, nil
}

// roleInject reads "STARTTLS\r\n", then whatever else the client had
// already sent (a CVE-2011-0411 injection), answers 220, starts TLS and
// reports inside TLS what it read after the command.
func roleInject() int {
	if _, err := readLineRaw(0); err != nil {
		return fail("reading STARTTLS: %v", err)
	}
	var extra []byte
	if ok, err := pollIn(0, 2*time.Second); err == nil && ok {
		buf := make([]byte, 4096)
		n, _ := rawFD(0).Read(buf)
		extra = buf[:n]
	}
	if err := writeString(1, "220 ready\r\n"); err != nil {
		return fail("%v", err)
	}
	if err := goTLS(); err != nil {
		return fail("%v", err)
	}
	if err := writeString(1, fmt.Sprintf("PRE %q\n", extra)); err != nil {
		return 1
	}
	return echo()
}

// roleSHA writes $ITEST_N random bytes while reading all of its input,
// then, after both, "READ sha256 count WROTE sha256".
func roleSHA() int {
	n, err := strconv.Atoi(os.Getenv("ITEST_N"))
	if err != nil {
		return fail("ITEST_N: %v", err)
	}
	if err := goTLS(); err != nil {
		return fail("%v", err)
	}
	signal.Ignore(syscall.SIGPIPE)
	wrote := make(chan []byte, 1)
	go writeRandom(n, wrote)
	h := sha256.New()
	count, err := io.Copy(h, rawFD(0))
	if err != nil {
		return fail("reading: %v", err)
	}
	sum := <-wrote
	if sum == nil {
		return fail("writing failed")
	}
	if err := writeString(1, fmt.Sprintf("READ %x %d WROTE %x\n", h.Sum(nil), count, sum)); err != nil {
		return 1
	}
	return 0
}

// writeRandom sends n pseudo-random bytes to fd 1 and their sha256 (nil
// on error) to sum.
func writeRandom(n int, sum chan<- []byte) {
	var seed [32]byte
	rand.Read(seed[:])
	src := mrand.NewChaCha8(seed)
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for n > 0 {
		chunk := buf[:min(n, len(buf))]
		src.Read(chunk)
		h.Write(chunk)
		if _, err := rawFD(1).Write(chunk); err != nil {
			fmt.Fprintf(os.Stderr, "itest: sha: %v\n", err)
			sum <- nil
			return
		}
		n -= len(chunk)
	}
	sum <- h.Sum(nil)
}

// roleBadCtl writes a byte that is no command and waits to be ended;
// its own exit code, 7, must not become the session's status.
func roleBadCtl() int {
	if _, err := rawFD(ctlFD).Write([]byte{'Q'}); err != nil {
		return fail("%v", err)
	}
	pollIn(ctlFD, roleDeadline)
	time.Sleep(roleDeadline)
	return 7
}

// roleEnvDump prints its environment, one quoted NAME=value a line,
// to fd 1: plaintext under -n, through TLS under -N.
func roleEnvDump() int {
	env := os.Environ()
	sort.Strings(env)
	var b strings.Builder
	for _, kv := range env {
		fmt.Fprintf(&b, "%q\n", kv)
	}
	if err := writeString(1, b.String()); err != nil {
		return 1
	}
	return 0
}

// roleFDs prints its open descriptors as "FD n target mode" lines, taken
// before it opens anything but the listing itself; descriptors the Go
// runtime makes for itself are left out.
func roleFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fail("%v", err)
	}
	self := fmt.Sprintf("/proc/%d/fd", os.Getpid())
	var b strings.Builder
	for _, fd := range sortedFDs(entries) {
		target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		if err != nil || target == self || goRuntimeFD(target) {
			continue
		}
		fmt.Fprintf(&b, "FD %d %s %s\n", fd, target, fdMode(fd))
	}
	for _, name := range []string{"SSLCTLFD", "SSLREADFD", "SSLWRITEFD"} {
		fmt.Fprintf(&b, "ENV %s=%s\n", name, os.Getenv(name))
	}
	if err := writeString(1, b.String()); err != nil {
		return 1
	}
	return 0
}

// goRuntimeFD: the Go runtime's own descriptors in any Go process, the
// poller's epoll and eventfd. (The cgroup files Go 1.25 keeps open are
// turned off with GODEBUG in roleCommand, as sslserver does for its
// confined processes.)
func goRuntimeFD(target string) bool {
	return target == "anon_inode:[eventpoll]" || target == "anon_inode:[eventfd]"
}

func sortedFDs(entries []os.DirEntry) []int {
	var fds []int
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			fds = append(fds, n)
		}
	}
	sort.Ints(fds)
	return fds
}

// fdMode is r, w or rw from the access mode in /proc/self/fdinfo.
func fdMode(fd int) string {
	info, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		return "?"
	}
	return accessMode(string(info))
}

// accessMode reads the flags line of an fdinfo file (octal).
func accessMode(fdinfo string) string {
	for _, line := range strings.Split(fdinfo, "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			if err != nil {
				return "?"
			}
			return [...]string{"r", "w", "rw", "?"}[flags&3]
		}
	}
	return "?"
}

// roleSleep holds the session open: it says READY and waits for EOF.
func roleSleep() int {
	if err := goTLS(); err != nil {
		return fail("%v", err)
	}
	if err := writeString(1, fmt.Sprintf("READY %d\n", os.Getpid())); err != nil {
		return 1
	}
	pollIn(0, 2*roleDeadline)
	return 0
}

// roleFirst runs $ITEST_FIRST for the first session of a server (the one
// that creates $ITEST_MARK) and echo for every later one, so a test can
// follow a misbehaving program with a good session on the same server.
func roleFirst() int {
	f, err := os.OpenFile(os.Getenv("ITEST_MARK"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return roleEcho()
	}
	f.Close()
	return runRole(os.Getenv("ITEST_FIRST"))
}

// rolePeek is run by a test (not by sslserver) under another process's
// uid: it reports whether that uid may read the process's environ and
// memory, which it may not when the process is not dumpable.
func rolePeek() int {
	pid := os.Getenv("ITEST_PID")
	_, errEnv := os.ReadFile("/proc/" + pid + "/environ")
	_, errMem := os.ReadFile("/proc/" + pid + "/mem")
	fmt.Printf("environ=%s mem=%s\n", peekResult(errEnv), peekResult(errMem))
	return 0
}

func peekResult(err error) string {
	switch {
	case err == nil, errors.Is(err, syscall.EIO):
		// /proc/PID/mem reads EIO at offset 0 once it is open: the open
		// was allowed.
		return "allowed"
	case errors.Is(err, os.ErrPermission):
		return "denied"
	}
	return "error:" + err.Error()
}
