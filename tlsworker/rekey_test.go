package tlsworker

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"net"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
)

// utDyingHolder reads one request on ch and hangs up without answering:
// a key holder killed while it signs.
func utDyingHolder(holder *protocol.Channel, read chan<- struct{}) {
	holder.Recv()
	holder.Close()
	close(read)
}

// TestSignerSurvivesAKeyHolderRestart: a request the key holder took and
// never answered is asked again of the new key holder, whose channel the
// worker gets from the supervisor after one KeyHolderLost; a second
// signer of the same worker then uses the new channel without asking.
func TestSignerSurvivesAKeyHolderRestart(t *testing.T) {
	keys := utKeys(t).signers()
	holder, old := utChannels(t)
	read := make(chan struct{})
	go utDyingHolder(holder, read)
	supW, supS, err := protocol.Pair("ut supervisor")
	if err != nil {
		t.Fatal(err)
	}
	workerSup, _ := protocol.NewChannel(supW, protocol.SupervisorOrders)
	sup, _ := protocol.NewChannel(supS, protocol.WorkerReports)
	defer workerSup.Close()
	defer sup.Close()
	link := newKeyLink(old, workerSup)
	defer func() { link.ch.Close() }() // the new key holder's end of it
	next := utStartHolder(t, keys, 2, 0)
	go utSuperviseOnce(t, sup, link, next)

	sum := sha256.Sum256([]byte("handshake"))
	for _, key := range []uint16{utECDSA, utRSA} {
		s := &remoteSigner{pub: keys[key].Public(), key: key, ch: old, timeout: utBound, renew: link.renew}
		sig, err := s.Sign(rand.Reader, sum[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("key %d: %v", key, err)
		}
		req := &protocol.SignRequest{Key: key, Hash: crypto.SHA256, Digest: sum[:]}
		if err := utVerify(s.Public(), req, sig); err != nil {
			t.Errorf("key %d: %v", key, err)
		}
	}
	waitClosedT(t, read)
	sup.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if m, _, err := sup.Recv(); err == nil {
		t.Errorf("a second report %T after the new channel", m)
	}
}

// utSuperviseOnce answers one KeyHolderLost with next's channel, as the
// supervisor and the worker's readSupervisor do together.
func utSuperviseOnce(t *testing.T, sup *protocol.Channel, link *keyLink, next *utHolder) {
	m, _, err := sup.Recv()
	if _, ok := m.(*protocol.KeyHolderLost); !ok || err != nil {
		t.Errorf("the supervisor got %T, %v", m, err)
		return
	}
	f, err := next.raw.(*net.UnixConn).File() // a dup of the worker's end
	if err != nil {
		t.Error(err)
		return
	}
	link.deliver(f)
}

func waitClosedT(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(utBound):
		t.Fatal("the first key holder never read the request")
	}
}
