package supervisor

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/ucspi-tls/sslserver/env"
	"github.com/ucspi-tls/sslserver/internal/testutil"
	"github.com/ucspi-tls/sslserver/protocol"
)

// rawBlock writes entries as a worker may, without EncodeBlock's checks.
func rawBlock(entries ...string) []byte {
	return []byte(strings.Join(entries, "\x00") + "\x00\x00")
}

// onCall returns a session hook that plays attack in the worker's n-th
// session of the test (counting from 1), and waits there to be killed;
// every other session goes by its script.
func onCall(n int32, attack func(fs *fakeSession)) func(fs *fakeSession) {
	var calls atomic.Int32
	return func(fs *fakeSession) {
		if calls.Add(1) == n {
			attack(fs)
			<-fs.proc.killed
		}
	}
}

// goodBlock is what a worker reports for a plain TLS 1.3 session.
const goodEntries = "SSL_PROTOCOL=TLSv1.3\x00SSL_CIPHER=TLS_AES_128_GCM_SHA256"

// TestSessionRefusesHostileReports: under -N -s a worker's SSL_* report
// becomes the program's environment, so one with a name env.TLS does not
// make, a value beyond its bound or with a newline, or too many
// variables, kills the worker and ends its session before any program
// runs, with a line naming the worker and the variable; the next session
// is served.
func TestSessionRefusesHostileReports(t *testing.T) {
	many := make([]string, env.MaxTLSVars+1)
	for i := range many {
		many[i] = "SSL_CLIENT_SAN_DNS_0=x"
	}
	cases := []struct {
		name  string
		block []byte
		why   string // what the warning says after "broke the protocol: "
	}{
		{"SSL_CERT_FILE", rawBlock(goodEntries, "SSL_CERT_FILE=/tmp/evil.pem"), `handshake report: variable "SSL_CERT_FILE": not a name TLS makes`},
		{"SSL_CERT_DIR", rawBlock("SSL_CERT_DIR=/tmp", goodEntries), `handshake report: variable "SSL_CERT_DIR": not a name TLS makes`},
		{"RELAYCLIENT", rawBlock(goodEntries, "RELAYCLIENT="), `handshake report: variable "RELAYCLIENT": not a name TLS makes`},
		{"LD_PRELOAD", rawBlock("LD_PRELOAD=/tmp/evil.so"), `handshake report: variable "LD_PRELOAD": not a name TLS makes`},
		{"a name with '='", rawBlock("SSL_=CERT_FILE=/tmp/evil.pem"), `handshake report: variable "SSL_": not a name TLS makes`},
		{"a name with NUL", rawBlock("SSL_CERT\x00_FILE=/x"), `message type 2: reply block entry without '='`},
		{"a name over 64 bytes", rawBlock("SSL_" + strings.Repeat("X", 5000) + "=x"), `handshake report: variable "SSL_` + strings.Repeat("X", 60) + `..."`},
		{"an oversized value", rawBlock("SSL_CLIENT_S_DN=" + strings.Repeat("a", env.MaxTLSValue+1)), `handshake report: variable "SSL_CLIENT_S_DN": value of 16385 bytes, more than 16384`},
		{"a newline", rawBlock("SSL_CLIENT_S_DN_CN=a\nRELAYCLIENT="), `handshake report: variable "SSL_CLIENT_S_DN_CN": value with a newline`},
		{"too many variables", rawBlock(many...), `handshake report: 1025 variables, more than 1024`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hostile := &protocol.HandshakeDone{Protocol: "TLSv1.3", Cipher: "TLS_AES_128_GCM_SHA256", Block: c.block}
			good := &protocol.HandshakeDone{Protocol: "TLSv1.3", Cipher: "TLS_AES_128_GCM_SHA256", Block: rawBlock(goodEntries)}
			w := workerScript{session: sessionScript{
				do:         onCall(1, func(fs *fakeSession) { fs.proc.ch.Send(hostile) }),
				send:       []protocol.Message{good},
				waitExited: true,
			}}
			sp := spawnerWith(w, programExits(ExitState{}))
			h := newServer(t, sp, "-s", "-v").start()
			h.dial()
			fs := h.session()
			h.waitLinePrefix(fmt.Sprintf("sslserver: warning: TLS worker %d broke the protocol: %s", fs.proc.pid, c.why))
			if st := waitDone(t, fs.proc, "worker"); st.Signal != int(syscall.SIGKILL) {
				t.Errorf("worker ended with %+v, want SIGKILL", st)
			}
			h.waitLine(fmt.Sprintf("sslserver: end %d status 111", fs.proc.pid))
			if len(sp.programs) != 0 {
				t.Error("a program ran with a hostile report")
			}
			for _, l := range h.lines() {
				if len(l) > 400 {
					t.Errorf("a log line of %d bytes", len(l))
				}
			}
			h.dial()
			next := h.session()
			p := h.program()
			if !envHas(p.spec.Env, "SSL_CIPHER=TLS_AES_128_GCM_SHA256") || envNames(p.spec.Env, "SSL_CERT_") != nil {
				t.Errorf("the next session's program has %q", envNames(p.spec.Env, "SSL_"))
			}
			h.waitLine(fmt.Sprintf("sslserver: end %d status 0", next.proc.pid))
		})
	}
}

