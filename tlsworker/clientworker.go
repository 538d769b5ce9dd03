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
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/env"
	"github.com/ucspi-tls/sslserver/protocol"
	"github.com/ucspi-tls/sslserver/tlsworker/keys"
)

const (
	// clientMaxFiles is the TLS process's RLIMIT_NOFILE once confined:
	// its five descriptors, what the Go runtime opens, and a margin.
	clientMaxFiles = 32
	// maxCADirFiles bounds how many entries of CADIR are read.
	maxCADirFiles = 4096
	// ctlWriteWait bounds writing the reply block to the program.
	ctlWriteWait = 10 * time.Second
)

// clientWorker is sslclient's TLS process, one per sslclient. Its
// states, in order:
//
//	configured -> trust anchors loaded -> confined -> key loaded -> ready
//	-> (-y: awaiting command) -> handshaking -> relaying -> done
//
// Any failure before relaying is reported to sslclient as SessionFailed
// and ends the process with that exit code.
type clientWorker struct {
	cfg      *protocol.ClientConfig
	parent   *protocol.Channel
	keyFile  *os.File // with a client certificate, until parsed
	roots    *x509.CertPool
	cert     *tls.Certificate // nil: no client certificate
	sentCert bool             // the server asked for it and got it
	verify   string           // SSL_SERVER_VERIFY
	ctl      net.Conn         // -y only
	toProg   *os.File
	fromProg *os.File
	exited   chan struct{} // closed when sslclient says the program is gone
}

// verifyError marks a handshake refused by our own verification.
type verifyError struct{ err error }

func (v *verifyError) Error() string { return v.err.Error() }

// ClientWorkerMain runs sslclient's TLS process with the fd map of
// protocol.ClientWorkerFd* and returns its exit code.
func ClientWorkerMain() int {
	// A terminal's signals go to the whole process group; the TLS process
	// ends with its program, not before it.
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT)
	w, err := newClientWorker()
	if err != nil {
		return fail(protocol.ClientWorkerArgv0, err)
	}
	return w.finish(w.run())
}

func newClientWorker() (*clientWorker, error) {
	ch, err := protocol.NewChannel(os.NewFile(protocol.ClientWorkerFdParent, "sslclient"), protocol.ClientOrders)
	if err != nil {
		return nil, err
	}
	m, files, err := recvFirst(ch, protocol.MsgClientConfig, "the configuration")
	if err != nil {
		return nil, err
	}
	w := &clientWorker{cfg: m.(*protocol.ClientConfig), parent: ch, exited: make(chan struct{})}
	if len(files) == 1 {
		w.keyFile = files[0]
	}
	return w, nil
}

// finish reports a failure to sslclient and returns the exit code.
func (w *clientWorker) finish(err error) int {
	if err == nil {
		return protocol.ExitOK
	}
	var f *failure
	if !errors.As(err, &f) {
		f = &failure{code: protocol.ExitTemp, reason: err.Error()}
	}
	w.parent.Send(&protocol.SessionFailed{Code: uint8(f.code), Reason: reasonText(f.reason)})
	return f.code
}

// reasonText fits a reason into one line of a SessionFailed: control
// characters (which a certificate name may carry) as \xHH, at most 1000
// bytes.
func reasonText(s string) string {
	var b []byte
	for i := 0; i < len(s) && len(b) < 1000; i++ {
		if c := s[i]; c < ' ' || c == 0x7f {
			b = fmt.Appendf(b, `\x%02X`, c)
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

func (w *clientWorker) run() error {
	steps := []func() error{w.loadRoots, w.confine, w.loadCert, w.openFiles,
		func() error { return w.parent.Send(&protocol.ClientReady{}) }}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	go w.watchParent()
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

// loadRoots reads the trust anchors. It runs before confinement, which
// takes away the file system: CAFILE, CADIR, or the system's roots (Go's
// x509.SystemCertPool, which honours SSL_CERT_FILE and SSL_CERT_DIR).
// These are the administrator's files, not the server's bytes.
func (w *clientWorker) loadRoots() error {
	if w.cfg.CAFile == "" && w.cfg.CADir == "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			return fmt.Errorf("unable to load the system's trust anchors: %w", err)
		}
		w.roots = pool
		return nil
	}
	w.roots = x509.NewCertPool()
	if w.cfg.CAFile != "" {
		if err := addPEMFile(w.roots, w.cfg.CAFile); err != nil {
			return fmt.Errorf("CAFILE: %w", err)
		}
	}
	if w.cfg.CADir != "" {
		if err := addCADir(w.roots, w.cfg.CADir); err != nil {
			return fmt.Errorf("CADIR: %w", err)
		}
	}
	return nil
}

func addPEMFile(pool *x509.CertPool, path string) error {
	pem, err := readBounded(path)
	if err != nil {
		return err
	}
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("no certificate in %q", path)
	}
	return nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, keys.MaxFileSize+1))
	if err == nil && len(b) > keys.MaxFileSize {
		err = fmt.Errorf("%q is larger than %d bytes", path, keys.MaxFileSize)
	}
	return b, err
}

