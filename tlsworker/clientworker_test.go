package tlsworker

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/protocol"
)

// cwChildVar makes the test binary, started by these tests, act as a child
// process instead of running tests: "confine" or "clientworker".
const cwChildVar = "TLSWORKER_TEST_CHILD"

// TestClientWorkerChild is the child's entry point; in a normal run it does
// nothing.
func TestClientWorkerChild(t *testing.T) {
	switch os.Getenv(cwChildVar) {
	case "confine":
		os.Exit(cwConfineChild())
	case "clientworker":
		os.Exit(ClientWorkerMain())
	}
}

// cwChildBinary is a test binary that can confine itself: this one, or,
// when it was built with cgo (which cannot set no_new_privs on every
// thread), a copy built without.
func cwChildBinary(t *testing.T) string {
	t.Helper()
	if CanConfine() == nil {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		return self
	}
	out := filepath.Join(t.TempDir(), "tlsworker.test")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "test", "-c", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building a test binary without cgo: %v\n%s", err, b)
	}
	return out
}

func cwChildCommand(bin, role string) *exec.Cmd {
	cmd := exec.Command(bin, "-test.run=^TestClientWorkerChild$")
	cmd.Env = []string{cwChildVar + "=" + role, "GODEBUG=containermaxprocs=0,updatemaxprocs=0"}
	return cmd
}

// cwConfineChild confines itself as sslclient's TLS process does without
// root and reports what it can still do, one fact a line.
func cwConfineChild() int {
	if err := ConfineUnprivileged(16); err != nil {
		fmt.Printf("error %v\n", err)
		return 1
	}
	st, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(st), "\n") {
		if strings.HasPrefix(line, "NoNewPrivs:") {
			fmt.Println(strings.Join(strings.Fields(line), " "))
		}
	}
	d, _ := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	fmt.Printf("dumpable %d\n", d)
	err := os.WriteFile(filepath.Join(os.Getenv("TMPDIR_FOR_CHILD"), "f"), []byte("x"), 0o600)
	fmt.Printf("write %v\n", errors.Is(err, syscall.EFBIG))
	fmt.Printf("open many %v\n", cwOpenMany(32))
	return 0
}

// cwOpenMany opens up to n descriptors and reports whether the limit
// stopped it.
func cwOpenMany(n int) bool {
	for i := 0; i < n; i++ {
		f, err := os.Open(os.DevNull)
		if errors.Is(err, syscall.EMFILE) {
			return true
		}
		if err != nil {
			return false
		}
		defer f.Close()
	}
	return false
}

func TestConfineUnprivileged(t *testing.T) {
	cmd := cwChildCommand(cwChildBinary(t), "confine")
	cmd.Env = append(cmd.Env, "TMPDIR_FOR_CHILD="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	want := "NoNewPrivs: 1\ndumpable 0\nwrite true\nopen many true\n"
	if !strings.HasPrefix(string(out), want) {
		t.Errorf("the confined child reports\n%s\nwant\n%s", out, want)
	}
}

// cwPKI is a CA with a server and a client certificate signed by it.
type cwPKI struct {
	caFile     string
	serverCert tls.Certificate
	clientDER  []byte
	clientKey  string // PKCS #8 PEM file
	clientCAs  *x509.CertPool
}

func newCWPKI(t *testing.T) *cwPKI {
	t.Helper()
	caKey := cwKey(t)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &cwPKI{clientCAs: x509.NewCertPool()}
	p.clientCAs.AddCert(ca)
	dir := t.TempDir()
	p.caFile = filepath.Join(dir, "ca.pem")
	cwWritePEM(t, p.caFile, "CERTIFICATE", caDER)
	srvKey := cwKey(t)
	srvDER := cwLeaf(t, ca, caKey, srvKey, "mx.example.org", x509.ExtKeyUsageServerAuth, net.IPv4(127, 0, 0, 1))
	p.serverCert = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	cliKey := cwKey(t)
	p.clientDER = cwLeaf(t, ca, caKey, cliKey, "client.example", x509.ExtKeyUsageClientAuth)
	kder, _ := x509.MarshalPKCS8PrivateKey(cliKey)
	p.clientKey = filepath.Join(dir, "client.key")
	cwWritePEM(t, p.clientKey, "PRIVATE KEY", kder)
	return p
}

func cwKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func cwLeaf(t *testing.T, ca *x509.Certificate, caKey crypto.Signer, key crypto.Signer, name string, usage x509.ExtKeyUsage, ips ...net.IP) []byte {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{name}, IPAddresses: ips, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func cwWritePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// cwPeer is the test's TLS server: optionally a plaintext greeting first
// (STARTTLS style), then TLS, then it echoes lines until EOF.
type cwPeer struct {
	addr     string
	greeting string
	result   chan cwPeerResult
}

type cwPeerResult struct {
	err        error
	clientCert string // CN of the certificate the client sent
	sni        string
}

func startCWPeer(t *testing.T, p *cwPKI, greeting string, requireCert bool) *cwPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	cfg := &tls.Config{Certificates: []tls.Certificate{p.serverCert}}
	if requireCert {
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, p.clientCAs
	}
	pr := &cwPeer{addr: ln.Addr().String(), greeting: greeting, result: make(chan cwPeerResult, 1)}
	go pr.serve(ln, cfg)
	return pr
}

func (pr *cwPeer) serve(ln net.Listener, cfg *tls.Config) {
	c, err := ln.Accept()
	if err != nil {
		pr.result <- cwPeerResult{err: err}
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, pr.greeting)
	tc := tls.Server(c, cfg)
	if err := tc.Handshake(); err != nil {
		pr.result <- cwPeerResult{err: err}
		return
	}
	res := cwPeerResult{sni: tc.ConnectionState().ServerName}
	if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
		res.clientCert = pc[0].Subject.CommonName
	}
	_, err = io.Copy(tc, tc)
	tc.CloseWrite()
	res.err = err
	pr.result <- res
}

