// Package supervisor is sslserver's privileged process: it parses the
// command line, reads the certificates, binds, accepts, applies limits,
// builds each program's environment, starts and reaps the TLS workers,
// the key holder and the programs, and logs. It never parses TLS bytes
// and never touches plaintext.
//
//	os.Exit(supervisor.Main(os.Args[1:], os.Stdout, os.Stderr))
package supervisor

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/internal/getopt"
	"github.com/ucspi-tls/sslserver/protocol"
	"github.com/ucspi-tls/sslserver/tlsworker"
	"github.com/ucspi-tls/sslserver/tlsworker/keys"
)

// drainWait bounds how long SIGTERM waits for running sessions.
const drainWait = 30 * time.Second

// LogFormatVar selects the JSON log form when set to "json".
const LogFormatVar = "SSLSERVER_LOG"

// Server is one sslserver.
type Server struct {
	opt     *Options
	log     *Log
	spawn   Spawner
	exe     string
	tls     *tlsSetup
	kh      *keyHolder
	pool    *workerPool
	reloads reloader
	poll    time.Duration // SSL_RELOAD_POLL
	seq     atomic.Uint32 // session numbers, for the worker protocol
	environ []string      // the program's base environment
	proxies proxyTrust    // PROXYFROM
	program programSide   // runs each session's program; nil: exec it (sslserver)

	mu       sync.Mutex
	active   int
	perIP    perIP
	stopping bool
	sessions map[*session]struct{}
	slotFree *sync.Cond
	wg       sync.WaitGroup
}

// Main runs sslserver with args (without the program name) and returns
// the exit code.
func Main(args []string, stdout, stderr *os.File) int {
	return MainWith(args, stdout, stderr, ExecSpawner{Stderr: stderr})
}

// MainWith is Main with another way to start processes.
func MainWith(args []string, stdout, stderr *os.File, sp Spawner) int {
	return mainFlavor(args, stdout, stderr, sp, sslserverFlavor)
}

// mainFlavor is the main of sslserver and of sslhandle, which differ as
// fl says.
func mainFlavor(args []string, stdout, stderr *os.File, sp Spawner, fl *flavor) int {
	opt, err := fl.parse(args)
	if errors.Is(err, getopt.ErrHelp) {
		fmt.Fprint(stdout, fl.help)
		return protocol.ExitOK
	}
	if err != nil {
		getopt.PrintUsage(stderr, fl.name, err)
		return protocol.ExitUsage
	}
	defer surviveBrokenPipe()()
	out := newLogQueue()
	log := NewLog(out, fl.name, opt.Verbosity, os.Getenv(LogFormatVar) == "json")
	out.resumed = log.lost
	out.start(stderr)
	defer out.close(logFlushWait)
	// Caught from here on: by default SIGHUP would kill sslserver without
	// draining, leaving workers and programs behind. One that comes before
	// the server is ready waits in the channel and reloads then.
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)
	// Descriptors inherited from whoever started us must not reach a
	// worker, the key holder or a program.
	if err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err != nil {
		log.Fatal("unable to mark inherited descriptors close-on-exec: %v", err)
		return protocol.ExitTemp
	}
	s, ln, err := setup(opt, log, sp)
	if err != nil {
		log.Fatal("%v", err)
		return protocol.ExitTemp
	}
	defer s.tls.cleanup()
	if opt.PrintPort {
		fmt.Fprintln(stdout, ln.Addr().(*net.TCPAddr).Port)
	}
	if err := s.kh.start(); err != nil {
		log.Fatal("unable to load private key: %v", err)
		return protocol.ExitTemp
	}
	if err := s.checkWorker(); err != nil {
		log.Fatal("unable to start a TLS worker: %v", err)
		s.kh.shutdown()
		return protocol.ExitTemp
	}
	if s.program = fl.programs(s); s.program != nil {
		if err := s.program.begin(); err != nil {
			log.Fatal("%v", err)
			s.pool.stop()
			s.kh.shutdown()
			return protocol.ExitTemp
		}
	}
	s.logRecords(s.tls.certSet)
	go s.watchCerts(hups, s.poll)
	s.notify(daemonReady)
	s.serve(ln)
	return protocol.ExitOK
}

