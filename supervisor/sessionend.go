package supervisor

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/ucspi-tls/sslserver/env"
	"github.com/ucspi-tls/sslserver/internal/proc"
	"github.com/ucspi-tls/sslserver/protocol"
)

// readWorker takes the worker's reports for this session, in the only
// order a worker may send them: HandshakeDone at most once, SessionFailed
// at most once, then SessionEnd. Anything else, or a malformed message,
// kills the worker. It ends at SessionEnd or when the worker is gone.
func (ss *session) readWorker() {
	defer close(ss.ended)
	ss.endCode = -1
	for {
		m, _, err := ss.w.ch.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				ss.outOfTurn(err.Error())
			}
			return
		}
		if done := ss.handle(m); done {
			return
		}
	}
}

// handle takes one report; true means the session's reports are over.
func (ss *session) handle(m protocol.Message) bool {
	switch m := m.(type) {
	case *protocol.HandshakeDone:
		return ss.handshakeDone(m)
	case *protocol.SessionFailed:
		ss.mu.Lock()
		dup := ss.failed != nil
		ss.failed = m
		ss.mu.Unlock()
		if dup {
			ss.outOfTurn("a second failure report")
			return true
		}
		ss.srv.log.Warning("dropping connection from %s, %s", ss.ep.RemoteIP, m.Reason)
		return false
	case *protocol.SessionEnd:
		return ss.sessionEnd(m)
	case *protocol.KeyHolderLost:
		return ss.keyHolderLost()
	}
	ss.outOfTurn(fmt.Sprintf("message type %d out of turn", m.Type()))
	return true
}

// keyHolderLost gives the worker a channel to the restarted key holder.
func (ss *session) keyHolderLost() bool {
	err := ss.srv.pool.rekey(ss.w)
	var broke *brokeProtocol
	if errors.As(err, &broke) {
		ss.outOfTurn(err.Error())
		return true
	}
	if err != nil {
		ss.srv.log.Warning("unable to give TLS worker %d a new key channel: %v", ss.w.proc.Pid(), err)
	}
	return false
}

func (ss *session) handshakeDone(m *protocol.HandshakeDone) bool {
	ss.mu.Lock()
	dup := ss.handshook
	ss.handshook = true
	ss.mu.Unlock()
	if dup {
		ss.outOfTurn("a second handshake report")
		return true
	}
	ss.srv.log.TLS(ss.w.proc.Pid(), m.Protocol, m.Cipher)
	vars, err := tlsVars(m.Block)
	if err != nil {
		ss.outOfTurn(err.Error())
		return true
	}
	ss.hsVars <- vars
	return false
}

func (ss *session) sessionEnd(m *protocol.SessionEnd) bool {
	ss.mu.Lock()
	failed, refused := ss.failed, ss.judged && ss.rejected
	early := ss.judging() && ss.handshook && !ss.judged && !ss.exitSent
	ss.mu.Unlock()
	want := uint8(0)
	switch {
	case failed != nil:
		want = failed.Code
	case early:
		// It did not wait for the verdict on its client's name.
		ss.outOfTurn(fmt.Sprintf("end of session %d before the verdict on its client", m.Seq))
		return true
	case refused:
		want = protocol.ExitClientCert
	}
	if m.Seq != ss.seq || m.Code != want {
		ss.outOfTurn(fmt.Sprintf("end of session %d with status %d", m.Seq, m.Code))
		return true
	}
	ss.endCode = int(m.Code)
	return true
}

// outOfTurn ends a session whose worker broke the protocol. what may
// quote the worker's bytes; the line keeps the first maxWhat of them.
func (ss *session) outOfTurn(what string) {
	if len(what) > maxWhat {
		what = what[:maxWhat] + "..."
	}
	ss.srv.log.Warning("TLS worker %d broke the protocol: %s", ss.w.proc.Pid(), what)
	ss.w.kill()
}

// maxWhat bounds the reason in a "broke the protocol" line.
const maxWhat = 256

// awaitHandshake waits for the worker's handshake (bounded by the
// handshake deadline and a margin), for -N -s.
func (ss *session) awaitHandshake() ([]env.Var, bool) {
	t := time.NewTimer(ss.srv.opt.Handshake + 5*time.Second)
	defer t.Stop()
	select {
	case vars := <-ss.hsVars:
		return vars, true
	case <-ss.ended:
	case <-t.C:
		ss.srv.log.Warning("TLS worker %d did not finish its handshake in time", ss.w.proc.Pid())
		ss.w.kill()
	}
	return nil, false
}