// cwProcess is one run of the client TLS process, with the test playing
// sslclient (the channel) and the program (the pipes, ctl and conn).
type cwProcess struct {
	t      *testing.T
	cmd    *exec.Cmd
	ch     *protocol.Channel
	ctl    *os.File // the program's end, -y only
	conn   *os.File // the program's copy of the TCP connection
	inR    *os.File // what the server sent
	outW   *os.File // what goes to the server
	stderr bytes.Buffer
}

func startCWProcess(t *testing.T, bin string, pr *cwPeer, cfg *protocol.ClientConfig, key *os.File) *cwProcess {
	t.Helper()
	c, err := net.Dial("tcp", pr.addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := c.(*net.TCPConn).File()
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	p := &cwProcess{t: t, conn: conn, cmd: cwChildCommand(bin, "clientworker")}
	chW, chS := cwPair(t, protocol.Pair)
	var ctlW *os.File
	if cfg.Delayed {
		ctlW, p.ctl = cwPair(t, protocol.StreamPair)
	} else if ctlW, err = os.Open(os.DevNull); err != nil {
		t.Fatal(err)
	}
	var inW, outR *os.File
	p.inR, inW = cwPipe(t)
	outR, p.outW = cwPipe(t)
	p.cmd.ExtraFiles = []*os.File{chW, conn, ctlW, inW, outR} // fds 3 to 7
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	for _, f := range []*os.File{chW, ctlW, inW, outR} {
		f.Close()
	}
	if p.ch, err = protocol.NewChannel(chS, protocol.ClientReports); err != nil {
		t.Fatal(err)
	}
	var files []*os.File
	if key != nil {
		files = append(files, key)
	}
	if err := p.ch.Send(cfg, files...); err != nil {
		t.Fatal(err)
	}
	return p
}

func cwPair(t *testing.T, f func(string) (*os.File, *os.File, error)) (*os.File, *os.File) {
	t.Helper()
	a, b, err := f("test")
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

func cwPipe(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// next reads the next report, within 10 s.
func (p *cwProcess) next() protocol.Message {
	p.t.Helper()
	p.ch.SetReadDeadline(time.Now().Add(10 * time.Second))
	m, _, err := p.ch.Recv()
	if err != nil {
		p.t.Fatalf("reading the TLS process's report: %v\nstderr: %s", err, p.stderr.String())
	}
	return m
}

func (p *cwProcess) expectReady() {
	p.t.Helper()
	if m := p.next(); m.Type() != protocol.MsgClientReady {
		p.t.Fatalf("first report %T %+v, want ClientReady", m, m)
	}
}

func (p *cwProcess) expectDone() map[string]string {
	p.t.Helper()
	m := p.next()
	done, ok := m.(*protocol.HandshakeDone)
	if !ok {
		p.t.Fatalf("report %T %+v, want HandshakeDone", m, m)
	}
	return cwBlockMap(p.t, done.Block)
}

func cwBlockMap(t *testing.T, block []byte) map[string]string {
	t.Helper()
	vars, err := protocol.DecodeBlock(block)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, v := range vars {
		m[v.Name] = v.Value
	}
	return m
}

// echo sends a line through the session and expects it back, then
// closes the program's output and expects the server's EOF.
func (p *cwProcess) echo(line string) {
	p.t.Helper()
	io.WriteString(p.outW, line+"\n")
	got, err := bufio.NewReader(p.inR).ReadString('\n')
	if err != nil || got != line+"\n" {
		p.t.Fatalf("echo of %q: %q, %v", line, got, err)
	}
	p.outW.Close()
	if rest, err := io.ReadAll(p.inR); err != nil || len(rest) > 0 {
		p.t.Errorf("after the half-close: %q, %v; want EOF", rest, err)
	}
}

// exit tells the TLS process the program is gone and returns its code.
func (p *cwProcess) exit() int {
	p.t.Helper()
	p.ch.Send(&protocol.ProgramExited{})
	err := p.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		p.t.Fatal(err)
	}
	return 0
}

func cwConfig(p *cwPKI) *protocol.ClientConfig {
	return &protocol.ClientConfig{HandshakeMsec: 10000, VerifyHost: "127.0.0.1", Enforce: true, CAFile: p.caFile}
}

func TestClientTLSProcess(t *testing.T) {
	bin := cwChildBinary(t)
	p := newCWPKI(t)
	t.Run("immediate", func(t *testing.T) { testCWImmediate(t, bin, p, false) })
	t.Run("immediate jailed", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("a jail needs root")
		}
		testCWImmediate(t, bin, p, true)
	})
	t.Run("verification refused", func(t *testing.T) { testCWRefused(t, bin, p) })
	t.Run("-X reports and goes on", func(t *testing.T) { testCWUnenforced(t, bin, p) })
	t.Run("delayed Y", func(t *testing.T) { testCWDelayed(t, bin, p) })
	t.Run("delayed unknown command", func(t *testing.T) { testCWBadCommand(t, bin, p) })
	t.Run("client certificate", func(t *testing.T) { testCWClientCert(t, bin, p) })
}

