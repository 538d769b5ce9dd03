// Package ceiling is the fastest shape a Go UCSPI-TLS server can take,
// used as the upper bound in sslserver's load tests: one process accepts,
// does every handshake in-process with crypto/tls and fork-execs the
// program with pipes. It has no privilege separation, no per-connection
// address space and no key holder: what sslserver pays for those is the
// distance between the two.
//
// Typical use:
//
//	s := &ceiling.Server{TLS: cfg, Program: []string{"/bin/cat"}}
//	ln, _ := net.Listen("tcp", "127.0.0.1:0")
//	go s.Serve(ln)
//
// With Delayed set it speaks UCSPI-TLS like sslserver -n: the program
// gets the connection in plaintext on fds 0 and 1, and $SSLCTLFD,
// $SSLREADFD and $SSLWRITEFD (3, 4, 5) to turn TLS on.
package ceiling

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/ucspi-tls/sslserver/env"
	"github.com/ucspi-tls/sslserver/protocol"
)

// handshakeWait bounds a handshake and, under Delayed, the wait for the
// program's command, as sslserver's -T does.
const handshakeWait = 26 * time.Second

// exitGrace is how long a program may outlive its connection.
const exitGrace = 10 * time.Second

// Server serves one program behind TLS.
type Server struct {
	TLS     *tls.Config // with one certificate, whose Leaf is set
	Program []string    // argv; Program[0] is a path
	Delayed bool        // UCSPI-TLS, as sslserver -n
	// Log gets one line per failed session; nil discards them.
	Log func(format string, args ...any)

	wg sync.WaitGroup
}

