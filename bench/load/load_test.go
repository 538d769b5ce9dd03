package load_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/bench/ceiling"
	"github.com/ucspi-tls/sslserver/bench/load"
	"github.com/ucspi-tls/sslserver/protocol"
)

// TestMain lets the test binary be the programs the servers run:
// "loadtest.test role NAME".
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "role" {
		os.Exit(runRole(os.Args[2]))
	}
	os.Exit(m.Run())
}

func runRole(name string) int {
	var err error
	switch name {
	case "true":
	case "firstbyte":
		_, err = os.Stdout.Write([]byte("x"))
	case "echo":
		_, err = io.Copy(os.Stdout, os.Stdin)
	case "discard":
		_, err = io.Copy(io.Discard, os.Stdin)
	case "smtp":
		err = smtpRole()
	default:
		err = fmt.Errorf("unknown role %q", name)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "role %s: %v\n", name, err)
		return 111
	}
	return 0
}

// smtpRole is the least an SMTP server with UCSPI-TLS STARTTLS does.
func smtpRole() error {
	in, out := bufio.NewReader(os.Stdin), os.Stdout
	replies := map[string]string{"EHLO": "250-t\r\n250 STARTTLS\r\n", "QUIT": "221 bye\r\n", "STARTTLS": "220 go\r\n"}
	fmt.Fprint(out, "220 t ESMTP\r\n")
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			return err
		}
		verb, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		fmt.Fprint(out, replies[verb])
		switch verb {
		case "QUIT":
			return nil
		case "STARTTLS":
			if _, err := protocol.StartTLS(os.NewFile(protocol.ProgramFdCtl, "ctl"), true); err != nil {
				return err
			}
			in, out = bufio.NewReader(os.NewFile(protocol.ProgramFdRead, "r")), os.NewFile(protocol.ProgramFdWrite, "w")
			replies["EHLO"] = "250 t\r\n"
		}
	}
}

// program is a small system program where one does the job: they start
// much faster than this test binary, above all under the race detector.
func program(self, role string) []string {
	switch role {
	case "true":
		return []string{"/bin/true"}
	case "firstbyte":
		return []string{"/bin/echo"}
	case "echo":
		return []string{"/bin/cat"}
	case "discard":
		return []string{"/bin/sh", "-c", "exec cat >/dev/null"}
	}
	return []string{self, "role", role}
}

// testCert makes a P-256 certificate for localhost.
func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// serve starts the ceiling server with the test binary in role as its
// program and returns the target for it.
func serve(t *testing.T, role string, delayed bool) load.Target {
	t.Helper()
	target, _ := serveWithLeaf(t, role, delayed)
	return target
}

func serveWithLeaf(t *testing.T, role string, delayed bool) (load.Target, []byte) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cert := testCert(t)
	s := &ceiling.Server{
		TLS:     &tls.Config{Certificates: []tls.Certificate{cert}, SessionTicketsDisabled: true},
		Program: program(self, role),
		Delayed: delayed,
		Log:     t.Logf,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go serveInto(s, ln, done)
	t.Cleanup(func() {
		ln.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("the server's sessions did not end within 15s of the test's")
		}
	})
	leaf := cert.Certificate[0]
	return load.Target{Addr: ln.Addr().String(), TLS: load.ClientConfig(leaf, false)}, leaf
}

func serveInto(s *ceiling.Server, ln net.Listener, done chan<- error) {
	done <- s.Serve(ln)
}

func checkRun(t *testing.T, r *load.Result, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if r.Sessions == 0 || r.Errors != 0 {
		t.Fatalf("%d sessions, %d failed (first: %v)", r.Sessions, r.Errors, r.FirstErr)
	}
	if len(r.Latencies) != r.Sessions || r.Percentile(50) <= 0 || r.Percentile(99) < r.Percentile(50) {
		t.Errorf("%d latencies for %d sessions, p50 %v p99 %v", len(r.Latencies), r.Sessions, r.Percentile(50), r.Percentile(99))
	}
}

func TestSessionsEveryKind(t *testing.T) {
	cases := []struct {
		role    string
		delayed bool
		kind    load.Kind
	}{
		{"true", false, load.Close},
		{"firstbyte", false, load.FirstByte},
		{"smtp", true, load.SMTP},
	}
	for _, c := range cases {
		t.Run(c.kind.String(), func(t *testing.T) {
			target := serve(t, c.role, c.delayed)
			r, err := load.Sessions(context.Background(), target, load.Options{Kind: c.kind, Clients: 2, Limit: 20 * time.Second, Max: 6})
			checkRun(t, r, err)
			if r.Sessions != 6 {
				t.Errorf("%d sessions, want the 6 started", r.Sessions)
			}
			if r.Curve == 0 {
				t.Error("no key exchange recorded")
			}
		})
	}
}

