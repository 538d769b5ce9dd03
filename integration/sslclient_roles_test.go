package integration

// Helper roles for sslclient: sslclient runs this test binary as its
// program (see roles_test.go for how roles run). A client program reads
// the server on fd 6 and writes to it on fd 7; under sslclient -y those
// are the TCP connection until the program turns TLS on through
// $SSLCTLFD and moves $SSLREADFD and $SSLWRITEFD onto 6 and 7. Its fds 0
// and 1 are sslclient's, so a role reports to the test on stdout.

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
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/protocol"
)

// The client program's descriptors, as the contract states them.
const (
	clientReadFD  = 6
	clientWriteFD = 7
)

func init() {
	roles["cconnect"] = roleClientConnect
	roles["csha"] = roleClientSHA
	roles["csmtp"] = roleClientSMTP
	roles["cytls"] = roleClientYTLS
	roles["cy"] = roleClientY
	roles["chold"] = roleClientHold
}

// cfail reports a client role's error on stdout, where the test reads it.
func cfail(format string, args ...any) int {
	writeString(1, "ERR "+fmt.Sprintf(format, args...)+"\n")
	return 1
}

// roleClientConnect copies stdin to the server, then half-closes, and
// copies what the server sends to stdout until it ends.
func roleClientConnect() int {
	signal.Ignore(syscall.SIGPIPE)
	sent := make(chan error, 1)
	go sendAndClose(clientWriteFD, rawFD(0), sent)
	_, err := io.Copy(rawFD(1), rawFD(clientReadFD))
	if serr := <-sent; serr != nil {
		return cfail("sending: %v", serr)
	}
	if err != nil {
		return cfail("receiving: %v", err)
	}
	return 0
}

// sendAndClose copies r to fd and closes fd: the server sees EOF.
func sendAndClose(fd int, r io.Reader, done chan<- error) {
	_, err := io.Copy(rawFD(fd), r)
	if cerr := syscall.Close(fd); err == nil {
		err = cerr
	}
	done <- err
}

// clientSwitchFDs moves $SSLREADFD and $SSLWRITEFD onto 6 and 7, which
// closes the program's copies of the raw connection.
func clientSwitchFDs() error {
	for _, m := range []struct {
		name     string
		from, to int
	}{{"SSLREADFD", readFD, clientReadFD}, {"SSLWRITEFD", writeFD, clientWriteFD}} {
		if got := os.Getenv(m.name); got != strconv.Itoa(m.from) {
			return fmt.Errorf("%s is %q, want %d", m.name, got, m.from)
		}
		if err := syscall.Dup3(m.from, m.to, 0); err != nil {
			return err
		}
		if err := syscall.Close(m.from); err != nil {
			return err
		}
	}
	return nil
}

// clientGoTLS starts TLS with y at once when running under -y.
func clientGoTLS() error {
	if os.Getenv("SSLCTLFD") == "" {
		return nil
	}
	if reply, err := startTLS('y'); err != nil || len(reply) != 0 {
		return fmt.Errorf("y: reply %q, %v", reply, err)
	}
	return clientSwitchFDs()
}

// roleClientSHA writes $ITEST_N random bytes to the server and then
// half-closes, while reading everything the server sends; it reports
// "RECEIVED sha256-of-the-first-N-bytes REST quoted-rest SENT sha256".
func roleClientSHA() int {
	n, err := strconv.Atoi(os.Getenv("ITEST_N"))
	if err != nil {
		return cfail("ITEST_N: %v", err)
	}
	if err := clientGoTLS(); err != nil {
		return cfail("%v", err)
	}
	signal.Ignore(syscall.SIGPIPE)
	wrote := make(chan []byte, 1)
	go writeRandomFD(clientWriteFD, n, wrote)
	got, err := io.ReadAll(rawFD(clientReadFD))
	if err != nil {
		return cfail("reading after %d bytes: %v", len(got), err)
	}
	sent := <-wrote
	if sent == nil || len(got) < n {
		return cfail("sent %x, received %d bytes of %d", sent, len(got), n)
	}
	sum := sha256.Sum256(got[:n])
	return reportLine(fmt.Sprintf("RECEIVED %x REST %q SENT %x\n", sum, got[n:], sent))
}

