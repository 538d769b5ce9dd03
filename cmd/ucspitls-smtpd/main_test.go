package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
)

// roleVar makes the test binary run as ucspitls-smtpd itself, so every
// case below exercises the real program with real descriptors.
const roleVar = "UCSPITLS_SMTPD_TEST_ROLE"

func TestMain(m *testing.M) {
	if os.Getenv(roleVar) == "smtpd" {
		main()
	}
	os.Exit(m.Run())
}

// scenario is one run of the program: what the client sends before and
// after STARTTLS, and what the fake TLS worker on the control fd answers.
type scenario struct {
	name    string
	args    []string // default: the one name "mx.test"
	env     []string
	ctl     bool   // hand over SSLCTLFD, SSLREADFD and SSLWRITEFD
	block   string // written after the command byte, then ctl is closed
	plainIn string
	tlsIn   string
	want    outcome
}

type outcome struct {
	plainOut, tlsOut string
	stderr           string // must be contained in stderr
	code             int
	cmd              string // what the program wrote on the control fd
}

// crlf joins SMTP lines the way they travel.
func crlf(lines ...string) string {
	return strings.Join(lines, "\r\n") + "\r\n"
}

const (
	okBlock   = "SSL_PROTOCOL=TLSv1.3\x00SSL_CIPHER=TLS_AES_128_GCM_SHA256\x00\x00"
	greeting  = "220 mx.test ESMTP ucspitls-smtpd"
	tlsLogMsg = "ucspitls-smtpd: tls on: TLSv1.3 TLS_AES_128_GCM_SHA256\n"
)

var ehloTLS = []string{"250-mx.test", "250-PIPELINING", "250-8BITMIME", "250 STARTTLS"}
var ehloPlain = []string{"250-mx.test", "250-PIPELINING", "250 8BITMIME"}

func lines(groups ...[]string) string {
	var all []string
	for _, g := range groups {
		all = append(all, g...)
	}
	return crlf(all...)
}

