package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ucspi-tls/sslserver/bench/load"
)

const (
	readyWait   = 15 * time.Second // a server's start, up to its first good session
	probeWait   = 3 * time.Second  // one probe session
	stableWait  = 3 * time.Second  // its idle process count settling
	settleWait  = 10 * time.Second // the last round's sessions ending
	stopWait    = 3 * time.Second  // SIGTERM before SIGKILL
	stablePolls = 6                // same count this many times 50 ms apart
)

// server is one variant running for one cell, in a process group of its
// own so that it and everything it started can be ended together.
type server struct {
	v       *variant
	cmd     *exec.Cmd
	target  load.Target
	base    int    // processes in its tree when idle
	program string // the program each session runs
	idleKiB int64  // PSS of its tree just after it started
	logf    *os.File
	done    chan struct{} // closed when the server process is reaped
	failed  bool          // a round failed: skip it for the rest of the cell
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// settle waits until the last round's sessions have ended (see settle).
func (s *server) settle() (left int, timedOut bool, err error) {
	prog := ""
	if s.v.kind.pooled {
		prog = filepath.Base(s.program)
	}
	return settle(s.pid(), s.base, prog, settleWait)
}

// freePort asks the kernel for a loopback port nobody uses right now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startServer starts v for st and waits until a session of c works.
func startServer(ctx context.Context, v *variant, t *tools, st *setup, c *cell, target load.Target) (*server, error) {
	cmd, err := v.command(t, st)
	if err != nil {
		return nil, err
	}
	logName := fmt.Sprintf("%s-%d.log", strings.NewReplacer(" ", "_", "/", "_").Replace(v.name), st.port)
	logf, err := os.Create(filepath.Join(st.dir, logName))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig: if the driver dies, its servers do too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", v.name, err)
	}
	s := &server{v: v, program: firstWord(frontProgram(st)), cmd: cmd, target: target, logf: logf, done: make(chan struct{})}
	go s.reap()
	if err := s.ready(ctx, c); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *server) reap() {
	s.cmd.Wait()
	close(s.done)
}

// ready waits for one good session, then for the tree to be idle.
func (s *server) ready(ctx context.Context, c *cell) error {
	deadline := time.Now().Add(readyWait)
	for {
		err := probe(ctx, c, s.target)
		if err == nil {
			break
		}
		select {
		case <-s.done:
			return fmt.Errorf("%s exited at start: %s", s.v.name, s.logTail())
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: no good session within %v: %w", s.v.name, readyWait, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	base, err := stableCount(s.pid())
	if err != nil {
		return err
	}
	s.base = base
	m, err := treePSS(s.pid())
	if err != nil {
		return err
	}
	s.idleKiB = m.KiB
	return nil
}

// probe runs one session of the kind c measures.
func probe(ctx context.Context, c *cell, t load.Target) error {
	ctx, cancel := context.WithTimeout(ctx, probeWait)
	defer cancel()
	switch c.prog {
	case progEcho, progBackendEcho:
		h, err := load.Hold(ctx, t, 1, probeWait)
		if err == nil {
			h.Close()
		}
		return err
	case progDiscard, progBackendDiscard:
		_, err := load.Bulk(ctx, t, load.Upload, 0, 0)
		return err
	}
	r, err := load.Sessions(ctx, t, load.Options{Kind: c.kind(), Clients: 1, Limit: probeWait, Max: 1})
	if err == nil && r.Sessions != 1 {
		err = fmt.Errorf("probe session failed: %v", r.FirstErr)
	}
	return err
}

// stableCount waits until the number of processes in root's tree stays
// the same for a while: the idle server with whatever it keeps ready.
func stableCount(root int) (int, error) {
	deadline := time.Now().Add(stableWait)
	last, same := -1, 0
	for time.Now().Before(deadline) && same < stablePolls {
		pids, err := treeOf(root)
		if err != nil {
			return 0, err
		}
		if len(pids) == last {
			same++
		} else {
			last, same = len(pids), 0
		}
		time.Sleep(50 * time.Millisecond)
	}
	if last <= 0 {
		return 0, errors.New("server process is gone")
	}
	return last, nil
}

// stop ends the server: SIGTERM, then SIGKILL to its whole process group
// (workers, programs) whatever SIGTERM left.
func (s *server) stop() {
	pid := s.pid()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(stopWait):
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	<-s.done
	s.logf.Close()
}

// logTail is the end of the server's output, for error messages.
func (s *server) logTail() string {
	b, err := os.ReadFile(s.logf.Name())
	if err != nil {
		return err.Error()
	}
	t := strings.TrimSpace(string(b))
	if len(t) > 400 {
		t = "..." + t[len(t)-400:]
	}
	if t == "" {
		return "(no output)"
	}
	return strings.ReplaceAll(t, "\n", " | ")
}

// firstWord is argv[0], or "" for a front cell's server that runs no
// program.
func firstWord(argv []string) string {
	if len(argv) == 0 {
		return ""
	}
	return argv[0]
}
