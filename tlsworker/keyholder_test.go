package tlsworker

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/internal/testutil"
	"github.com/ucspi-tls/sslserver/protocol"
)

// utBound is how long a test waits for something that should happen at
// once; reaching it is a failure, not a slow machine.
const utBound = 5 * time.Second

// The indexes of utKeySet.signers, as the key holder numbers its keys.
const (
	utRSA uint16 = iota
	utECDSA
	utEd25519
	utKeyCount
)

// utKeySet is one key of each type a certificate may have.
type utKeySet struct {
	rsa     *rsa.PrivateKey
	ecdsa   *ecdsa.PrivateKey
	ed25519 ed25519.PrivateKey
}

func (k *utKeySet) signers() []crypto.Signer {
	return []crypto.Signer{k.rsa, k.ecdsa, k.ed25519}
}

var (
	utKeysOnce sync.Once
	utKeysVal  *utKeySet
	utKeysErr  error
)

// utKeys makes the key set once per test binary: RSA keys are slow to
// generate, above all under -race.
func utKeys(t *testing.T) *utKeySet {
	t.Helper()
	utKeysOnce.Do(utMakeKeys)
	if utKeysErr != nil {
		t.Fatal(utKeysErr)
	}
	return utKeysVal
}

func utMakeKeys() {
	k := &utKeySet{}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		utKeysErr = err
		return
	}
	if k.ecdsa, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		utKeysErr = err
		return
	}
	if _, k.ed25519, err = ed25519.GenerateKey(rand.Reader); err != nil {
		utKeysErr = err
		return
	}
	utKeysVal = k
}

// utHolder is the worker's end of a channel served by workerClient, the
// key holder's per-worker loop.
type utHolder struct {
	w    *workerClient
	ch   *protocol.Channel
	raw  net.Conn      // the same socket, for bytes no encoder would write
	done chan struct{} // closed when serve has returned
}

func utStartHolder(t *testing.T, signers []crypto.Signer, budget int, wait time.Duration) *utHolder {
	t.Helper()
	return utStartHolderWith(t, signers, budget, wait, nil)
}

// utStartHolderWith is utStartHolder with the key holder's ticket keys,
// set before its loop starts.
func utStartHolderWith(t *testing.T, signers []crypto.Signer, budget int, wait time.Duration, tickets *ticketKeys) *utHolder {
	t.Helper()
	holderEnd, workerEnd, err := protocol.Pair("ut key holder")
	if err != nil {
		t.Fatal(err)
	}
	kh, err := protocol.NewChannel(holderEnd, protocol.SignRequests)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.FileConn(workerEnd) // a dup: NewChannel closes workerEnd
	if err != nil {
		t.Fatal(err)
	}
	ch, err := protocol.NewChannel(workerEnd, protocol.SignReplies)
	if err != nil {
		t.Fatal(err)
	}
	w := &workerClient{ch: kh, signers: signers, wait: wait, grants: make(chan struct{}, 1), tickets: tickets}
	w.grant(budget)
	h := &utHolder{w: w, ch: ch, raw: raw, done: make(chan struct{})}
	go utServe(w, h.done)
	t.Cleanup(func() { h.close(t) })
	return h
}

func utServe(w *workerClient, done chan<- struct{}) {
	defer close(done)
	w.serve()
}

// close hangs up as a worker does and waits for serve to notice.
func (h *utHolder) close(t *testing.T) {
	h.ch.Close()
	h.raw.Close()
	select {
	case <-h.done:
	case <-time.After(utBound):
		t.Error("the key holder's worker loop outlived the worker's hangup")
	}
}

// ask sends m and returns the key holder's reply.
func (h *utHolder) ask(t *testing.T, m protocol.Message) protocol.Message {
	t.Helper()
	if err := h.ch.Send(m); err != nil {
		t.Fatalf("sending %T: %v", m, err)
	}
	return h.reply(t)
}

func (h *utHolder) reply(t *testing.T) protocol.Message {
	t.Helper()
	h.ch.SetDeadline(time.Now().Add(utBound))
	r, _, err := h.ch.Recv()
	if err != nil {
		t.Fatalf("waiting for the key holder's reply: %v", err)
	}
	return r
}

// expectHangup checks that the key holder closed the channel, with no
// further message, and that its loop for this worker has ended.
func (h *utHolder) expectHangup(t *testing.T) {
	t.Helper()
	h.ch.SetDeadline(time.Now().Add(utBound))
	m, _, err := h.ch.Recv()
	if !errors.Is(err, io.EOF) {
		t.Fatalf("the key holder sent %s (%v), want a hangup", utDescribe(m), err)
	}
	select {
	case <-h.done:
	case <-time.After(utBound):
		t.Fatal("the key holder's worker loop is still running")
	}
}

