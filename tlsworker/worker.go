package tlsworker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/env"
	"github.com/ucspi-tls/sslserver/protocol"
)

// workerMaxFiles is the worker's RLIMIT_NOFILE once confined: its six
// descriptors, what the Go runtime opens, and a margin.
const workerMaxFiles = 32

// signWait bounds one round trip to the key holder.
const signWait = 10 * time.Second

// worker is one connection's TLS side. Its states, in order:
//
//	configured -> confined -> (delayed: awaiting command) -> handshaking -> relaying -> done
//
// Any failure before relaying is reported to the supervisor as
// SessionFailed and ends the process with that exit code.
type worker struct {
	cfg      *protocol.WorkerConfig
	sup      *protocol.Channel
	kh       *protocol.Channel
	ctl      net.Conn
	chosen   *x509.Certificate // the leaf we presented
	certs    []*tls.Certificate
	leaves   []*x509.Certificate
	exited   chan struct{} // closed when the supervisor says the program is gone
	toProg   *os.File
	fromProg *os.File
}

// failure is an error with the session exit code it causes.
type failure struct {
	code   int
	reason string
}

func (f *failure) Error() string { return f.reason }

func failf(code int, format string, args ...any) *failure {
	return &failure{code: code, reason: fmt.Sprintf(format, args...)}
}

// WorkerMain runs one TLS worker with the fd map of protocol.WorkerFd*
// and returns its exit code.
func WorkerMain() int {
	w, err := newWorker()
	if err != nil {
		return fail(protocol.WorkerArgv0, err)
	}
	err = w.run()
	var f *failure
	if errors.As(err, &f) {
		w.sup.Send(&protocol.SessionFailed{Code: uint8(f.code), Reason: f.reason})
		return f.code
	}
	if err != nil {
		w.sup.Send(&protocol.SessionFailed{Code: protocol.ExitTemp, Reason: err.Error()})
		return protocol.ExitTemp
	}
	return protocol.ExitOK
}

func newWorker() (*worker, error) {
	sup, err := protocol.NewChannel(os.NewFile(protocol.WorkerFdSupervisor, "supervisor"))
	if err != nil {
		return nil, err
	}
	sup.SetReadDeadline(time.Now().Add(startupWait))
	m, _, err := sup.Recv()
	if err != nil {
		return nil, fmt.Errorf("waiting for configuration: %w", err)
	}
	cfg, ok := m.(*protocol.WorkerConfig)
	if !ok {
		return nil, fmt.Errorf("message type %d before the configuration", m.Type())
	}
	sup.SetReadDeadline(time.Time{})
	return &worker{cfg: cfg, sup: sup, exited: make(chan struct{})}, nil
}

func (w *worker) run() error {
	jail := Jail{UID: w.cfg.UID, GID: w.cfg.GID, Root: w.cfg.Root, MaxFiles: workerMaxFiles}
	if err := Confine(jail); err != nil {
		return err
	}
	if err := w.openFiles(); err != nil {
		return err
	}
	if err := w.loadCerts(); err != nil {
		return err
	}
	go w.watchSupervisor()
	cmd := protocol.CmdStart
	if w.cfg.Delayed {
		c, err := w.awaitCommand()
		if err != nil || c == 0 {
			return err
		}
		cmd = c
	}
	return w.serve(cmd)
}

// openFiles takes over the descriptors of the fd map, except the TCP
// connection: under -n the program shares it, and it must stay blocking
// and untouched until the program hands it over with a command.
func (w *worker) openFiles() error {
	kh, err := protocol.NewChannel(os.NewFile(protocol.WorkerFdKeyHolder, "keyholder"))
	if err != nil {
		return err
	}
	w.kh = kh
	ctlFile := os.NewFile(protocol.WorkerFdCtl, "ctl")
	w.ctl, err = net.FileConn(ctlFile)
	ctlFile.Close()
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	w.toProg = nonblockingPipe(protocol.WorkerFdToProgram, "to program")
	w.fromProg = nonblockingPipe(protocol.WorkerFdFromProgram, "from program")
	return nil
}

// nonblockingPipe lets the runtime poller drive the pipe instead of a
// blocked thread. Only our end of each pipe is ours, so the program's
// descriptors keep their mode.
func nonblockingPipe(fd int, name string) *os.File {
	unix.SetNonblock(fd, true)
	return os.NewFile(uintptr(fd), name)
}

// watchSupervisor waits for the one message the supervisor sends after
// the configuration: that the program has exited. Anything else, or a
// supervisor that is gone, ends the session the same way.
func (w *worker) watchSupervisor() {
	defer close(w.exited)
	m, _, err := w.sup.Recv()
	if err == nil {
		if _, ok := m.(*protocol.ProgramExited); !ok {
			fmt.Fprintf(os.Stderr, "%s: message type %d out of turn\n", protocol.WorkerArgv0, m.Type())
		}
	}
}

// awaitCommand reads the program's one control byte. It returns 0 when
// the program closed the control fd or exited without a command: the
// session then simply ends.
func (w *worker) awaitCommand() (protocol.Command, error) {
	go closeOnSignal(w.exited, w.ctl)
	var b [1]byte
	if _, err := io.ReadFull(w.ctl, b[:]); err != nil {
		return 0, nil
	}
	c, err := protocol.ParseCommand(b[0])
	if err != nil {
		return 0, failf(protocol.ExitUsage, "%v", err)
	}
	return c, nil
}

