package integration

// Shared by the sslclient tests: running sslclient, certificates from a
// test CA (valid, expired, for another name), and openssl s_server.

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// clientRun describes one sslclient run.
type clientRun struct {
	args    []string // options, host and port
	role    string   // the program: this test binary in a role...
	roleEnv []string
	program []string // ...or any other program
	env     []string // NAME=value for sslclient, beyond the test's environment
	stdin   string
	extra   []*os.File          // sslclient's fds 3, 4, ...
	cred    *syscall.Credential // run sslclient as another user
}

// clientResult is how an sslclient run ended.
type clientResult struct {
	code           int
	stdout, stderr string
	elapsed        time.Duration
}

// clientProc is a running sslclient; cleanup kills its process group.
type clientProc struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *outputBuffer
	stderr *outputBuffer
	start  time.Time
	done   chan struct{}
	err    error
}

func startClient(t testing.TB, r clientRun) *clientProc {
	t.Helper()
	args := append([]string{}, r.args...)
	if r.program != nil {
		args = append(args, r.program...)
	} else {
		args = append(args, roleCommand(r.role, r.roleEnv...)...)
	}
	p := &clientProc{t: t, cmd: exec.Command(binary(t, "sslclient"), args...),
		stdout: newOutputBuffer(), stderr: newOutputBuffer(), done: make(chan struct{})}
	p.cmd.Env = append(clientBaseEnv(), r.env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.ExtraFiles = r.extra
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: r.cred}
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = stdin
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting sslclient: %v", err)
	}
	t.Cleanup(p.kill)
	go p.wait()
	if r.stdin != "" {
		io.WriteString(stdin, r.stdin)
	}
	return p
}

// clientBaseEnv is the test's environment without the TLS settings and
// session variables a caller might have, so sslclient sees only the
// test's.
func clientBaseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); !isServerOnly(name) && !isSessionVar(name) && name != "CERTFILE" {
			env = append(env, kv)
		}
	}
	return env
}

func (p *clientProc) wait() {
	p.err = p.cmd.Wait()
	close(p.done)
}

func (p *clientProc) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	if p.t.Failed() {
		p.t.Logf("sslclient %q\nstdout:\n%s\nstderr:\n%s", p.cmd.Args, p.stdout.String(), p.stderr.String())
	}
}

// finish closes stdin and waits (bounded) for sslclient to exit.
func (p *clientProc) finish() clientResult {
	p.t.Helper()
	p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(4 * waitTime):
		p.t.Fatalf("sslclient did not exit within %v", 4*waitTime)
	}
	res := clientResult{stdout: p.stdout.String(), stderr: p.stderr.String(), elapsed: time.Since(p.start)}
	var ee *exec.ExitError
	switch {
	case errors.As(p.err, &ee):
		res.code = ee.ExitCode()
	case p.err != nil:
		p.t.Fatalf("sslclient: %v", p.err)
	}
	return res
}

func runClient(t testing.TB, r clientRun) clientResult {
	t.Helper()
	return startClient(t, r).finish()
}

// outputBuffer collects output and lets a test wait for a line.
type outputBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func newOutputBuffer() *outputBuffer { return &outputBuffer{changed: make(chan struct{})} }

func (l *outputBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

func (l *outputBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor returns the submatches of the first match of re in the output,
// waiting up to waitTime.
func (l *outputBuffer) waitFor(t testing.TB, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(waitTime)
	for {
		l.mu.Lock()
		m := re.FindStringSubmatch(l.b.String())
		changed := l.changed
		l.mu.Unlock()
		if m != nil {
			return m
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no output matching %q within %v; got:\n%s", re, waitTime, l.String())
		}
	}
}

// sslclientLines are the lines of stderr that sslclient itself wrote.
func sslclientLines(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "sslclient: ") {
			out = append(out, l)
		}
	}
	return out
}