func reportLine(s string) int {
	if err := writeString(1, s); err != nil {
		return 1
	}
	return 0
}

// writeRandomFD sends n pseudo-random bytes to fd, closes it, and sends
// their sha256 (nil on error) to sum.
func writeRandomFD(fd, n int, sum chan<- []byte) {
	var seed [32]byte
	rand.Read(seed[:])
	src := mrand.NewChaCha8(seed)
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for n > 0 {
		chunk := buf[:min(n, len(buf))]
		src.Read(chunk)
		h.Write(chunk)
		if _, err := rawFD(fd).Write(chunk); err != nil {
			sum <- nil
			return
		}
		n -= len(chunk)
	}
	if syscall.Close(fd) != nil {
		sum <- nil
		return
	}
	sum <- h.Sum(nil)
}

// smtpClient is the SMTP side of the csmtp role, with a transcript.
type smtpClient struct {
	transcript strings.Builder
}

func (c *smtpClient) send(line string) error {
	fmt.Fprintf(&c.transcript, "C: %s\n", line)
	return writeString(clientWriteFD, line+"\r\n")
}

// reply reads one (multi-line) reply and checks its code.
func (c *smtpClient) reply(code string) (string, error) {
	var all strings.Builder
	for {
		line, err := readLineRaw(clientReadFD)
		fmt.Fprintf(&c.transcript, "S: %s", line)
		all.WriteString(line)
		if err != nil {
			return all.String(), fmt.Errorf("reading a %s reply: %w", code, err)
		}
		if !strings.HasPrefix(line, code) {
			return all.String(), fmt.Errorf("reply %q, want %s", line, code)
		}
		if len(line) < 4 || line[3] != '-' {
			return all.String(), nil
		}
	}
}

func (c *smtpClient) command(line, code string) (string, error) {
	if err := c.send(line); err != nil {
		return "", err
	}
	return c.reply(code)
}

// roleClientSMTP sends one message over STARTTLS, as an MTA's client
// under sslclient -y would: greeting, EHLO, STARTTLS, then the project's
// Go helper (protocol.AppFromEnv and StartTLS) to switch, then EHLO
// again and the message with $ITEST_TOKEN in a header. It prints the
// transcript and what the reply block said of the server.
func roleClientSMTP() int {
	c := &smtpClient{}
	vars, err := c.session(os.Getenv("ITEST_TOKEN"))
	os.Stdout.WriteString(c.transcript.String())
	if err != nil {
		return cfail("%v", err)
	}
	for _, v := range vars {
		if v.Name == "SSL_SERVER_VERIFY" || v.Name == "SSL_PROTOCOL" || v.Name == "SSL_SERVER_S_DN_CN" {
			fmt.Printf("VAR %s=%s\n", v.Name, v.Value)
		}
	}
	return 0
}

func (c *smtpClient) session(token string) ([]protocol.Var, error) {
	if _, err := c.reply("220"); err != nil {
		return nil, err
	}
	ehlo, err := c.command("EHLO client.example", "250")
	if err != nil {
		return nil, err
	}
	if !strings.Contains(ehlo, "STARTTLS") {
		return nil, errors.New("the server does not offer STARTTLS")
	}
	if _, err := c.command("STARTTLS", "220"); err != nil {
		return nil, err
	}
	vars, err := switchToTLS()
	if err != nil {
		return nil, err
	}
	c.transcript.WriteString("=== TLS\n")
	return vars, c.message(token)
}