func setup(opt *Options, log *Log, sp Spawner) (*Server, *net.TCPListener, error) {
	if os.Geteuid() != 0 {
		return nil, nil, errors.New("must run as root to confine TLS workers")
	}
	if err := tlsworker.CanConfine(); err != nil {
		return nil, nil, err
	}
	if err := programIDs(opt); err != nil {
		return nil, nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("unable to find my own binary: %w", err)
	}
	// Workers and the key holder are this very binary, reached through
	// /proc/self/exe: the directories on the way to it need not be open
	// to their uid, and a binary replaced on disk by an upgrade does not
	// start workers of another version than the supervisor's.
	s := &Server{opt: opt, log: log, spawn: sp, exe: "/proc/self/exe", sessions: map[*session]struct{}{}}
	if v := os.Getenv("DNSCACHEIP"); v != "" {
		if _, err := parseDNSCache(v); err != nil {
			return nil, nil, err
		}
	}
	s.pool = &workerPool{srv: s}
	if s.pool.target, s.pool.sessions, err = poolSettings(os.Getenv, opt.MaxConn); err != nil {
		return nil, nil, err
	}
	if s.poll, err = pollInterval(os.Getenv); err != nil {
		return nil, nil, err
	}
	s.perIP.count = map[netip.Addr]int{}
	if s.perIP.limit, err = parseMaxConIP(os.Getenv("MAXCONIP")); err != nil {
		return nil, nil, err
	}
	if s.proxies, err = parseProxyFrom(os.Getenv(ProxyFromVar)); err != nil {
		return nil, nil, err
	}
	if opt.ReusePort, err = parseReusePort(os.Getenv(ReusePortVar)); err != nil {
		return nil, nil, err
	}
	s.slotFree = sync.NewCond(&s.mu)
	s.kh = &keyHolder{srv: s, stop: make(chan struct{})}
	if s.tls, err = loadTLS(opt, os.Getenv, os.Environ(), log); err != nil {
		return nil, nil, err
	}
	if err := s.tls.canExec(exe); err != nil {
		s.tls.cleanup()
		return nil, nil, err
	}
	inherited := inheritedSockets()
	if opt.Passphrase && inherited != nil {
		s.tls.cleanup()
		closeFiles(inherited)
		return nil, nil, errors.New("-3 reads the passphrase from fd 3, where socket activation put the listening socket")
	}
	if err := s.readPassphrase(); err != nil {
		s.tls.cleanup()
		return nil, nil, err
	}
	if err := s.checkConfig(s.tls.certSet); err != nil {
		s.tls.cleanup()
		return nil, nil, err
	}
	if opt.UID != nil && *opt.UID == s.tls.uid {
		log.Warning("TLS workers share the program's uid %d, so programs could signal them and the key holder: set SSL_UID and SSL_GID to an account of their own", s.tls.uid)
	}
	s.environ = programBase(os.Environ())
	warnReusePort(opt, inherited != nil, log)
	ln, err := listener(opt, inherited)
	if err != nil {
		s.tls.cleanup()
		return nil, nil, err
	}
	return s, ln, nil
}

// listener is the inherited socket under socket activation, else host
// and port bound.
func listener(opt *Options, inherited []*os.File) (*net.TCPListener, error) {
	if inherited != nil {
		return activatedListener(inherited, opt)
	}
	ln, err := Listen(opt)
	if err != nil {
		return nil, fmt.Errorf("unable to bind: %w", err)
	}
	return ln, nil
}

// nextSeq numbers sessions, never 0.
func (s *Server) nextSeq() uint32 {
	for {
		if n := s.seq.Add(1); n != 0 {
			return n
		}
	}
}

// checkWorker starts one worker before serving, so a worker that cannot
// confine itself stops sslserver at start rather than failing every
// session; it then fills the pool.
func (s *Server) checkWorker() error {
	w, err := s.pool.start()
	if err != nil {
		return err
	}
	s.pool.keep(w)
	s.pool.refillLater()
	return nil
}