// TestSessionsFirstByteWaitsForIt: a program that writes nothing fails a
// first-byte session.
func TestSessionsFirstByteWaitsForIt(t *testing.T) {
	target := serve(t, "true", false)
	r, err := load.Sessions(context.Background(), target, load.Options{Kind: load.FirstByte, Clients: 1, Limit: 20 * time.Second, Max: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.Sessions != 0 || r.Errors == 0 || !strings.Contains(r.FirstErr.Error(), "first byte") {
		t.Fatalf("%d sessions, %d failed (first: %v); want failures for the missing byte", r.Sessions, r.Errors, r.FirstErr)
	}
}

func TestSessionsStopAtTheCount(t *testing.T) {
	target := serve(t, "true", false)
	r, err := load.Sessions(context.Background(), target, load.Options{Kind: load.Close, Clients: 3, Limit: time.Minute, Max: 7})
	checkRun(t, r, err)
	if r.Sessions != 7 {
		t.Fatalf("%d sessions, want exactly 7", r.Sessions)
	}
}

// TestSessionsStopInTime: the time limit and the context each end a run
// that the count would not, and sessions cut off are not failures.
func TestSessionsStopInTime(t *testing.T) {
	target := serve(t, "true", false)
	start := time.Now()
	r, err := load.Sessions(context.Background(), target, load.Options{Kind: load.Close, Clients: 2, Limit: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second || r.Elapsed > 300*time.Millisecond {
		t.Fatalf("a 300ms run took %v (elapsed %v)", d, r.Elapsed)
	}
	if r.Errors != 0 {
		t.Fatalf("%d failures (first: %v)", r.Errors, r.FirstErr)
	}
}

func TestSessionsStopWhenCancelled(t *testing.T) {
	target := serve(t, "true", false)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := load.Sessions(ctx, target, load.Options{Kind: load.Close, Clients: 2, Limit: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a cancelled run went on for %v", d)
	}
}

// TestSessionsPlaintext: a nil TLS config talks plain TCP, as to
// tcpserver; a TLS client against the same server fails.
func TestSessionsPlaintext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go acceptAndClose(ln)
	target := load.Target{Addr: ln.Addr().String()}
	r, err := load.Sessions(context.Background(), target, load.Options{Kind: load.Close, Clients: 2, Limit: 20 * time.Second, Max: 10})
	checkRun(t, r, err)
	target.TLS = load.ClientConfig(nil, false)
	r, err = load.Sessions(context.Background(), target, load.Options{Kind: load.Close, Clients: 1, Limit: 20 * time.Second, Max: 2})
	if err != nil || r.Sessions != 0 || r.Errors == 0 {
		t.Fatalf("TLS to a plaintext server: %d sessions, %d failed, %v", r.Sessions, r.Errors, err)
	}
}

func acceptAndClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// TestSessionsPinTheCertificate: a server with another certificate fails
// every session.
func TestSessionsPinTheCertificate(t *testing.T) {
	target := serve(t, "true", false)
	target.TLS = load.ClientConfig(testCert(t).Certificate[0], false)
	r, err := load.Sessions(context.Background(), target, load.Options{Kind: load.Close, Clients: 1, Limit: 20 * time.Second, Max: 2})
	if err != nil || r.Sessions != 0 || r.Errors == 0 {
		t.Fatalf("wrong certificate: %d sessions, %d failed, %v", r.Sessions, r.Errors, err)
	}
}

func TestSessionsX25519(t *testing.T) {
	target, leaf := serveWithLeaf(t, "true", false)
	target.TLS = load.ClientConfig(leaf, true)
	r, err := load.Sessions(context.Background(), target, load.Options{Kind: load.Close, Clients: 1, Limit: 20 * time.Second, Max: 2})
	checkRun(t, r, err)
	if r.Curve != tls.X25519 {
		t.Fatalf("key exchange %v, want X25519", r.Curve)
	}
}

func TestBulk(t *testing.T) {
	for _, c := range []struct {
		role string
		dir  load.Direction
	}{{"discard", load.Upload}, {"echo", load.Echo}} {
		t.Run(c.role, func(t *testing.T) {
			target := serve(t, c.role, false)
			r, err := load.Bulk(context.Background(), target, c.dir, 300*time.Millisecond, 0)
			if err != nil {
				t.Fatal(err)
			}
			if r.Bytes < 1<<20 || r.MiBps() <= 0 {
				t.Fatalf("%d bytes in %v", r.Bytes, r.Elapsed)
			}
			r, err = load.Bulk(context.Background(), target, c.dir, time.Minute, 100_000)
			if err != nil || r.Bytes != 100_000 {
				t.Fatalf("with a byte limit: %d bytes, %v", r.Bytes, err)
			}
		})
	}
}

// TestBulkEchoNoticesLoss: a program that discards (and so closes its
// output at once) is not an echo.
func TestBulkEchoNoticesLoss(t *testing.T) {
	target := serve(t, "discard", false)
	_, err := load.Bulk(context.Background(), target, load.Echo, time.Minute, 10_000)
	if err == nil || !strings.Contains(err.Error(), "0 came back") {
		t.Fatalf("an echo run against a discarding program: %v", err)
	}
}

// TestBulkClientGone: a client that drops in the middle of an echo,
// with data in flight both ways, ends the session: the server notices
// and its program exits (serve's cleanup waits for that).
func TestBulkClientGone(t *testing.T) {
	target := serve(t, "echo", false)
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		if _, err := load.Bulk(ctx, target, load.Echo, time.Minute, 0); err == nil {
			t.Error("an echo cut off by its context succeeded")
		}
		cancel()
	}
}

func TestHold(t *testing.T) {
	target := serve(t, "echo", false)
	h, err := load.Hold(context.Background(), target, 12, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if h.Len() != 12 {
		t.Fatalf("holding %d sessions, want 12", h.Len())
	}
	h.Close()
	if h.Len() != 0 {
		t.Fatalf("%d sessions left after Close", h.Len())
	}
	target = serve(t, "discard", false)
	if _, err := load.Hold(context.Background(), target, 3, 500*time.Millisecond); err == nil {
		t.Fatal("Hold succeeded against a program that echoes nothing")
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 1: time.Millisecond} {
		if got := load.Percentile(d, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if load.Percentile(nil, 50) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}

func TestParseKind(t *testing.T) {
	for _, k := range []load.Kind{load.Close, load.FirstByte, load.SMTP} {
		if got, err := load.ParseKind(k.String()); err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", k.String(), got, err)
		}
	}
	if _, err := load.ParseKind("bogus"); err == nil {
		t.Error("ParseKind accepted bogus")
	}
}