var scenarios = []scenario{
	{
		name:    "plaintext message without SSLCTLFD",
		plainIn: crlf("EHLO c", "MAIL FROM:<a@x>", "RCPT TO:<b@y>", "DATA", "hello", "..dot", ".", "QUIT"),
		want: outcome{plainOut: lines([]string{greeting}, ehloPlain, []string{
			"250 ok", "250 ok", "354 end data with <CR><LF>.<CR><LF>",
			"250 ok 13 bytes received over plaintext", "221 mx.test closing"})},
	},
	{
		name:    "EHLO offers STARTTLS when SSLCTLFD is set",
		ctl:     true,
		plainIn: crlf("EHLO c", "QUIT"),
		want:    outcome{plainOut: lines([]string{greeting}, ehloTLS, []string{"221 mx.test closing"})},
	},
	{
		name:    "message over TLS after STARTTLS",
		ctl:     true,
		block:   okBlock,
		plainIn: crlf("EHLO c", "STARTTLS"),
		tlsIn:   crlf("EHLO c", "MAIL FROM:<a@x>", "RCPT TO:<b@y>", "DATA", "hello", ".", "QUIT"),
		want: outcome{
			plainOut: lines([]string{greeting}, ehloTLS, []string{"220 ready to start TLS"}),
			tlsOut: lines(ehloPlain, []string{"250 ok", "250 ok", "354 end data with <CR><LF>.<CR><LF>",
				"250 ok 7 bytes received over TLSv1.3 TLS_AES_128_GCM_SHA256", "221 mx.test closing"}),
			stderr: tlsLogMsg,
			cmd:    "Y",
		},
	},
	{
		name:    "commands pipelined after STARTTLS are discarded",
		ctl:     true,
		block:   okBlock,
		plainIn: crlf("EHLO c", "STARTTLS", "EHLO evil", "MAIL FROM:<evil@x>", "NOOP"),
		tlsIn:   crlf("MAIL FROM:<a@x>", "QUIT"),
		want: outcome{
			plainOut: lines([]string{greeting}, ehloTLS, []string{"220 ready to start TLS"}),
			tlsOut:   crlf("503 send EHLO or HELO first", "221 mx.test closing"),
			stderr:   tlsLogMsg,
			cmd:      "Y",
		},
	},
	{
		name:    "STARTTLS forgets the EHLO and the transaction",
		ctl:     true,
		block:   okBlock,
		plainIn: crlf("EHLO c", "MAIL FROM:<a@x>", "STARTTLS"),
		tlsIn:   crlf("RCPT TO:<b@y>", "HELO c", "RCPT TO:<b@y>", "QUIT"),
		want: outcome{
			plainOut: lines([]string{greeting}, ehloTLS, []string{"250 ok", "220 ready to start TLS"}),
			tlsOut:   crlf("503 send MAIL first", "250 mx.test", "503 send MAIL first", "221 mx.test closing"),
			stderr:   tlsLogMsg,
			cmd:      "Y",
		},
	},
	{
		name:    "EOF on the control fd inside the block is a failed handshake",
		ctl:     true,
		block:   "SSL_PROTOCOL=TLSv1.3\x00",
		plainIn: crlf("EHLO c", "STARTTLS"),
		tlsIn:   crlf("QUIT"),
		want: outcome{
			plainOut: lines([]string{greeting}, ehloTLS, []string{"220 ready to start TLS"}),
			stderr:   "ucspitls-smtpd: fatal: starting TLS: ",
			code:     protocol.ExitTemp,
			cmd:      "Y",
		},
	},
	{
		name:    "control fd closed without a reply is a failed handshake",
		ctl:     true,
		plainIn: crlf("STARTTLS"),
		tlsIn:   crlf("QUIT"),
		want: outcome{
			plainOut: crlf(greeting, "220 ready to start TLS"),
			stderr:   "ucspitls-smtpd: fatal: starting TLS: ",
			code:     protocol.ExitTemp,
			cmd:      "Y",
		},
	},
	{
		name:    "a malformed reply block is a failed handshake",
		ctl:     true,
		block:   "no equals sign\x00\x00",
		plainIn: crlf("STARTTLS"),
		want: outcome{
			plainOut: crlf(greeting, "220 ready to start TLS"),
			stderr:   "ucspitls-smtpd: fatal: starting TLS: ",
			code:     protocol.ExitTemp,
			cmd:      "Y",
		},
	},
	{
		name:    "UCSPITLS=! refuses MAIL until TLS is on",
		env:     []string{"UCSPITLS=!"},
		ctl:     true,
		block:   okBlock,
		plainIn: crlf("HELO c", "MAIL FROM:<a@x>", "STARTTLS"),
		tlsIn:   crlf("HELO c", "MAIL FROM:<a@x>", "STARTTLS", "QUIT"),
		want: outcome{
			plainOut: crlf(greeting, "250 mx.test", "530 must issue a STARTTLS command first", "220 ready to start TLS"),
			tlsOut:   crlf("250 mx.test", "250 ok", "503 TLS already active", "221 mx.test closing"),
			stderr:   tlsLogMsg,
			cmd:      "Y",
		},
	},
	{
		name:    "STARTTLS without SSLCTLFD is not implemented",
		plainIn: crlf("STARTTLS", "QUIT"),
		want:    outcome{plainOut: crlf(greeting, "502 unimplemented", "221 mx.test closing")},
	},
	{
		name:    "TLS already on from the environment",
		env:     []string{"SSL_PROTOCOL=TLSv1.2", "SSL_CIPHER=ECDHE-ECDSA-AES256-GCM-SHA384"},
		ctl:     true,
		plainIn: crlf("EHLO c", "STARTTLS", "MAIL FROM:<a@x>", "RCPT TO:<b@y>", "DATA", "x", ".", "QUIT"),
		want: outcome{plainOut: lines([]string{greeting}, ehloPlain, []string{"503 TLS already active",
			"250 ok", "250 ok", "354 end data with <CR><LF>.<CR><LF>",
			"250 ok 3 bytes received over TLSv1.2 ECDHE-ECDSA-AES256-GCM-SHA384", "221 mx.test closing"})},
	},
	{
		name:    "out of sequence and unknown commands",
		plainIn: crlf("MAIL FROM:<a@x>", "HELO", "HELO c", "RCPT TO:<b@y>", "DATA", "MAIL TO:<a@x>", "MAIL FROM:<a@x>", "MAIL FROM:<a@x>", "RCPT FROM:<b>", "DATA", "RSET", "RCPT TO:<b@y>", "VRFY x", "noop", "quit"),
		want: outcome{plainOut: crlf(greeting, "503 send EHLO or HELO first", "501 HELO needs a domain", "250 mx.test",
			"503 send MAIL first", "503 send RCPT first", "501 syntax: MAIL FROM:<address>", "250 ok",
			"503 nested MAIL command", "501 syntax: RCPT TO:<address>", "503 send RCPT first", "250 ok",
			"503 send MAIL first", "502 unimplemented", "250 ok", "221 mx.test closing")},
	},
	{
		name: "over-long lines are refused and the session goes on",
		plainIn: crlf("NOOP "+strings.Repeat("x", maxLine-len("NOOP \r\n")), "NOOP "+strings.Repeat("x", maxLine), "HELO c",
			"MAIL FROM:<a@x>", "RCPT TO:<b@y>", "DATA", strings.Repeat("y", maxLine), "z", ".", "QUIT"),
		want: outcome{plainOut: crlf(greeting, "250 ok", "500 line too long", "250 mx.test", "250 ok", "250 ok",
			"354 end data with <CR><LF>.<CR><LF>", "500 line too long", "221 mx.test closing")},
	},
	{
		name:    "client EOF in the middle of DATA ends the session",
		plainIn: crlf("HELO c", "MAIL FROM:<a@x>", "RCPT TO:<b@y>", "DATA", "partial"),
		want: outcome{plainOut: crlf(greeting, "250 mx.test", "250 ok", "250 ok",
			"354 end data with <CR><LF>.<CR><LF>")},
	},
	{
		name: "--help prints the help on stdout and exits 0",
		args: []string{"--help"},
		want: outcome{plainOut: help},
	},
	{
		name: "-h prints the help too",
		args: []string{"-h"},
		want: outcome{plainOut: help},
	},
	{
		name: "two arguments are a usage error",
		args: []string{"a", "b"},
		want: outcome{stderr: "usage", code: protocol.ExitUsage},
	},
	{
		name: "SSLCTLFD below 3 is refused",
		env:  []string{"SSLCTLFD=0", "SSLREADFD=4", "SSLWRITEFD=5"},
		want: outcome{stderr: `$SSLCTLFD is "0"`, code: protocol.ExitUsage},
	},
	{
		name: "SSLCTLFD without SSLREADFD is refused",
		env:  []string{"SSLCTLFD=3", "SSLWRITEFD=5"},
		want: outcome{stderr: `$SSLREADFD is ""`, code: protocol.ExitUsage},
	},
}