func closeOnSignal(ch <-chan struct{}, c io.Closer) {
	<-ch
	c.Close()
}

// serve does the handshake, answers the command, and relays.
func (w *worker) serve(cmd protocol.Command) error {
	tcp, err := clientConn()
	if err != nil {
		return err
	}
	defer tcp.Close()
	conn, err := w.handshake(tcp)
	w.kh.Close() // one handshake, no more signatures
	if err != nil {
		return err
	}
	block, err := w.report(conn)
	if err != nil {
		return err
	}
	w.answer(cmd, block)
	if len(w.cfg.Banner) > 0 {
		if _, err := conn.Write(w.cfg.Banner); err != nil {
			return nil
		}
	}
	r := &relay{tls: conn, tcp: tcp, toProg: w.toProg, fromProg: w.fromProg,
		idle: time.Duration(w.cfg.IdleMsec) * time.Millisecond, exited: w.exited}
	r.run()
	return nil
}

func clientConn() (*net.TCPConn, error) {
	f := os.NewFile(protocol.WorkerFdConn, "client")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("client connection: %w", err)
	}
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		c.Close()
		return nil, errors.New("client connection is not TCP")
	}
	return tcp, nil
}

func (w *worker) handshake(tcp *net.TCPConn) (*tls.Conn, error) {
	conn := tls.Server(tcp, w.tlsConfig())
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(w.cfg.HandshakeMsec)*time.Millisecond)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("handshake not done within %v", time.Duration(w.cfg.HandshakeMsec)*time.Millisecond)
		}
		return nil, failf(protocol.ExitTemp, "unable to accept TLS: %v", err)
	}
	return conn, nil
}

func (w *worker) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS12,
		CipherSuites:           w.cfg.CipherSuites,
		GetCertificate:         w.getCertificate,
		SessionTicketsDisabled: true, // a fresh process per connection could never resume
	}
}

// report sends the handshake's outcome to the supervisor and returns the
// reply block for the program.
func (w *worker) report(conn *tls.Conn) ([]byte, error) {
	cs := conn.ConnectionState()
	vars := toProtocol(env.TLS(&cs, w.chosen, true, "NONE"))
	block, err := protocol.EncodeBlock(vars)
	if err != nil {
		return nil, err
	}
	done := &protocol.HandshakeDone{Protocol: lookup(vars, "SSL_PROTOCOL"), Cipher: lookup(vars, "SSL_CIPHER")}
	if w.cfg.SSLEnv {
		done.Block = block
	} else {
		done.Block = []byte{0, 0}
	}
	return block, w.sup.Send(done)
}

func toProtocol(vars []env.Var) []protocol.Var {
	out := make([]protocol.Var, len(vars))
	for i, v := range vars {
		out[i] = protocol.Var{Name: v.Name, Value: v.Value}
	}
	return out
}

func lookup(vars []protocol.Var, name string) string {
	for _, v := range vars {
		if v.Name == name {
			return v.Value
		}
	}
	return ""
}

// answer completes the control protocol: after Y the block, then the
// control fd closes either way. In immediate mode the program may still
// ask later; it gets the same answer.
func (w *worker) answer(cmd protocol.Command, block []byte) {
	if !w.cfg.Delayed {
		go answerLate(w.ctl, block)
		return
	}
	if cmd == protocol.CmdStartReply {
		w.ctl.SetWriteDeadline(time.Now().Add(signWait))
		w.ctl.Write(block)
	}
	w.ctl.Close()
}

func answerLate(ctl net.Conn, block []byte) {
	defer ctl.Close()
	var b [1]byte
	if _, err := ctl.Read(b[:]); err != nil {
		return
	}
	if protocol.Command(b[0]) == protocol.CmdStartReply {
		ctl.SetWriteDeadline(time.Now().Add(signWait))
		ctl.Write(block)
	}
}

func (w *worker) loadCerts() error {
	for _, c := range w.cfg.Certs {
		leaf, err := x509.ParseCertificate(c.Chain[0])
		if err != nil {
			return fmt.Errorf("certificate %q: %w", c.Name, err)
		}
		signer := &remoteSigner{pub: leaf.PublicKey, key: c.Key, ch: w.kh, timeout: signWait}
		w.certs = append(w.certs, &tls.Certificate{Certificate: c.Chain, PrivateKey: signer, Leaf: leaf})
		w.leaves = append(w.leaves, leaf)
	}
	return nil
}

// getCertificate picks the certificate named for the client's SNI (the
// CERTFILE:name convention), else the first unnamed one.
func (w *worker) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	i := w.pick(strings.ToLower(strings.TrimSuffix(hello.ServerName, ".")))
	w.chosen = w.leaves[i]
	return w.certs[i], nil
}

func (w *worker) pick(sni string) int {
	def := -1
	for i, c := range w.cfg.Certs {
		if c.Name != "" && strings.EqualFold(c.Name, sni) {
			return i
		}
		if c.Name == "" && def < 0 {
			def = i
		}
	}
	if def < 0 {
		def = 0
	}
	return def
}
