package sslhandle

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
)

const wait = 5 * time.Second

// fakeSupervisor is the supervisor's end of a handler's channel, with
// the handler loop running in this process.
type fakeSupervisor struct {
	t      *testing.T
	ch     *protocol.Channel
	exit   chan int
	stderr *bytes.Buffer
}

func startLoop(t *testing.T, h Handler, args ...string) *fakeSupervisor {
	t.Helper()
	a, b, err := protocol.Pair("test")
	if err != nil {
		t.Fatal(err)
	}
	mine, err := protocol.NewChannel(a, protocol.HandlerReports)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := protocol.NewChannel(b, protocol.HandlerOrders)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSupervisor{t: t, ch: mine, exit: make(chan int, 1), stderr: &bytes.Buffer{}}
	go runLoop(h, args, theirs, f)
	t.Cleanup(func() { mine.Close() })
	return f
}

func runLoop(h Handler, args []string, ch *protocol.Channel, f *fakeSupervisor) {
	f.exit <- serveChannel(h, args, ch, f.stderr)
	ch.Close()
}

// session is the supervisor's (and the TLS worker's) side of one
// session's descriptors.
type session struct {
	ctl       *os.File // the worker's end of the control socket
	toHandler *os.File // write end of the handler's read pipe
	fromIt    *os.File // read end of the handler's write pipe
	client    net.Conn // -n: the client's end of the TCP connection
}

// send hands the handler a new session with environ.
func (f *fakeSupervisor) send(seq uint32, delayed bool, environ ...string) *session {
	f.t.Helper()
	ctlW, ctlP, _ := protocol.StreamPair("ctl")
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	s := &session{ctl: ctlW, toHandler: inW, fromIt: outR}
	files := []*os.File{ctlP, inR, outW}
	if delayed {
		server, client := tcpPair(f.t)
		s.client = client
		sf, _ := server.(*net.TCPConn).File()
		server.Close()
		files = append(files, sf)
	}
	block, err := protocol.EnvBlock(environ)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.ch.Send(&protocol.HandlerSession{Seq: seq, Delayed: delayed, Env: block}, files...); err != nil {
		f.t.Fatal(err)
	}
	for _, x := range files {
		x.Close()
	}
	f.t.Cleanup(s.close)
	return s
}

func (s *session) close() {
	s.ctl.Close()
	s.toHandler.Close()
	s.fromIt.Close()
	if s.client != nil {
		s.client.Close()
	}
}

func tcpPair(t *testing.T) (server, client net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return server, client
}

// end waits for the handler's HandlerEnd.
func (f *fakeSupervisor) end() *protocol.HandlerEnd {
	f.t.Helper()
	f.ch.SetReadDeadline(time.Now().Add(wait))
	m, _, err := f.ch.Recv()
	if err != nil {
		f.t.Fatalf("waiting for HandlerEnd: %v (stderr %q)", err, f.stderr)
	}
	e, ok := m.(*protocol.HandlerEnd)
	if !ok {
		f.t.Fatalf("got %T, want HandlerEnd", m)
	}
	return e
}

func (f *fakeSupervisor) exited() int {
	f.t.Helper()
	select {
	case code := <-f.exit:
		return code
	case <-time.After(wait):
		f.t.Fatal("the handler loop did not stop")
	}
	return 0
}

// echoLine reads a line from the session, writes it back, half-closes,
// and returns 7.
func echoLine(ctx context.Context, s *Session) int {
	line, err := bufio.NewReader(s.Conn()).ReadString('\n')
	if err != nil {
		return 1
	}
	io.WriteString(s.Conn(), s.Getenv("PREFIX")+line+strings.Join(s.Args(), ",")+" "+s.RemoteAddr().String()+"\n")
	s.Conn().CloseWrite()
	return 7
}

func TestLoopServesSessionsOneAfterAnother(t *testing.T) {
	f := startLoop(t, echoLine, "a1", "a2")
	for seq := uint32(1); seq <= 3; seq++ {
		s := f.send(seq, false, "PREFIX=p", "SSLREMOTEIP=192.0.2.1", "SSLREMOTEPORT=4242")
		io.WriteString(s.toHandler, "hello\n")
		got, err := io.ReadAll(s.fromIt)
		if want := "phello\na1,a2 192.0.2.1:4242\n"; err != nil || string(got) != want {
			t.Fatalf("session %d: %q, %v; want %q", seq, got, err, want)
		}
		if e := f.end(); *e != (protocol.HandlerEnd{Seq: seq, Code: 7}) {
			t.Fatalf("session %d ended with %+v", seq, e)
		}
	}
	f.ch.Close()
	if code := f.exited(); code != 0 {
		t.Errorf("the loop exited %d when the supervisor hung up, want 0", code)
	}
}