func TestScenarios(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			got := runScenario(t, sc)
			checkOutcome(t, got, sc.want)
		})
	}
}

func checkOutcome(t *testing.T, got, want outcome) {
	t.Helper()
	if got.code != want.code {
		t.Errorf("exit code %d, want %d; stderr: %q", got.code, want.code, got.stderr)
	}
	if got.plainOut != want.plainOut {
		t.Errorf("plaintext replies:\n%q\nwant\n%q", got.plainOut, want.plainOut)
	}
	if got.tlsOut != want.tlsOut {
		t.Errorf("replies over TLS:\n%q\nwant\n%q", got.tlsOut, want.tlsOut)
	}
	if !strings.Contains(got.stderr, want.stderr) || want.stderr == "" && got.stderr != "" {
		t.Errorf("stderr %q, want it to contain %q", got.stderr, want.stderr)
	}
	if got.cmd != want.cmd {
		t.Errorf("control fd got %q, want %q", got.cmd, want.cmd)
	}
}

// runScenario runs the program with its fds wired as sslserver -n wires
// them (fd map: 0 and 1 the plaintext connection, 3 the control socket,
// 4 the decrypted input, 5 the output to encrypt) and a fake TLS worker
// on the far end of the control socket.
func runScenario(t *testing.T, sc scenario) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args := sc.args
	if args == nil {
		args = []string{"mx.test"}
	}
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	// Without the race detector's one-second pause at exit, the cases
	// take milliseconds instead of seconds under -race.
	cmd.Env = append([]string{roleVar + "=smtpd", "GORACE=atexit_sleep_ms=0"}, sc.env...)
	cmd.Stdin = strings.NewReader(sc.plainIn)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr

	var w *worker
	if sc.ctl {
		w = newWorker(t, cmd, sc.tlsIn)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the program: %v", err)
	}
	var done chan string
	if w != nil {
		done = w.run(sc.block)
	}
	err := cmd.Wait()
	got := outcome{plainOut: stdout.String(), stderr: stderr.String(), code: exitCode(t, err)}
	if w != nil {
		got.cmd = <-done
		got.tlsOut = w.output(t)
	}
	return got
}

func exitCode(t *testing.T, err error) int {
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	t.Fatalf("waiting for the program: %v", err)
	return -1
}

// worker stands in for sslserver's TLS worker: it holds the far ends of
// the control socket and of the two plaintext pipes.
type worker struct {
	ctl     *os.File
	fromApp *os.File
	childFD []*os.File // closed here once the program has them
}