func testCWImmediate(t *testing.T, bin string, p *cwPKI, jail bool) {
	pr := startCWPeer(t, p, "", false)
	cfg := cwConfig(p)
	cfg.ServerName = "mx.example.org"
	if jail {
		root := filepath.Join(t.TempDir(), "root")
		if err := os.Mkdir(root, 0o555); err != nil {
			t.Fatal(err)
		}
		cfg.Jail, cfg.UID, cfg.GID, cfg.Root = true, 65534, 65534, root
	}
	tp := startCWProcess(t, bin, pr, cfg, nil)
	tp.expectReady()
	vars := tp.expectDone()
	if vars["SSL_SERVER_VERIFY"] != "SUCCESS" || vars["SSL_SERVER_S_DN_CN"] != "mx.example.org" || vars["SSL_CLIENT_S_DN"] != "" {
		t.Errorf("block %v", vars)
	}
	tp.echo("hello through TLS")
	if code := tp.exit(); code != 0 {
		t.Errorf("exit %d, want 0; stderr %s", code, tp.stderr.String())
	}
	if res := <-pr.result; res.err != nil || res.sni != "mx.example.org" {
		t.Errorf("the server saw SNI %q, error %v", res.sni, res.err)
	}
}

func testCWRefused(t *testing.T, bin string, p *cwPKI) {
	pr := startCWPeer(t, p, "", false)
	cfg := cwConfig(p)
	cfg.VerifyHost = "wrong.example"
	tp := startCWProcess(t, bin, pr, cfg, nil)
	tp.expectReady()
	m := tp.next()
	f, ok := m.(*protocol.SessionFailed)
	if !ok || f.Code != protocol.ExitTemp || !strings.Contains(f.Reason, "unable to verify the certificate of 127.0.0.1:") ||
		!strings.Contains(f.Reason, "not wrong.example") {
		t.Errorf("report %T %+v, want SessionFailed 111 naming the wrong name", m, m)
	}
	if code := tp.exit(); code != protocol.ExitTemp {
		t.Errorf("exit %d, want 111", code)
	}
	if res := <-pr.result; res.err == nil {
		t.Error("the server completed a handshake the client should have refused")
	}
}

