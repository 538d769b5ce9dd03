package supervisor

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/ucspi-tls/sslserver/protocol"
)

// clientDone is a worker's handshake report for a client whose
// certificate's common name is cn.
func clientDone(t *testing.T, cn string) *protocol.HandshakeDone {
	t.Helper()
	block, err := protocol.EncodeBlock([]protocol.Var{{Name: "SSL_PROTOCOL", Value: "TLSv1.3"},
		{Name: "SSL_CLIENT_S_DN_CN", Value: cn}, {Name: "SSL_CLIENT_VERIFY", Value: "SUCCESS"}})
	if err != nil {
		t.Fatal(err)
	}
	return &protocol.HandshakeDone{Protocol: "TLSv1.3", Cipher: "TLS_AES_128_GCM_SHA256", Block: block}
}

// delayedClientNameServer runs sslserver -n -z -h, with 127.0.0.1's PTR
// name client.example.net, and a fake worker playing script once the
// test closes its gate: as the real worker does, it reports its
// handshake only after the program, started, asked for TLS.
func delayedClientNameServer(t *testing.T, gate chan struct{}, script sessionScript) *harness {
	t.Helper()
	script.do = func(*fakeSession) { <-gate }
	d := startFakeDNS(t, false)
	useDNS(t, d)
	d.ptr("127.0.0.1", "client.example.net.")
	return newServer(t, spawnerWith(workerScript{session: script}, programUntilTold), "-v", "-n", "-z", "-h").start()
}

// TestDelayedClientNameMatch: under -n -z the worker is told OK after
// its handshake report, and the program, untouched, ends the session.
func TestDelayedClientNameMatch(t *testing.T) {
	gate := make(chan struct{})
	h := delayedClientNameServer(t, gate, sessionScript{send: []protocol.Message{clientDone(t, "Client.Example.NET")},
		judged: true, waitExited: true})
	h.dial()
	fs, p := h.session(), h.program()
	close(gate)
	h.waitLine(fmt.Sprintf("sslserver: tls %d accept", fs.proc.pid))
	p.exit <- ExitState{Code: 0}
	waitClosed(t, fs.ended, "the worker's SessionEnd")
	if fs.verdict == nil || !fs.verdict.OK || fs.verdict.Seq != fs.seq {
		t.Fatalf("the worker was told %+v, want OK for session %d; log:\n%s", fs.verdict, fs.seq, h.log.String())
	}
	h.waitLine(fmt.Sprintf("sslserver: end %d status 0", fs.proc.pid))
	if sigs := p.gotSignals(); len(sigs) != 0 || strings.Contains(h.log.String(), "refused") {
		t.Errorf("a matching client: program got %v; log:\n%s", sigs, h.log.String())
	}
}

// TestDelayedClientNameMismatch: the worker is told no, the refusal is
// logged as under -N, the worker ends the session with 110, and the
// program, already running in plaintext, gets SIGTERM.
func TestDelayedClientNameMismatch(t *testing.T) {
	gate := make(chan struct{})
	h := delayedClientNameServer(t, gate, sessionScript{send: []protocol.Message{clientDone(t, "victim.example.com")},
		judged: true, waitExited: true})
	h.dial()
	fs, p := h.session(), h.program()
	close(gate)
	waitClosed(t, fs.ended, "the worker's SessionEnd")
	if fs.verdict == nil || fs.verdict.OK {
		t.Fatalf("the worker was told %+v, want a refusal; log:\n%s", fs.verdict, h.log.String())
	}
	h.waitLine(`sslserver: warning: dropping connection from 127.0.0.1, client certificate refused: names ["victim.example.com"], none is the remote host "client.example.net"`)
	h.waitLine(fmt.Sprintf("sslserver: end %d status 110", fs.proc.pid))
	if !slices.Contains(p.gotSignals(), os.Signal(syscall.SIGTERM)) {
		t.Errorf("the program got %v, want SIGTERM", p.gotSignals())
	}
}

// TestDelayedClientNameWorkerDoesNotWait plays a worker that ends the
// session right after its report, as one that relayed without the
// verdict would: it broke the protocol, is killed, and the program is
// ended.
func TestDelayedClientNameWorkerDoesNotWait(t *testing.T) {
	gate := make(chan struct{})
	h := delayedClientNameServer(t, gate, sessionScript{send: []protocol.Message{clientDone(t, "victim.example.com")}})
	h.dial()
	fs, p := h.session(), h.program()
	close(gate)
	broke := fmt.Sprintf("sslserver: warning: TLS worker %d broke the protocol: end of session %d ", fs.proc.pid, fs.seq)
	waitFor(t, "the broken protocol logged", func() bool { return strings.Contains(h.log.String(), broke) })
	waitFor(t, "the program's SIGTERM", func() bool { return slices.Contains(p.gotSignals(), os.Signal(syscall.SIGTERM)) })
	// 110 or 111: whether the verdict was made before the worker's end.
	end := fmt.Sprintf("sslserver: end %d status 11", fs.proc.pid)
	waitFor(t, "the end line", func() bool { return strings.Contains(h.log.String(), end) })
	// Asked by its signals, not its end: the fake worker may see its
	// channel close, which follows the SIGKILL, before it sees the kill.
	waitDone(t, fs.proc, "worker")
	if !slices.Contains(fs.proc.gotSignals(), os.Signal(syscall.SIGKILL)) {
		t.Errorf("the worker got %v, want SIGKILL", fs.proc.gotSignals())
	}
}