// utExpectRefused checks that m is a SignRefused whose reason says why.
func utExpectRefused(t *testing.T, m protocol.Message, why string) {
	t.Helper()
	r, ok := m.(*protocol.SignRefused)
	if !ok {
		t.Fatalf("got %s, want SignRefused", utDescribe(m))
	}
	if !strings.Contains(r.Reason, why) {
		t.Errorf("refused with %q, want a reason containing %q", r.Reason, why)
	}
}

// utDescribe names a message for a failure report, without the bulk of
// a signature.
func utDescribe(m protocol.Message) string {
	switch m := m.(type) {
	case nil:
		return "nothing"
	case *protocol.SignRefused:
		return fmt.Sprintf("SignRefused %q", m.Reason)
	}
	return fmt.Sprintf("%T", m)
}

// utRequest asks key to sign msg the way a TLS handshake would: its
// digest under hash, or (hash 0, Ed25519) the message itself.
func utRequest(key uint16, hash crypto.Hash, pss bool, msg []byte) *protocol.SignRequest {
	digest := msg
	if hash != 0 {
		h := hash.New()
		h.Write(msg)
		digest = h.Sum(nil)
	}
	return &protocol.SignRequest{Key: key, Hash: hash, PSS: pss, Digest: digest}
}

// utVerify checks sig against pub for what req asked to be signed.
func utVerify(pub crypto.PublicKey, req *protocol.SignRequest, sig []byte) error {
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		if req.PSS {
			return rsa.VerifyPSS(pub, req.Hash, req.Digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		return rsa.VerifyPKCS1v15(pub, req.Hash, req.Digest, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, req.Digest, sig) {
			return errors.New("ECDSA signature does not verify")
		}
		return nil
	case ed25519.PublicKey:
		if !ed25519.Verify(pub, req.Digest, sig) {
			return errors.New("Ed25519 signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("unexpected public key %T", pub)
}

// utExpectSignature checks that m is a Signature of what req asked for,
// made by the key req named.
func utExpectSignature(t *testing.T, keys []crypto.Signer, req *protocol.SignRequest, m protocol.Message) {
	t.Helper()
	s, ok := m.(*protocol.Signature)
	if !ok {
		t.Fatalf("got %s, want a Signature", utDescribe(m))
	}
	if err := utVerify(keys[req.Key].Public(), req, s.Sig); err != nil {
		t.Fatal(err)
	}
}

// TestKeyHolderSignsWithinBudget: each kind of signature a handshake
// asks for verifies with the right public key; with a budget of one, the
// second request is refused and the worker's channel closed.
func TestKeyHolderSignsWithinBudget(t *testing.T) {
	keys := utKeys(t).signers()
	cases := []struct {
		name string
		key  uint16
		hash crypto.Hash
		pss  bool
	}{
		{"RSA PKCS1v15 SHA-256", utRSA, crypto.SHA256, false},
		{"RSA PKCS1v15 SHA-512", utRSA, crypto.SHA512, false},
		{"RSA PSS SHA-256", utRSA, crypto.SHA256, true},
		{"RSA PSS SHA-384", utRSA, crypto.SHA384, true},
		{"ECDSA SHA-256", utECDSA, crypto.SHA256, false},
		{"ECDSA SHA-384", utECDSA, crypto.SHA384, false},
		{"Ed25519", utEd25519, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := utStartHolder(t, keys, 1, 0)
			req := utRequest(c.key, c.hash, c.pss, []byte("handshake transcript "+c.name))
			utExpectSignature(t, keys, req, h.ask(t, req))
			utExpectRefused(t, h.ask(t, req), "no more signatures")
			h.expectHangup(t)
		})
	}
}

// TestKeyHolderBudgetCounts: a budget of n is n signatures, over any
// keys, and a budget of zero signs nothing.
func TestKeyHolderBudgetCounts(t *testing.T) {
	keys := utKeys(t).signers()
	h := utStartHolder(t, keys, 3, 0)
	reqs := []*protocol.SignRequest{
		utRequest(utECDSA, crypto.SHA256, false, []byte("one")),
		utRequest(utEd25519, 0, false, []byte("two")),
		utRequest(utRSA, crypto.SHA256, true, []byte("three")),
	}
	for _, req := range reqs {
		utExpectSignature(t, keys, req, h.ask(t, req))
	}
	utExpectRefused(t, h.ask(t, reqs[0]), "no more signatures")
	h.expectHangup(t)

	none := utStartHolder(t, keys, 0, 0)
	utExpectRefused(t, none.ask(t, reqs[0]), "no more signatures")
	none.expectHangup(t)
}

// TestKeyHolderRefusesMisfits: requests that decode but do not fit the
// key get SignRefused and a hangup,
// though the budget would allow more.
func TestKeyHolderRefusesMisfits(t *testing.T) {
	keys := utKeys(t).signers()
	msg := []byte("transcript")
	cases := []struct {
		name string
		m    protocol.Message
		why  string
	}{
		{"key index out of range", utRequest(utKeyCount, crypto.SHA256, false, msg), "no key 3"},
		{"RSA asked for an Ed25519-style signature", utRequest(utRSA, 0, false, msg), "without a hash"},
		{"PSS on ECDSA", utRequest(utECDSA, crypto.SHA256, true, msg), "ECDSA"},
		// crypto/ed25519 would sign this one as Ed25519ph.
		{"a hash on Ed25519", utRequest(utEd25519, crypto.SHA512, false, msg), "Ed25519 key asked"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := utStartHolder(t, keys, 2, 0)
			utExpectRefused(t, h.ask(t, c.m), c.why)
			h.expectHangup(t)
		})
	}
}

// TestKeyHolderHangsUpOnMalformed: a datagram the strict decoder refuses
// ends the channel without an answer, as any malformed message between
// our processes does. A digest whose length is not its hash's is one:
// SignRequest.Check runs inside the decoder, so the key holder never
// sees it as a request.
func TestKeyHolderHangsUpOnMalformed(t *testing.T) {
	keys := utKeys(t).signers()
	short := utRequest(utRSA, crypto.SHA384, false, []byte("x"))
	short.Digest = short.Digest[:32]
	valid := protocol.Encode(utRequest(utECDSA, crypto.SHA256, false, []byte("x")))
	cases := []struct {
		name string
		p    []byte
	}{
		{"digest of the wrong length", protocol.Encode(short)},
		{"Ed25519 message over the bound", protocol.Encode(&protocol.SignRequest{Key: utEd25519, Digest: make([]byte, protocol.MaxSignInput+1)})},
		{"unknown message type", []byte{0xff, 0, 0}},
		{"truncated sign request", valid[:len(valid)-1]},
		{"trailing byte", append(append([]byte{}, valid...), 0)},
		{"empty datagram", []byte{}},
		{"a Signature instead of a request", protocol.Encode(&protocol.Signature{Sig: []byte("forged")})},
		{"a supervisor message", protocol.Encode(&protocol.WorkerReady{})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := utStartHolder(t, keys, 2, 0)
			if _, err := h.raw.Write(c.p); err != nil {
				t.Fatal(err)
			}
			h.expectHangup(t)
		})
	}
}

// TestKeyHolderClosesDescriptorsOutOfTurn: a worker that attaches the
// most descriptors a datagram may carry to a message of a type that
// carries them (Keys) is hung up on, and the key holder keeps none.
func TestKeyHolderClosesDescriptorsOutOfTurn(t *testing.T) {
	h := utStartHolder(t, utKeys(t).signers(), 2, 0)
	files := make([]*os.File, protocol.MaxKeyFiles)
	for i := range files {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		files[i] = w
	}
	before := testutil.OwnFdCount(t)
	if err := h.ch.Send(&protocol.Keys{Count: protocol.MaxKeyFiles, UID: 1, GID: 1, Root: "/x"}, files...); err != nil {
		t.Fatal(err)
	}
	closeFiles(files)
	h.expectHangup(t)
	// The pipes are closed here; what is left is the key holder's copies.
	if after := testutil.OwnFdCount(t); after > before-protocol.MaxKeyFiles {
		t.Fatalf("%d fds before, %d after the key holder refused %d descriptors", before, after, protocol.MaxKeyFiles)
	}
}

// TestKeyHolderGrants: a worker at the end of its allowance waits, up
// to the wait, for the supervisor's grant for its next session: a grant
// within the wait lets the request through, none gets it refused and the
// channel closed. Grants do not add up, and an idle worker keeps its
// channel however long it waits for its next session.
func TestKeyHolderGrants(t *testing.T) {
	keys := utKeys(t).signers()
	const wait = 300 * time.Millisecond
	req := utRequest(utECDSA, crypto.SHA256, false, []byte("x"))

	h := utStartHolder(t, keys, 1, wait)
	utExpectSignature(t, keys, req, h.ask(t, req))
	time.Sleep(2 * wait) // idle between sessions: no deadline
	select {
	case <-h.done:
		t.Fatal("the key holder hung up on an idle worker")
	default:
	}
	h.w.grant(1)
	h.w.grant(1) // a second grant before the session uses the first
	utExpectSignature(t, keys, req, h.ask(t, req))

	// The grant comes while the request waits for it.
	if err := h.ch.Send(req); err != nil {
		t.Fatal(err)
	}
	time.Sleep(wait / 3)
	h.w.grant(1)
	utExpectSignature(t, keys, req, h.reply(t))

	// No grant: refused once the wait is over, and the channel is gone.
	start := time.Now()
	utExpectRefused(t, h.ask(t, req), "no more signatures")
	if took := time.Since(start); took < wait*3/4 {
		t.Errorf("refused after %v, before the %v wait for a grant", took, wait)
	}
	h.expectHangup(t)
}