// programIDs applies -U: the program's ids from $UID and $GID.
func programIDs(o *Options) error {
	if !o.FromEnvIDs {
		return nil
	}
	for _, p := range []struct {
		name string
		dst  **uint32
	}{{"UID", &o.UID}, {"GID", &o.GID}} {
		v := os.Getenv(p.name)
		if v == "" {
			return fmt.Errorf("-U: $%s is not set", p.name)
		}
		if err := id(p.dst, v); err != nil {
			return fmt.Errorf("-U: $%s: %w", p.name, err)
		}
	}
	return nil
}

// readPassphrase implements -3: the key's passphrase, NUL-terminated, on
// fd 3, which is closed afterwards so the program never inherits it.
func (s *Server) readPassphrase() error {
	if !s.opt.Passphrase {
		return nil
	}
	f := os.NewFile(3, "passphrase")
	defer f.Close()
	p, err := keys.ReadPassphrase(f)
	if err != nil {
		return fmt.Errorf("unable to read passphrase from fd 3: %w", err)
	}
	s.tls.passphrase = p
	return nil
}

// serverOnlyVars are sslserver's own settings that are not secrets (the
// env package removes those): the log form, the PROXY protocol's trusted
// senders, SO_REUSEPORT, and what a service manager hands sslserver
// itself. Socket activation's variables would make a program that knows
// them look for descriptors it does not have.
var serverOnlyVars = []string{LogFormatVar, ProxyFromVar, ReusePortVar,
	"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET"}

// programBase is the server's environment less serverOnlyVars.
func programBase(environ []string) []string {
	return withoutVars(environ, serverOnlyVars...)
}

// withoutVars is environ less the variables names.
func withoutVars(environ []string, names ...string) []string {
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(names, name) {
			out = append(out, kv)
		}
	}
	return out
}

// serve is the accept loop: wait for a free slot, accept, start a
// session. SIGTERM or SIGINT closes the listener and drains.
func (s *Server) serve(ln *net.TCPListener) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	go s.stopOnSignal(sigs, ln)
	s.log.Status(0, s.opt.MaxConn)
	for s.waitSlot() {
		c, err := ln.AcceptTCP()
		if errors.Is(err, net.ErrClosed) {
			break
		}
		if err != nil {
			s.log.Warning("unable to accept: %v", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		s.startSession(c)
	}
	s.drain()
}

func (s *Server) stopOnSignal(sigs <-chan os.Signal, ln *net.TCPListener) {
	<-sigs
	s.notify(daemonStopping)
	ln.Close()
	s.mu.Lock()
	s.stopping = true
	s.slotFree.Broadcast()
	s.mu.Unlock()
}

// waitSlot blocks while -c sessions are running: accept waits at the
// limit, leaving new clients in the kernel's backlog. It returns false
// once the server is stopping.
func (s *Server) waitSlot() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.active >= s.opt.MaxConn && !s.stopping {
		s.slotFree.Wait()
	}
	return !s.stopping
}

func (s *Server) startSession(c *net.TCPConn) {
	ss := &session{srv: s, conn: c}
	s.mu.Lock()
	s.active++
	s.sessions[ss] = struct{}{}
	n := s.active
	s.mu.Unlock()
	s.log.Status(n, s.opt.MaxConn)
	s.wg.Add(1)
	go s.runSession(ss)
}

func (s *Server) runSession(ss *session) {
	defer s.wg.Done()
	ss.run()
	s.mu.Lock()
	s.active--
	delete(s.sessions, ss)
	n := s.active
	s.slotFree.Signal()
	s.mu.Unlock()
	s.log.Status(n, s.opt.MaxConn)
}

// drain waits, bounded, for running sessions, then ends what is left,
// and stops the key holder.
func (s *Server) drain() {
	done := make(chan struct{})
	go waitGroup(&s.wg, done)
	select {
	case <-done:
	case <-time.After(drainWait):
		s.log.Warning("ending %d sessions still running after %v", s.count(), drainWait)
		s.killAll()
		<-done
	}
	if s.program != nil {
		s.program.end()
	}
	s.pool.stop()
	s.kh.shutdown()
}

func waitGroup(wg *sync.WaitGroup, done chan<- struct{}) {
	wg.Wait()
	close(done)
}

func (s *Server) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

func (s *Server) killAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ss := range s.sessions {
		ss.kill()
	}
}