// switchToTLS is the three lines an application needs.
func switchToTLS() ([]protocol.Var, error) {
	app, err := protocol.AppFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	vars, err := app.StartTLS(true)
	if err != nil {
		return nil, err
	}
	return vars, app.MoveTo(clientReadFD, clientWriteFD)
}

func (c *smtpClient) message(token string) error {
	steps := [][2]string{
		{"EHLO client.example", "250"}, {"MAIL FROM:<a@client.example>", "250"},
		{"RCPT TO:<b@mx.example.org>", "250"}, {"DATA", "354"},
	}
	for _, s := range steps {
		if _, err := c.command(s[0], s[1]); err != nil {
			return err
		}
	}
	for _, line := range []string{"X-Itest: " + token, "Subject: sslclient", "", "body"} {
		if err := c.send(line); err != nil {
			return err
		}
	}
	if _, err := c.command(".", "250"); err != nil {
		return err
	}
	_, err := c.command("QUIT", "221")
	return err
}

// roleClientYTLS talks to the server's ytls role: a plaintext line and
// its "GO", then Y, then inside TLS the server's report up to END and an
// echo. It prints "CLIENT NAME=value" for the block it got and "SERVER
// line" for the server's report.
func roleClientYTLS() int {
	// The program owns the connection until its command, as it was made:
	// blocking, as C programs such as qmail-remote expect.
	if fl, err := unix.FcntlInt(clientReadFD, unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
		return cfail("fd 6 flags %#o, %v: non-blocking before the command", fl, err)
	}
	if err := writeString(clientWriteFD, "hello before TLS\n"); err != nil {
		return cfail("%v", err)
	}
	if line, err := readLineRaw(clientReadFD); err != nil || line != "GO\n" {
		return cfail("plaintext answer %q, %v", line, err)
	}
	reply, err := startTLS('Y')
	if err != nil {
		return cfail("Y: %v", err)
	}
	vars, err := parseBlock(reply)
	if err != nil {
		return cfail("block %q: %v", reply, err)
	}
	if err := clientSwitchFDs(); err != nil {
		return cfail("%v", err)
	}
	var out bytes.Buffer
	for _, kv := range vars {
		fmt.Fprintf(&out, "CLIENT %s\n", kv)
	}
	if err := serverReport(&out); err != nil {
		return cfail("%v", err)
	}
	if err := echoCheck("ping inside TLS\n"); err != nil {
		return cfail("%v", err)
	}
	return reportLine(out.String())
}

func serverReport(out *bytes.Buffer) error {
	for {
		line, err := readLineRaw(clientReadFD)
		if err != nil {
			return fmt.Errorf("server report: %q, %v", line, err)
		}
		if line == "END\n" {
			return nil
		}
		fmt.Fprintf(out, "SERVER %s", line)
	}
}

// echoCheck sends line to an echoing server and expects it back, then
// half-closes and expects EOF.
func echoCheck(line string) error {
	if err := writeString(clientWriteFD, line); err != nil {
		return err
	}
	if got, err := readLineRaw(clientReadFD); err != nil || got != line {
		return fmt.Errorf("echo %q, %v; want %q", got, err, line)
	}
	syscall.Close(clientWriteFD)
	if rest, err := io.ReadAll(rawFD(clientReadFD)); err != nil || len(rest) > 0 {
		return fmt.Errorf("after the half-close: %q, %v; want EOF", rest, err)
	}
	return nil
}

// roleClientY starts TLS with y at once, then copies as cconnect does.
// When TLS fails it exits 3 without a word: sslclient reports.
func roleClientY() int {
	if err := clientGoTLS(); err != nil {
		return 3
	}
	return roleClientConnect()
}

// roleClientHold says "READY pid" on stdout and waits for EOF on stdin,
// holding the session open.
func roleClientHold() int {
	if err := reportLine(fmt.Sprintf("READY %d\n", os.Getpid())); err != 0 {
		return err
	}
	io.Copy(io.Discard, rawFD(0))
	return 0
}