func testCWUnenforced(t *testing.T, bin string, p *cwPKI) {
	pr := startCWPeer(t, p, "", false)
	cfg := cwConfig(p)
	cfg.VerifyHost, cfg.Enforce = "wrong.example", false
	tp := startCWProcess(t, bin, pr, cfg, nil)
	tp.expectReady()
	vars := tp.expectDone()
	if v := vars["SSL_SERVER_VERIFY"]; !strings.HasPrefix(v, "FAILED:") || !strings.Contains(v, "wrong.example") {
		t.Errorf("SSL_SERVER_VERIFY %q, want FAILED: with the reason", v)
	}
	tp.echo("unverified but working")
	if code := tp.exit(); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
}

// Under -y the program reads the plaintext greeting from the connection
// (the TLS process must not have taken it), then asks for TLS with Y.
func testCWDelayed(t *testing.T, bin string, p *cwPKI) {
	pr := startCWPeer(t, p, "220 ready\r\n", false)
	cfg := cwConfig(p)
	cfg.Delayed = true
	tp := startCWProcess(t, bin, pr, cfg, nil)
	tp.expectReady()
	time.Sleep(100 * time.Millisecond) // room for a TLS process that would read early
	line, err := bufio.NewReader(cwOneByte{tp.conn}).ReadString('\n')
	if err != nil || line != "220 ready\r\n" {
		t.Fatalf("the program read %q, %v from the connection; want the greeting", line, err)
	}
	if _, err := tp.ctl.Write([]byte{'Y'}); err != nil {
		t.Fatal(err)
	}
	vars, err := protocol.ReadBlock(tp.ctl)
	if err != nil {
		t.Fatalf("reading the block: %v; stderr %s", err, tp.stderr.String())
	}
	if rest, err := io.ReadAll(tp.ctl); err != nil || len(rest) > 0 {
		t.Errorf("after the block: %q, %v; want EOF", rest, err)
	}
	got := map[string]string{}
	for _, v := range vars {
		got[v.Name] = v.Value
	}
	if got["SSL_SERVER_VERIFY"] != "SUCCESS" || got["SSL_PROTOCOL"] == "" {
		t.Errorf("block %v", got)
	}
	if report := tp.expectDone(); report["SSL_PROTOCOL"] != got["SSL_PROTOCOL"] {
		t.Errorf("sslclient's report %v differs from the program's block %v", report, got)
	}
	tp.conn.Close()
	tp.echo("after STARTTLS")
	if code := tp.exit(); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
}

type cwOneByte struct{ r io.Reader }

func (o cwOneByte) Read(p []byte) (int, error) { return o.r.Read(p[:1]) }

func testCWBadCommand(t *testing.T, bin string, p *cwPKI) {
	pr := startCWPeer(t, p, "", false)
	cfg := cwConfig(p)
	cfg.Delayed = true
	tp := startCWProcess(t, bin, pr, cfg, nil)
	tp.expectReady()
	tp.ctl.Write([]byte{'Q'})
	m := tp.next()
	if f, ok := m.(*protocol.SessionFailed); !ok || f.Code != protocol.ExitUsage || !strings.Contains(f.Reason, `"Q"`) {
		t.Errorf("report %T %+v, want SessionFailed 100 quoting the byte", m, m)
	}
	if code := tp.exit(); code != protocol.ExitUsage {
		t.Errorf("exit %d, want 100", code)
	}
}

func testCWClientCert(t *testing.T, bin string, p *cwPKI) {
	pr := startCWPeer(t, p, "", true)
	cfg := cwConfig(p)
	cfg.Chain = [][]byte{p.clientDER}
	key, err := os.Open(p.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	defer key.Close()
	tp := startCWProcess(t, bin, pr, cfg, key)
	tp.expectReady()
	vars := tp.expectDone()
	if vars["SSL_CLIENT_S_DN_CN"] != "client.example" {
		t.Errorf("SSL_CLIENT_S_DN_CN %q, want client.example", vars["SSL_CLIENT_S_DN_CN"])
	}
	tp.echo("with a client certificate")
	tp.exit()
	if res := <-pr.result; res.err != nil || res.clientCert != "client.example" {
		t.Errorf("the server saw client certificate %q, error %v", res.clientCert, res.err)
	}
}