// Serve accepts until ln is closed, then waits for running sessions and
// returns nil.
func (s *Server) Serve(ln net.Listener) error {
	if len(s.Program) == 0 || s.TLS == nil {
		return errors.New("ceiling: no program or no TLS configuration")
	}
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			s.wg.Wait()
			return nil
		}
		if err != nil {
			s.logf("accept: %v", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		s.wg.Add(1)
		go s.session(c.(*net.TCPConn))
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.Log != nil {
		s.Log(format, args...)
	}
}

func (s *Server) session(c *net.TCPConn) {
	defer s.wg.Done()
	var err error
	if s.Delayed {
		err = s.delayed(c)
	} else {
		err = s.immediate(c)
	}
	if err != nil {
		s.logf("session from %s: %v", c.RemoteAddr(), err)
	}
}

// pipes are the program's plaintext channels; the program gets inR and
// outW, the server keeps inW and outR.
type pipes struct {
	inR, inW, outR, outW *os.File
}

func newPipes() (*pipes, error) {
	var p pipes
	var err error
	if p.inR, p.inW, err = os.Pipe(); err != nil {
		return nil, err
	}
	if p.outR, p.outW, err = os.Pipe(); err != nil {
		p.inR.Close()
		p.inW.Close()
		return nil, err
	}
	return &p, nil
}

func (p *pipes) closeProgramEnds() {
	p.inR.Close()
	p.outW.Close()
}

func (p *pipes) closeAll() {
	for _, f := range []*os.File{p.inR, p.inW, p.outR, p.outW} {
		f.Close()
	}
}

// immediate starts the program and handshakes at once, in parallel.
func (s *Server) immediate(c *net.TCPConn) error {
	defer c.Close()
	p, err := newPipes()
	if err != nil {
		return err
	}
	defer p.closeAll()
	prog, err := s.start(p.inR, p.outW, nil, nil)
	p.closeProgramEnds()
	if err != nil {
		return err
	}
	tc, err := handshake(c, s.TLS)
	if err != nil {
		prog.kill()
		return err
	}
	runRelay(tc, c, p, prog)
	return nil
}

func handshake(c *net.TCPConn, cfg *tls.Config) (*tls.Conn, error) {
	tc := tls.Server(c, cfg)
	c.SetDeadline(time.Now().Add(handshakeWait))
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	c.SetDeadline(time.Time{})
	return tc, nil
}

// program is a started program and the channel closed when it has been
// reaped.
type program struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// start runs the program with the given stdin, stdout and fds 3 onwards.
func (s *Server) start(stdin, stdout *os.File, extra []*os.File, environ []string) (*program, error) {
	cmd := exec.Command(s.Program[0], s.Program[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, os.Stderr
	cmd.ExtraFiles = extra
	if environ != nil {
		cmd.Env = append(os.Environ(), environ...)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %q: %w", s.Program[0], err)
	}
	p := &program{cmd: cmd, exited: make(chan struct{})}
	go p.reap()
	return p, nil
}

func (p *program) reap() {
	p.cmd.Wait()
	close(p.exited)
}

// reapOrKill gives a program whose connection has ended exitGrace to
// exit on its own.
func (p *program) reapOrKill() {
	select {
	case <-p.exited:
	case <-time.After(exitGrace):
		p.kill()
	}
}

func (p *program) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

// delayed is sslserver -n: the program talks plaintext on the connection
// until it writes a command on the control socket.
func (s *Server) delayed(c *net.TCPConn) error {
	conn, err := blockingCopy(c)
	c.Close()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctl, ctlP, err := protocol.StreamPair("ctl")
	if err != nil {
		return err
	}
	defer ctl.Close()
	p, err := newPipes()
	if err != nil {
		ctlP.Close()
		return err
	}
	defer p.closeAll()
	prog, err := s.start(conn, conn, []*os.File{ctlP, p.inR, p.outW}, ucspiEnv())
	ctlP.Close()
	p.closeProgramEnds()
	if err != nil {
		return err
	}
	return s.afterCommand(ctl, conn, p, prog)
}

// ucspiEnv names the program's descriptors: ExtraFiles start at fd 3.
func ucspiEnv() []string {
	return []string{
		"SSLCTLFD=" + strconv.Itoa(protocol.ProgramFdCtl),
		"SSLREADFD=" + strconv.Itoa(protocol.ProgramFdRead),
		"SSLWRITEFD=" + strconv.Itoa(protocol.ProgramFdWrite),
	}
}

// blockingCopy returns the connection as a file in blocking mode, which
// the program needs on its fds 0 and 1; the server takes it back with
// net.FileConn, which makes it non-blocking again.
func blockingCopy(c *net.TCPConn) (*os.File, error) {
	f, err := c.File()
	if err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err == nil {
		rc.Control(setBlocking)
	}
	return f, err
}

func (s *Server) afterCommand(ctlFile, connFile *os.File, p *pipes, prog *program) error {
	// net.FileConn works on a copy: the originals must go, or the
	// program would never see the control socket's EOF.
	ctl, err := net.FileConn(ctlFile)
	ctlFile.Close()
	if err != nil {
		prog.kill()
		return err
	}
	defer ctl.Close()
	cmd, err := readCommand(ctl, prog.exited)
	if err != nil || cmd == 0 {
		prog.kill()
		return err
	}
	nc, err := net.FileConn(connFile)
	connFile.Close()
	if err != nil {
		prog.kill()
		return err
	}
	c := nc.(*net.TCPConn)
	defer c.Close()
	tc, err := handshake(c, s.TLS)
	if err != nil {
		prog.kill()
		return err
	}
	if err := answer(ctl, cmd, tc, s.TLS.Certificates[0].Leaf); err != nil {
		prog.kill()
		return err
	}
	ctl.Close()
	runRelay(tc, c, p, prog)
	return nil
}

// readCommand returns 0 when the program closed the control socket or
// exited without a command.
func readCommand(ctl net.Conn, exited <-chan struct{}) (protocol.Command, error) {
	ctl.SetReadDeadline(time.Now().Add(handshakeWait))
	stop := make(chan struct{})
	defer close(stop)
	go closeWhenExited(ctl, exited, stop)
	var b [1]byte
	if _, err := io.ReadFull(ctl, b[:]); err != nil {
		return 0, nil
	}
	return protocol.ParseCommand(b[0])
}

func closeWhenExited(ctl net.Conn, exited, stop <-chan struct{}) {
	select {
	case <-exited:
		ctl.SetReadDeadline(time.Now())
	case <-stop:
	}
}

// answer writes the reply block after Y, as sslserver does.
func answer(ctl net.Conn, cmd protocol.Command, tc *tls.Conn, leaf *x509.Certificate) error {
	if cmd != protocol.CmdStartReply {
		return nil
	}
	cs := tc.ConnectionState()
	var vars []protocol.Var
	for _, v := range env.TLS(&cs, leaf, true, "NONE") {
		vars = append(vars, protocol.Var{Name: v.Name, Value: v.Value})
	}
	block, err := protocol.EncodeBlock(vars)
	if err != nil {
		return err
	}
	ctl.SetWriteDeadline(time.Now().Add(handshakeWait))
	_, err = ctl.Write(block)
	return err
}