// addCADir reads every file of an OpenSSL CA directory (c_rehash's
// links and the certificates alike); files that hold no certificate are
// skipped, but the directory must yield at least one.
func addCADir(pool *x509.CertPool, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > maxCADirFiles {
		return fmt.Errorf("%q has more than %d entries", dir, maxCADirFiles)
	}
	found := false
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
			continue
		}
		if addPEMFile(pool, path) == nil {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("no certificate in directory %q", dir)
	}
	return nil
}

// confine: fully, as a server's worker, when sslclient runs as root;
// else as far as an unprivileged process can. Either way the sandbox
// follows.
func (w *clientWorker) confine() error {
	if w.cfg.Jail {
		return confineAndSandbox(Jail{UID: w.cfg.UID, GID: w.cfg.GID, Root: w.cfg.Root, MaxFiles: clientMaxFiles})
	}
	if err := ConfineUnprivileged(clientMaxFiles); err != nil {
		return err
	}
	_, err := Sandbox()
	return err
}

// loadCert parses the client key, confined, from the descriptor sslclient
// opened, and checks it against the certificate. There is no key holder
// on the client side: this process holds the key for its one handshake.
func (w *clientWorker) loadCert() error {
	if !w.cfg.HasKey() {
		return nil
	}
	if w.keyFile == nil {
		return errors.New("client certificate without its key file")
	}
	signer, err := parseKeyFile(w.keyFile, w.cfg.Passphrase)
	w.keyFile.Close()
	keys.Wipe(w.cfg.Passphrase)
	if err != nil {
		return fmt.Errorf("unable to load the client key: %w", err)
	}
	cert, err := keys.Chain(w.cfg.Chain).TLSCertificate(signer)
	if err != nil {
		return fmt.Errorf("client certificate: %w", err)
	}
	w.cert = &cert
	return nil
}

// openFiles takes over the descriptors of the fd map, except the TCP
// connection: under -y the program owns it, blocking and untouched,
// until it hands it over with a command.
func (w *clientWorker) openFiles() error {
	ctlFile := os.NewFile(protocol.ClientWorkerFdCtl, "ctl")
	if w.cfg.Delayed {
		c, err := net.FileConn(ctlFile)
		if err != nil {
			ctlFile.Close()
			return fmt.Errorf("control socket: %w", err)
		}
		w.ctl = c
	}
	ctlFile.Close()
	w.toProg = clientPipe(protocol.ClientWorkerFdToProgram, "to program")
	w.fromProg = clientPipe(protocol.ClientWorkerFdFromProgram, "from program")
	return nil
}

// clientPipe lets the runtime poller drive our end of a pipe; the
// program's end is another open file and keeps its mode.
func clientPipe(fd int, name string) *os.File {
	unix.SetNonblock(fd, true)
	return os.NewFile(uintptr(fd), name)
}

// watchParent waits for the one message sslclient sends after the
// configuration: that the program has exited. Anything else, or an
// sslclient that is gone, ends the session the same way.
func (w *clientWorker) watchParent() {
	defer close(w.exited)
	w.parent.Recv()
}

// awaitCommand reads the program's one control byte. It returns 0 when
// the program closed the control fd or exited without a command: the
// session then simply ends, and the program may go on in plaintext.
func (w *clientWorker) awaitCommand() (protocol.Command, error) {
	return readCommand(w.ctl, w.exited)
}

// serve takes the connection, does the handshake, answers the command,
// and relays.
func (w *clientWorker) serve(cmd protocol.Command) error {
	tcp, err := tcpConn(os.NewFile(protocol.ClientWorkerFdConn, "server"), "server")
	if err != nil {
		return err
	}
	defer tcp.Close()
	conn, err := w.handshake(tcp)
	if err != nil {
		return err
	}
	block, err := w.report(conn)
	if err != nil {
		return err
	}
	w.answer(cmd, block)
	r := &relay{tls: conn, tcp: tcp, toProg: w.toProg, fromProg: w.fromProg,
		idle: time.Duration(w.cfg.IdleMsec) * time.Millisecond, exited: w.exited}
	r.run()
	return nil
}

func (w *clientWorker) handshake(tcp *net.TCPConn) (*tls.Conn, error) {
	conn := tls.Client(tcp, w.tlsConfig())
	d := time.Duration(w.cfg.HandshakeMsec) * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err := conn.HandshakeContext(ctx)
	var v *verifyError
	switch {
	case err == nil:
		return conn, nil
	case errors.As(err, &v):
		return nil, &failure{code: protocol.ExitTemp,
			reason: fmt.Sprintf("unable to verify the certificate of %s: %v", tcp.RemoteAddr(), v.err)}
	case ctx.Err() != nil:
		err = fmt.Errorf("not done within %d seconds", d/time.Second)
	}
	return nil, &failure{code: protocol.ExitTemp, reason: fmt.Sprintf("TLS handshake with %s failed: %v", tcp.RemoteAddr(), err)}
}