// tlsVars takes a worker's SSL_* block only if it is one that env.TLS
// could have made: a worker is untrusted, and must not be able to set
// SSL_CERT_FILE, RELAYCLIENT, LD_PRELOAD or TCPREMOTEIP in the
// program's environment, nor hand it values beyond env's bounds.
func tlsVars(block []byte) ([]env.Var, error) {
	pvars, err := protocol.DecodeBlock(block)
	if err != nil {
		return nil, err
	}
	vars := make([]env.Var, len(pvars))
	for i, v := range pvars {
		vars[i] = env.Var{Name: v.Name, Value: v.Value}
	}
	if err := env.CheckTLS(vars, true); err != nil {
		return nil, fmt.Errorf("handshake report: %w", err)
	}
	return vars, nil
}

// finish waits for the program and the worker's end of the session, and
// logs the session's end. When the program exits first, the worker is
// told, so it can flush and stop; when the worker fails, the program is
// ended.
func (ss *session) finish(prog Process) {
	ss.mu.Lock()
	ss.program = prog
	killed := ss.killed
	ss.mu.Unlock()
	if killed {
		ss.kill()
	}
	progDone, progGone := make(chan ExitState, 1), make(chan struct{})
	if prog != nil {
		go reap(prog, progDone, progGone)
	} else {
		ss.programExited()
	}
	ps := ss.wait(prog, progDone, progGone)
	ss.logEnd(ps, prog != nil)
	ss.srv.pool.release(ss.w, ss.endCode == 0)
}

// reap waits for p, sends its state on done and closes gone.
func reap(p Process, done chan<- ExitState, gone chan struct{}) {
	done <- p.Wait()
	close(gone)
}

func (ss *session) programExited() {
	select {
	case <-ss.ended:
	default:
		ss.mu.Lock()
		ss.exitSent = true
		ss.mu.Unlock()
		ss.w.ch.Send(&protocol.ProgramExited{Seq: ss.seq})
	}
}

func (ss *session) wait(prog Process, progDone chan ExitState, progGone chan struct{}) (ps ExitState) {
	workerDone, progOver := ss.ended, prog == nil
	for workerDone != nil || !progOver {
		select {
		case ps = <-progDone:
			progOver = true
			ss.programExited()
		case <-workerDone:
			workerDone = nil
			if !progOver && ss.endCode != 0 {
				go proc.Terminate(prog, progGone, termGrace)
			}
		}
	}
	return ps
}

// logEnd: the worker's failure code if it failed, else the program's
// status; a worker that died or broke the protocol is a temporary
// failure.
func (ss *session) logEnd(ps ExitState, ran bool) {
	pid := ss.w.proc.Pid()
	ss.mu.Lock()
	rejected := ss.rejected // set by judgeClient, another goroutine
	ss.mu.Unlock()
	switch {
	case rejected:
		ss.srv.log.End(pid, "status", protocol.ExitClientCert)
	case ss.endCode < 0:
		ss.srv.log.Warning("TLS worker %d for %s ended the session without a report (%s)", pid, ss.ep.RemoteIP, ss.w.fate())
		ss.srv.log.End(pid, "status", protocol.ExitTemp)
	case ss.endCode != 0:
		ss.srv.log.End(pid, "status", ss.endCode)
	case !ran:
		ss.srv.log.End(pid, "status", protocol.ExitTemp)
	case ps.Signal != 0:
		ss.srv.log.End(pid, "signal", ps.Signal)
	default:
		ss.srv.log.End(pid, "status", ps.Code)
	}
}

// kill ends a session at shutdown: the program gets SIGTERM (SIGKILL
// after termGrace), the worker SIGKILL.
func (ss *session) kill() {
	ss.mu.Lock()
	ss.killed = true
	prog, w := ss.program, ss.w
	ss.mu.Unlock()
	if prog != nil {
		prog.Signal(syscall.SIGTERM)
		time.AfterFunc(termGrace, func() { prog.Signal(syscall.SIGKILL) })
	}
	if w != nil {
		w.kill()
	}
}
