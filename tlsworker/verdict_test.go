package tlsworker

import (
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
)

// verdictSession is a session of a -n -z worker whose supervisor
// channel is the test: it plays the supervisor's messages on msgs.
func verdictSession(seq uint32) (*session, chan supMsg) {
	return verdictSessionWith(seq, protocol.ClientCertMatchHost, true)
}

func verdictSessionWith(seq uint32, mode uint8, reported bool) (*session, chan supMsg) {
	w := &worker{cfg: &protocol.WorkerConfig{Delayed: true, ClientCert: mode}, msgs: make(chan supMsg)}
	s := &session{w: w, seq: seq, exited: make(chan struct{}), done: make(chan struct{}), verdict: make(chan bool, 1)}
	s.reported.Store(reported)
	go s.watchSupervisor()
	return s, w.msgs
}

// TestVerdictLetsTheSessionGoOn: OK goes on; a refusal is a failure
// with status 110 that the worker does not report again (the supervisor
// logged it); the program's exit ends the wait with neither.
func TestVerdictLetsTheSessionGoOn(t *testing.T) {
	s, msgs := verdictSession(7)
	msgs <- supMsg{m: &protocol.ClientVerdict{Seq: 7, OK: true}}
	if ok, err := s.awaitVerdict(); !ok || err != nil {
		t.Errorf("OK: %v, %v", ok, err)
	}
	msgs <- supMsg{m: &protocol.ProgramExited{Seq: 7}}
	<-s.exited

	s, msgs = verdictSession(8)
	msgs <- supMsg{m: &protocol.ClientVerdict{Seq: 8, OK: false}}
	ok, err := s.awaitVerdict()
	var f *failure
	if ok || !errors.As(err, &f) || f.code != protocol.ExitClientCert || !f.told {
		t.Errorf("refusal: %v, %v", ok, err)
	}
	close(s.done)
	<-s.exited

	s, msgs = verdictSession(9)
	msgs <- supMsg{m: &protocol.ProgramExited{Seq: 9}}
	if ok, err := s.awaitVerdict(); ok || err != nil {
		t.Errorf("program gone first: %v, %v", ok, err)
	}
}

// TestNoVerdictUnderOtherModes: only -n -z waits.
func TestNoVerdictUnderOtherModes(t *testing.T) {
	for _, cfg := range []*protocol.WorkerConfig{{Delayed: false, ClientCert: protocol.ClientCertMatchHost},
		{Delayed: true, ClientCert: protocol.ClientCertRequire}} {
		s := &session{w: &worker{cfg: cfg}, verdict: make(chan bool, 1)}
		if ok, err := s.awaitVerdict(); !ok || err != nil {
			t.Errorf("%+v: %v, %v", cfg, ok, err)
		}
	}
}

// TestVerdictOutOfTurnEndsTheWorker plays a broken supervisor: a
// verdict for another session, a second one, one before the handshake
// report, or one under -m ends the worker process with 111 (it runs in
// a child: the worker exits).
func TestVerdictOutOfTurnEndsTheWorker(t *testing.T) {
	if c := os.Getenv("ITEST_VERDICT_CASE"); c != "" {
		playVerdictOutOfTurn(c)
		return
	}
	for _, c := range []string{"other session", "twice", "before the report", "under -m"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestVerdictOutOfTurnEndsTheWorker$")
		cmd.Env = append(os.Environ(), "ITEST_VERDICT_CASE="+c)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != protocol.ExitTemp {
			t.Errorf("%s: %v, want exit 111\n%s", c, err, out)
		}
	}
}

func playVerdictOutOfTurn(c string) {
	yes := supMsg{m: &protocol.ClientVerdict{Seq: 7, OK: true}}
	mode, reported, send := uint8(protocol.ClientCertMatchHost), true, []supMsg{yes}
	switch c {
	case "other session":
		send = []supMsg{{m: &protocol.ClientVerdict{Seq: 8, OK: true}}}
	case "twice":
		send = []supMsg{yes, yes}
	case "before the report":
		reported = false
	case "under -m":
		mode = protocol.ClientCertRequire
	}
	_, msgs := verdictSessionWith(7, mode, reported)
	for _, m := range send {
		msgs <- m
	}
	time.Sleep(5 * time.Second) // the worker exits first
	os.Exit(0)
}