func newWorker(t *testing.T, cmd *exec.Cmd, tlsIn string) *worker {
	pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	toAppR, toAppW := mustPipe(t)
	fromAppR, fromAppW := mustPipe(t)
	// The whole decrypted input fits in the pipe, so it can wait there.
	if _, err := io.WriteString(toAppW, tlsIn); err != nil {
		t.Fatalf("writing the TLS input: %v", err)
	}
	toAppW.Close()
	w := &worker{ctl: os.NewFile(uintptr(pair[0]), "ctl"), fromApp: fromAppR}
	w.childFD = []*os.File{os.NewFile(uintptr(pair[1]), "ctl-child"), toAppR, fromAppW}
	cmd.ExtraFiles = w.childFD
	cmd.Env = append(cmd.Env,
		"SSLCTLFD="+strconv.Itoa(protocol.ProgramFdCtl),
		"SSLREADFD="+strconv.Itoa(protocol.ProgramFdRead),
		"SSLWRITEFD="+strconv.Itoa(protocol.ProgramFdWrite))
	return w
}

func mustPipe(t *testing.T) (*os.File, *os.File) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatalf("pipe: %v", err)
	}
	return r, w
}

// run closes the program's ends and answers one command on the control
// fd; the channel gets the command, or "" if the program sent none.
func (w *worker) run(block string) chan string {
	for _, f := range w.childFD {
		f.Close()
	}
	done := make(chan string, 1)
	go answerControl(w.ctl, block, done)
	return done
}

func answerControl(ctl *os.File, block string, done chan<- string) {
	defer ctl.Close()
	var cmd [1]byte
	if n, _ := ctl.Read(cmd[:]); n == 0 {
		done <- ""
		return
	}
	io.WriteString(ctl, block)
	done <- string(cmd[:])
}

func (w *worker) output(t *testing.T) string {
	defer w.fromApp.Close()
	out, err := io.ReadAll(w.fromApp)
	if err != nil {
		t.Fatalf("reading the program's TLS output: %v", err)
	}
	return string(out)
}

func TestReadLineLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		err  error
	}{
		{in: strings.Repeat("a", maxLine-2) + "\r\n", want: strings.Repeat("a", maxLine-2)},
		{in: strings.Repeat("a", maxLine-1) + "\n", want: strings.Repeat("a", maxLine-1)},
		{in: strings.Repeat("a", maxLine-1) + "\r\n", err: errLineTooLong},
		{in: strings.Repeat("a", 5*maxLine) + "\r\n", err: errLineTooLong},
		{in: "no newline", err: io.EOF},
	} {
		// A small buffer makes long lines arrive in several chunks.
		got, err := readLine(bufio.NewReaderSize(strings.NewReader(tc.in), 16))
		if got != tc.want || !errors.Is(err, tc.err) && err != tc.err {
			t.Errorf("readLine(%d bytes) = %q, %v; want %q, %v", len(tc.in), got, err, tc.want, tc.err)
		}
	}
}

func TestReadMessageCountsUnstuffedBytes(t *testing.T) {
	in := "a\r\n..b\nc\r\n.\r\nafter\r\n"
	r := bufio.NewReader(strings.NewReader(in))
	n, err := readMessage(r)
	if err != nil || n != len("a\r\n.b\r\nc\r\n") {
		t.Fatalf("readMessage = %d, %v; want %d", n, err, len("a\r\n.b\r\nc\r\n"))
	}
	if rest, _ := readLine(r); rest != "after" {
		t.Errorf("after the dot the next line is %q, want %q", rest, "after")
	}
}

// FuzzSession feeds arbitrary client bytes to a plaintext session: it must
// end cleanly and answer only with well-formed reply lines.
func FuzzSession(f *testing.F) {
	f.Add([]byte(crlf("EHLO c", "MAIL FROM:<a>", "RCPT TO:<b>", "DATA", "..x", ".", "QUIT")))
	f.Add([]byte("HELO c\nSTARTTLS\r\nDATA\r\n" + strings.Repeat("z", 3000) + "\n.\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		s := newPlainSession("mx.test", bytes.NewReader(in), &out, io.Discard)
		if err := s.serve(); err != nil {
			t.Fatalf("serve: %v", err)
		}
		checkReplies(t, out.String())
	})
}

func checkReplies(t *testing.T, out string) {
	if !strings.HasPrefix(out, greeting+"\r\n") {
		t.Fatalf("output does not start with the greeting: %q", out)
	}
	for _, l := range strings.SplitAfter(out, "\r\n") {
		if l == "" {
			continue
		}
		if len(l) < 6 || !strings.HasSuffix(l, "\r\n") || strings.ContainsAny(l[:len(l)-2], "\r\n") ||
			strings.Trim(l[:3], "0123456789") != "" || l[3] != ' ' && l[3] != '-' {
			t.Fatalf("malformed reply line %q", l)
		}
	}
}