// expectFatal checks a run that sslclient refused: exit 111 and exactly
// one line of its own, a fatal one, matching re.
func expectFatal(t testing.TB, res clientResult, re string) {
	t.Helper()
	if res.code != 111 {
		t.Errorf("exit %d, want 111", res.code)
	}
	lines := sslclientLines(res.stderr)
	if len(lines) != 1 || !regexp.MustCompile(re).MatchString(lines[0]) {
		t.Errorf("sslclient said %q, want one line matching %q", lines, re)
	}
}

// testCA is a certificate authority made in the test. Its files are in a
// directory every user may read, for runs as nobody.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	path string
	dir  string
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	dir := worldReadableDir(t)
	key := clientTestKey(t)
	tmpl := &x509.Certificate{SerialNumber: randomSerial(t), Subject: pkix.Name{Organization: []string{"Itest"}, CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, dir: dir}
	ca.path = writeFile(t, filepath.Join(dir, "ca-"+strconv.FormatUint(randomSerial(t).Uint64(), 16)+".pem"),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	return ca
}

// worldReadableDir is a fresh directory every user may enter and read.
func worldReadableDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sslclient-itest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func clientTestKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func randomSerial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// leafSpec is a certificate for the CA to issue.
type leafSpec struct {
	cn       string
	dns      []string
	ips      []net.IP
	expired  bool // valid from two days ago to yesterday
	client   bool // for client authentication, not a server
	keyWorld bool // the key file readable by everyone
}

// issue makes a key and a certificate signed by the CA, written as PEM
// files, and returns them as a testCert (as sslserver's tests use it).
func (ca *testCA) issue(t testing.TB, s leafSpec) *testCert {
	t.Helper()
	key := clientTestKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: randomSerial(t), Subject: pkix.Name{Organization: []string{"Itest"}, CommonName: s.cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), DNSNames: s.dns, IPAddresses: s.ips,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if s.expired {
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	}
	if s.client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	c := &testCert{kind: keyECDSA, certDER: der, keyDER: keyDER, secrets: secretsOf(key), pool: x509.NewCertPool(),
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})}
	c.pool.AddCert(ca.cert)
	dir := worldReadableDir(t)
	keyMode := os.FileMode(0o600)
	if s.keyWorld {
		keyMode = 0o644
	}
	c.certPath = writeFile(t, filepath.Join(dir, "cert.pem"), c.certPEM, 0o644)
	c.keyPath = writeFile(t, filepath.Join(dir, "key.pem"), c.keyPEM, keyMode)
	return c
}

// serverLeaf is the usual server certificate: serverName, localhost,
// 127.0.0.1 and ::1.
func serverLeaf() leafSpec {
	return leafSpec{cn: serverName, dns: []string{serverName, "localhost"}, ips: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}
}

// opensslServer is an openssl s_server for one connection.
type opensslServer struct {
	port int
	out  *outputBuffer
	done chan struct{}
}

// startOpenSSLServer runs openssl s_server with cert on 127.0.0.1, port 0,
// for one connection; -rev answers every line reversed.
func startOpenSSLServer(t testing.TB, cert *testCert, extra ...string) *opensslServer {
	t.Helper()
	openssl := needTool(t, "openssl")
	ctx, cancel := context.WithTimeout(context.Background(), 4*waitTime)
	t.Cleanup(cancel)
	args := append([]string{"s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-cert", cert.certPath,
		"-key", cert.keyPath, "-rev"}, extra...)
	cmd := exec.CommandContext(ctx, openssl, args...)
	s := &opensslServer{out: newOutputBuffer(), done: make(chan struct{})}
	cmd.Stderr = s.out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			t.Logf("openssl s_server output:\n%s", s.out.String())
		}
	})
	go s.collect(cmd, stdout)
	m := s.out.waitFor(t, regexp.MustCompile(`(?m)^ACCEPT 127\.0\.0\.1:(\d+)$`))
	s.port, _ = strconv.Atoi(m[1])
	return s
}

func (s *opensslServer) collect(cmd *exec.Cmd, stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		s.out.Write([]byte(sc.Text() + "\n"))
	}
	cmd.Wait()
	close(s.done)
}

func (s *opensslServer) addr() []string { return []string{"127.0.0.1", strconv.Itoa(s.port)} }