// sendFiles sends m, which carries Files(m) descriptors, with fresh
// pipe ends, and closes its own copies: whatever stays open afterwards
// is the receiver's.
func sendFiles(t *testing.T, ch *protocol.Channel, m protocol.Message) {
	files := make([]*os.File, protocol.Files(m))
	for i := range files {
		r, w, err := os.Pipe()
		if err != nil {
			t.Error(err)
			return
		}
		r.Close()
		files[i] = w
	}
	if err := ch.Send(m, files...); err != nil {
		t.Errorf("sending %T: %v", m, err)
	}
	closeFiles(files)
}

// outOfTurnKeys is the most descriptors one message may carry, in a
// message no worker may send.
func outOfTurnKeys() *protocol.Keys {
	return &protocol.Keys{Count: protocol.MaxKeyFiles, UID: 1, GID: 1, Root: "/x"}
}

// TestSessionWorkerDescriptorsOutOfTurn: a worker that attaches 64
// descriptors to a message out of turn, in a session, is killed and its
// session ended; the supervisor keeps none of them, and serves on.
func TestSessionWorkerDescriptorsOutOfTurn(t *testing.T) {
	w := workerScript{session: sessionScript{
		do:         onCall(2, func(fs *fakeSession) { sendFiles(t, fs.proc.ch, outOfTurnKeys()) }),
		send:       []protocol.Message{handshakeDone()},
		waitExited: true,
	}}
	sp := spawnerWith(w, programExits(ExitState{}))
	h := newServer(t, sp, "-v").start()
	session := func(want string) *fakeSession {
		c := h.dial()
		fs := h.session()
		h.waitLine(fmt.Sprintf("sslserver: end %d %s", fs.proc.pid, want))
		waitDone(t, fs.proc, "worker")
		c.Close()
		return fs
	}
	session("status 0") // warm up: the runtime's own descriptors
	h.waitLineCount("sslserver: status: 0/40", 2)
	noFinalizers(t)
	before := testutil.OwnFdCount(t)
	fs := session("status 111")
	h.waitLine(fmt.Sprintf("sslserver: warning: TLS worker %d broke the protocol: message type 20 not accepted here (64 files closed)", fs.proc.pid))
	if fs.proc.state.Signal != int(syscall.SIGKILL) {
		t.Errorf("worker ended with %+v, want SIGKILL", fs.proc.state)
	}
	h.waitLineCount("sslserver: status: 0/40", 3)
	waitFds(t, before)
	session("status 0")
}

// TestWorkerDescriptorsBeforeReady: a new worker that sends 64
// descriptors instead of WorkerReady is killed, none of them stays open,
// and sessions go to the workers that did start.
func TestWorkerDescriptorsBeforeReady(t *testing.T) {
	var started atomic.Int32
	hostile := make(chan struct{})
	before := 0
	w := goodWorker
	w.notReady = func(p *fakeProc, ch *protocol.Channel) bool {
		if started.Add(1) != 2 { // the first is checkWorker's
			return false
		}
		before = testutil.OwnFdCount(t)
		sendFiles(t, ch, outOfTurnKeys())
		close(hostile)
		<-p.killed
		return true
	}
	sp := spawnerWith(w, programExits(ExitState{}))
	noFinalizers(t)
	h := newServer(t, sp, "-v").start()
	h.worker()
	h.dial() // takes the ready worker; the pool starts the hostile one
	first := h.session()
	bad := h.worker()
	waitClosed(t, hostile, "the hostile worker's message")
	h.waitLinePrefix(fmt.Sprintf("sslserver: warning: unable to start a TLS worker ahead of time: worker %d did not get ready: message type 20 not accepted here (64 files closed)", bad.pid))
	if st := waitDone(t, bad, "worker"); st.Signal != int(syscall.SIGKILL) {
		t.Errorf("worker ended with %+v, want SIGKILL", st)
	}
	h.waitLine(fmt.Sprintf("sslserver: end %d status 0", first.proc.pid))
	// The hostile worker and its start are gone: fewer than while it ran.
	waitFds(t, before)
	h.dial()
	fs := h.session()
	h.waitLine(fmt.Sprintf("sslserver: end %d status 0", fs.proc.pid))
}