// TestLoopAbort: HandlerAbort cancels the handler's context and closes
// its descriptors under it; a late abort of the same session, which
// crossed HandlerEnd, is ignored.
func TestLoopAbort(t *testing.T) {
	cancelled := make(chan error, 1)
	f := startLoop(t, func(ctx context.Context, s *Session) int {
		if strings.Contains(s.Getenv("MODE"), "quick") {
			return 0
		}
		_, err := s.Conn().Read(make([]byte, 1))
		cancelled <- errors.Join(ctx.Err(), err)
		return 3
	})
	f.send(1, false, "MODE=block")
	time.Sleep(50 * time.Millisecond)
	if err := f.ch.Send(&protocol.HandlerAbort{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if e := f.end(); e.Seq != 1 || e.Code != 3 {
		t.Fatalf("aborted session ended with %+v", e)
	}
	if err := <-cancelled; !errors.Is(err, context.Canceled) || !errors.Is(err, os.ErrClosed) {
		t.Errorf("the handler saw %v, want its context cancelled and its conn closed", err)
	}
	f.ch.Send(&protocol.HandlerAbort{Seq: 1})
	f.send(2, false, "MODE=quick")
	if e := f.end(); e.Seq != 2 {
		t.Fatalf("next session: %+v", e)
	}
}

// TestLoopRefusesOutOfTurn: a second session while one runs, an abort
// of a session it never had, or a message meant for the supervisor end
// the handler with 111.
func TestLoopRefusesOutOfTurn(t *testing.T) {
	block := func(ctx context.Context, s *Session) int { <-ctx.Done(); return 0 }
	for name, m := range map[string]protocol.Message{
		"second session": nil,
		"unknown abort":  &protocol.HandlerAbort{Seq: 99},
		"handler end":    &protocol.HandlerEnd{Seq: 1},
	} {
		t.Run(name, func(t *testing.T) {
			f := startLoop(t, block)
			f.send(1, false)
			if m == nil {
				f.send(2, false)
			} else if err := f.ch.Send(m); err != nil {
				t.Fatal(err)
			}
			if code := f.exited(); code != protocol.ExitTemp {
				t.Errorf("exit %d, want 111", code)
			}
			// A type no supervisor sends is refused by the channel itself.
			if why := f.stderr.String(); !strings.Contains(why, "out of turn") && !strings.Contains(why, "not accepted here") {
				t.Errorf("stderr %q does not say why", f.stderr)
			}
		})
	}
}

// TestStartTLS plays the TLS worker's side of UCSPI-TLS under -n: the
// handler talks plaintext on the raw connection, asks for TLS with 'Y',
// gets the block, and then writes to the worker's pipe.
func TestStartTLS(t *testing.T) {
	type result struct {
		vars []string
		env  string
		err  error
	}
	results := make(chan result, 1)
	f := startLoop(t, func(ctx context.Context, s *Session) int {
		io.WriteString(s.Conn(), "220 go ahead\r\n")
		conn, vars, err := s.StartTLS()
		if err != nil {
			results <- result{err: err}
			return 111
		}
		_, again, err2 := s.StartTLS()
		results <- result{vars: vars, env: s.Getenv("SSL_PROTOCOL"), err: errors.Join(err2, errors.New(strings.Join(again, "")))}
		io.WriteString(conn, "250 over TLS\r\n")
		return 0
	})
	s := f.send(1, true, "PROTO=SSL")
	s.client.SetDeadline(time.Now().Add(wait))
	if line, _ := bufio.NewReader(s.client).ReadString('\n'); line != "220 go ahead\r\n" {
		t.Fatalf("plaintext before TLS: %q", line)
	}
	cmd := make([]byte, 1)
	s.ctl.SetDeadline(time.Now().Add(wait))
	if _, err := io.ReadFull(s.ctl, cmd); err != nil || cmd[0] != 'Y' {
		t.Fatalf("control command %q, %v", cmd, err)
	}
	s.ctl.Write([]byte("SSL_PROTOCOL=TLSv1.3\x00SSL_CIPHER=TLS_AES_128_GCM_SHA256\x00\x00"))
	s.ctl.Close()
	r := <-results
	if want := []string{"SSL_PROTOCOL=TLSv1.3", "SSL_CIPHER=TLS_AES_128_GCM_SHA256"}; !reflect.DeepEqual(r.vars, want) || r.env != "TLSv1.3" {
		t.Errorf("StartTLS gave %q, Getenv %q; want %q", r.vars, r.env, want)
	}
	if !errors.Is(r.err, ErrStarted) {
		t.Errorf("a second StartTLS: %v, want ErrStarted", r.err)
	}
	if got, _ := io.ReadAll(s.fromIt); string(got) != "250 over TLS\r\n" {
		t.Errorf("after StartTLS the handler wrote %q to the worker", got)
	}
	if e := f.end(); e.Code != 0 {
		t.Errorf("ended with %+v", e)
	}
}

func TestStartTLSWithoutDelayed(t *testing.T) {
	errs := make(chan error, 1)
	f := startLoop(t, func(ctx context.Context, s *Session) int {
		_, _, err := s.StartTLS()
		errs <- err
		return 0
	})
	f.send(1, false)
	if err := <-errs; !errors.Is(err, ErrNotDelayed) {
		t.Errorf("StartTLS without -n: %v", err)
	}
	f.end()
}

// TestConnDeadline: the pipes are in the poller, so deadlines work.
func TestConnDeadline(t *testing.T) {
	errs := make(chan error, 1)
	f := startLoop(t, func(ctx context.Context, s *Session) int {
		s.Conn().SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := s.Conn().Read(make([]byte, 1))
		errs <- err
		return 0
	})
	f.send(1, false)
	if err := <-errs; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past its deadline: %v", err)
	}
	f.end()
}