// tlsConfig verifies in verifyConnection rather than in crypto/tls, so
// that under -X the result is still known and reported as
// SSL_SERVER_VERIFY; the handshake's own signature checks are not
// affected by InsecureSkipVerify.
func (w *clientWorker) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		ServerName:           w.cfg.ServerName,
		InsecureSkipVerify:   true,
		VerifyConnection:     w.verifyConnection,
		CipherSuites:         w.cfg.CipherSuites,
		GetClientCertificate: w.clientCertificate,
	}
}

// verifyConnection checks the server's chain against the trust anchors
// and its name (DNS name or IP address) against VerifyHost. Without
// Enforce (-X) a failure is recorded and the handshake goes on.
func (w *clientWorker) verifyConnection(cs tls.ConnectionState) error {
	err := w.verifyPeer(cs)
	if err == nil {
		w.verify = "SUCCESS"
		return nil
	}
	w.verify = "FAILED:" + reasonText(err.Error())
	if !w.cfg.Enforce {
		return nil
	}
	return &verifyError{err: err}
}

func (w *clientWorker) verifyPeer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the server sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots: w.roots, Intermediates: inter, DNSName: w.cfg.VerifyHost,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}

// clientCertificate answers a server's certificate request with ours, or
// with none.
func (w *clientWorker) clientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if w.cert == nil {
		return &tls.Certificate{}, nil
	}
	w.sentCert = true
	return w.cert, nil
}

// report sends the handshake's outcome to sslclient and returns the
// reply block: SSL_SERVER_* describe the server, SSL_CLIENT_* our
// certificate if we sent it.
func (w *clientWorker) report(conn *tls.Conn) ([]byte, error) {
	cs := conn.ConnectionState()
	var own *x509.Certificate
	if w.sentCert {
		own = w.cert.Leaf
	}
	vars := toProtocol(env.TLS(&cs, own, false, w.verify))
	block, err := protocol.EncodeBlock(vars)
	if err != nil {
		return nil, err
	}
	done := &protocol.HandshakeDone{Protocol: lookup(vars, "SSL_PROTOCOL"), Cipher: lookup(vars, "SSL_CIPHER"), Block: block}
	return block, w.parent.Send(done)
}

// answer completes the control protocol under -y: the block after Y,
// then the control fd closes either way.
func (w *clientWorker) answer(cmd protocol.Command, block []byte) {
	if w.ctl == nil {
		return
	}
	if cmd == protocol.CmdStartReply {
		w.ctl.SetWriteDeadline(time.Now().Add(ctlWriteWait))
		w.ctl.Write(block)
	}
	w.ctl.Close()
}

// ConfineUnprivileged applies to the calling process what a process
// without root can: no new privileges on every thread, not dumpable (so
// no core file, and no ptrace or /proc/PID/mem access by other
// processes of the same uid, such as the program), no core files, no
// file writes (RLIMIT_FSIZE 0) and at most maxFiles descriptors. It then
// reads each setting back. Unlike Confine it cannot chroot or change ids:
// the process keeps the caller's uid and its file system view. sslclient
// uses it for its TLS process when it does not run as root.
func ConfineUnprivileged(maxFiles uint64) error {
	steps := []struct {
		what string
		do   func() error
	}{
		{"no_new_privs", setNoNewPrivs},
		{"not dumpable", func() error { return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0) }},
		{"no core files", func() error { return setLimit(unix.RLIMIT_CORE, 0) }},
		{"no file writes", func() error { return setLimit(unix.RLIMIT_FSIZE, 0) }},
		{"fd limit", func() error { return setLimit(unix.RLIMIT_NOFILE, maxFiles) }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return fmt.Errorf("confine: %s: %w", s.what, err)
		}
	}
	if err := checkFlags(Jail{}, unix.Stat_t{}); err != nil {
		return fmt.Errorf("confine: verification failed: %w", err)
	}
	if err := checkLimits(maxFiles); err != nil {
		return fmt.Errorf("confine: verification failed: %w", err)
	}
	return nil
}

// checkLimits reads back the limits ConfineUnprivileged set.
func checkLimits(maxFiles uint64) error {
	for _, l := range []struct {
		name     string
		resource int
		want     uint64
	}{{"RLIMIT_CORE", unix.RLIMIT_CORE, 0}, {"RLIMIT_FSIZE", unix.RLIMIT_FSIZE, 0}, {"RLIMIT_NOFILE", unix.RLIMIT_NOFILE, maxFiles}} {
		var r unix.Rlimit
		if err := unix.Getrlimit(l.resource, &r); err != nil {
			return fmt.Errorf("getrlimit %s: %w", l.name, err)
		}
		if r.Cur != l.want || r.Max != l.want {
			return fmt.Errorf("%s is %d/%d, want %d", l.name, r.Cur, r.Max, l.want)
		}
	}
	return nil
}
