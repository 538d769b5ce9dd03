package integration

// Real clients against real UCSPI-TLS applications: openssl s_client and
// swaks, ucspitls-smtpd and Debian's mailfront.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// sClient starts openssl s_client verifying the server's certificate and
// name; -quiet -no_ign_eof: only the server's data on stdout, and EOF on
// stdin ends it; -nocommands: a line starting with R or Q is data.
func (s *server) sClient(t testing.TB, extra ...string) *lineProc {
	t.Helper()
	openssl := needTool(t, "openssl")
	args := []string{"s_client", "-quiet", "-no_ign_eof", "-nocommands", "-crlf", "-connect", s.addr,
		"-CAfile", s.cert.certPath, "-verify_return_error", "-verify_hostname", serverName,
		"-servername", serverName}
	return startLineProc(t, openssl, append(args, extra...)...)
}

// smtpdCommand runs the demo application, offering STARTTLS.
func smtpdCommand(t testing.TB) []string {
	t.Helper()
	needRoot(t)
	return []string{"/usr/bin/env", "UCSPITLS=", binary(t, "ucspitls-smtpd"), serverName}
}

// onlySession returns the pid of the one session a server has had.
func (s *server) onlySession(t testing.TB) int {
	t.Helper()
	pid, _ := strconv.Atoi(s.waitLog(t, regexp.MustCompile(`^sslserver: pid (\d+) from 127\.0\.0\.1$`))[1])
	return pid
}

// The demo application under -n, reached by openssl's STARTTLS support.
func TestOpenSSLStartTLSSMTP(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{flags: []string{"-n"},
		program: smtpdCommand(t)})
	p := s.sClient(t, "-starttls", "smtp", "-name", "client.example")
	p.send("EHLO client.example")
	p.expect(`^250 `)
	for _, cmd := range []string{"MAIL FROM:<a@client.example>", "RCPT TO:<b@mx.example.org>"} {
		p.send(cmd)
		p.expect(`^250 `)
	}
	p.send("DATA")
	p.expect(`^354 `)
	for _, line := range []string{"Subject: itest", "", "hello", ".."} {
		p.send(line)
	}
	p.send(".")
	// 16+2+7+3 bytes: CRLF line ends, the dot unstuffed.
	p.expect(`^250 ok 28 bytes received over TLSv1\.3 TLS_\w+`)
	p.send("QUIT")
	p.expect(`^221 `)
	if err := p.wait(); err != nil {
		t.Errorf("s_client: %v", err)
	}
	pid := s.onlySession(t)
	s.waitLog(t, regexp.MustCompile(`^sslserver: tls `+strconv.Itoa(pid)+` accept TLSv1\.3:TLS_\w+$`))
	if status := s.waitEnd(t, pid); status != 0 {
		t.Errorf("session ended with status %d, want 0", status)
	}
}

// Implicit TLS (-N) with every key type and both protocol versions, as
// openssl negotiates them; the -V log line names what was chosen.
func TestOpenSSLImplicitTLS(t *testing.T) {
	const tls13 = `TLSv1\.3:TLS_(AES_128_GCM_SHA256|AES_256_GCM_SHA384|CHACHA20_POLY1305_SHA256)`
	for _, tc := range []struct {
		key     keyKind
		version string
		logged  string // PROTO:CIPHER in the tls line
	}{
		{keyECDSA, "-tls1_3", tls13},
		{keyECDSA, "-tls1_2", `TLSv1\.2:ECDHE-ECDSA-(AES128|AES256|CHACHA20)\S*`},
		{keyRSA, "-tls1_3", tls13},
		{keyRSA, "-tls1_2", `TLSv1\.2:ECDHE-RSA-(AES128|AES256|CHACHA20)\S*`},
		{keyEd25519, "-tls1_3", tls13},
		{keyEd25519, "-tls1_2", `TLSv1\.2:ECDHE-ECDSA-(AES128|AES256|CHACHA20)\S*`},
	} {
		t.Run(string(tc.key)+tc.version, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, serverConfig{cert: newCert(t, tc.key), role: "echo"})
			p := s.sClient(t, tc.version)
			p.send("ping " + t.Name())
			p.expect(`^ping ` + regexp.QuoteMeta(t.Name()) + `$`)
			if err := p.wait(); err != nil {
				t.Errorf("s_client: %v", err)
			}
			pid := s.onlySession(t)
			s.waitLog(t, regexp.MustCompile(`^sslserver: tls `+strconv.Itoa(pid)+` accept `+tc.logged+`$`))
			if status := s.waitEnd(t, pid); status != 0 {
				t.Errorf("session ended with status %d, want 0", status)
			}
		})
	}
}

// A TLS 1.1 client is refused: the handshake fails and the session ends
// with the warning and status 111.
func TestTLS11Refused(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{role: "echo"})
	// SECLEVEL=0 makes OpenSSL 3 offer TLS 1.1 at all.
	p := s.sClient(t, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
	if err := p.wait(); err == nil {
		t.Errorf("s_client -tls1_1 succeeded; output:\n%s", p.output())
	}
	pid := s.onlySession(t)
	s.waitLog(t, regexp.MustCompile(`^sslserver: warning: dropping connection from 127\.0\.0\.1, unable to accept TLS: .+`))
	if status := s.waitEnd(t, pid); status != 111 {
		t.Errorf("session ended with status %d, want 111", status)
	}
	s.goodSession(t, "after TLS 1.1")
}

// Debian's mailfront, unmodified, takes a message from swaks over
// STARTTLS; its echo backend writes the message to stderr, which is
// sslserver's log.
func TestSwaksMailfront(t *testing.T) {
	t.Parallel()
	swaks := needTool(t, "swaks")
	front := "/usr/sbin/smtpfront-echo"
	if _, err := os.Stat(front); err != nil {
		missing(t, front+" (Debian package mailfront)")
	}
	s := startServer(t, serverConfig{flags: []string{"-n"},
		program: []string{"/usr/bin/env", "UCSPITLS=", "PLUGINS=starttls-ucspi:accept", front}})
	token := randomToken(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	out, err := exec.CommandContext(ctx, swaks, "--server", "127.0.0.1", "--port", strconv.Itoa(s.port),
		"--tls", "--helo", "client.example", "--from", "a@client.example", "--to", "b@mx.example.org",
		"--data", `X-Itest: `+token+`\nSubject: itest\n\nbody\n`, "--timeout", "10").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	transcript := string(out)
	for _, want := range []string{`(?m)^=== TLS started`, `(?m)^ ~> \.\r?\n<~  250 `} {
		if !regexp.MustCompile(want).MatchString(transcript) {
			t.Errorf("swaks transcript lacks %q:\n%s", want, transcript)
		}
	}
	s.waitLog(t, regexp.MustCompile(`X-Itest: `+token))
	if status := s.waitEnd(t, s.onlySession(t)); status != 0 {
		t.Errorf("session ended with status %d, want 0", status)
	}
}

func randomToken(t testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// CVE-2011-0411: bytes pipelined after STARTTLS belong to the program on
// fd 0; the TLS side must not read them. The inject role reports what it
// read; ucspitls-smtpd must discard them, so the first reply inside TLS
// answers the first command sent inside TLS.
func TestPipelinedAfterSTARTTLS(t *testing.T) {
	t.Run("role", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, serverConfig{flags: []string{"-n"}, role: "inject"})
		raw := s.dialTCP(t)
		io.WriteString(raw, "STARTTLS\r\nRSET\r\n")
		expectLine(t, bufio.NewReader(raw), "220 ready\r\n")
		tc := s.startTLS(t, raw, nil)
		expectLine(t, bufio.NewReader(tc), "PRE \"RSET\\r\\n\"\n")
		echoRoundTrip(t, tc, "after injection")
	})
	t.Run("ucspitls-smtpd", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, serverConfig{flags: []string{"-n"},
			program: smtpdCommand(t)})
		raw := s.dialTCP(t)
		plain := bufio.NewReader(raw)
		readReply(t, plain, "220")
		io.WriteString(raw, "EHLO client.example\r\n")
		readReply(t, plain, "250")
		io.WriteString(raw, "STARTTLS\r\nRSET\r\n")
		readReply(t, plain, "220")
		if plain.Buffered() != 0 {
			t.Fatalf("plaintext after the 220 to STARTTLS: %d bytes", plain.Buffered())
		}
		tc := s.startTLS(t, raw, nil)
		r := bufio.NewReader(tc)
		io.WriteString(tc, "MAIL FROM:<a@client.example>\r\n")
		readReply(t, r, "503") // the EHLO before TLS is forgotten, and no 250 for RSET
		io.WriteString(tc, "QUIT\r\n")
		readReply(t, r, "221")
	})
}

// readReply reads one SMTP reply, all its lines, and checks its code.
func readReply(t testing.TB, r *bufio.Reader, code string) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading a %s reply: got %q, %v", code, line, err)
		}
		if !strings.HasPrefix(line, code) {
			t.Fatalf("reply %q, want code %s", line, code)
		}
		if len(line) < 4 || line[3] != '-' {
			return
		}
	}
}
