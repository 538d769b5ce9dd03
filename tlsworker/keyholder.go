package tlsworker

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
	"github.com/ucspi-tls/sslserver/tlsworker/keys"
)

// maxKeyFile bounds what the key holder reads of one key file.
const maxKeyFile = 1 << 20

// startupWait bounds the wait for the supervisor's Keys message.
const startupWait = 30 * time.Second

// KeyHolderMain is the key holder: it reads its keys from the files the
// supervisor passed, confines itself, reports the public keys, and then
// signs for each worker whose channel the supervisor hands over, at most
// as many times as the supervisor allowed. It treats every worker as
// hostile: a malformed request ends that worker's channel. It returns the
// exit code.
func KeyHolderMain() int {
	f := os.NewFile(protocol.KeyHolderFdSupervisor, "supervisor")
	sup, err := protocol.NewChannel(f, protocol.KeyHolderOrders)
	if err != nil {
		return fail(protocol.KeyHolderArgv0, err)
	}
	signers, tickets, err := loadKeys(sup)
	if err != nil {
		if sup.Send(&protocol.KeysFailed{Reason: err.Error()}) == nil {
			return protocol.ExitTemp // the supervisor logs it, once
		}
		return fail(protocol.KeyHolderArgv0, err)
	}
	return serveSupervisor(sup, signers, tickets)
}

func fail(who string, err error) int {
	fmt.Fprintf(os.Stderr, "%s: fatal: %v\n", who, err)
	return protocol.ExitTemp
}

// recvFirst reads a confined process's first message, which must be of
// type want, within startupWait; what names it in errors.
func recvFirst(ch *protocol.Channel, want protocol.MsgType, what string) (protocol.Message, []*os.File, error) {
	ch.SetReadDeadline(time.Now().Add(startupWait))
	defer ch.SetReadDeadline(time.Time{})
	m, files, err := ch.Recv()
	if err != nil {
		return nil, nil, fmt.Errorf("waiting for %s: %w", what, err)
	}
	if m.Type() != want {
		closeFiles(files)
		return nil, nil, fmt.Errorf("message type %d before %s", m.Type(), what)
	}
	return m, files, nil
}

func loadKeys(sup *protocol.Channel) ([]crypto.Signer, *ticketKeys, error) {
	m, files, err := recvFirst(sup, protocol.MsgKeys, "the keys")
	if err != nil {
		return nil, nil, err
	}
	km := m.(*protocol.Keys)
	// Confine and sandbox first: the key files are already open, and
	// their contents are parsed with no privilege left to lose.
	jail := Jail{UID: km.UID, GID: km.GID, Root: km.Root, RootFD: protocol.KeyHolderFdRoot, MaxFiles: uint64(km.MaxFiles)}
	if err := confineAndSandbox(jail); err != nil {
		closeFiles(files)
		return nil, nil, err
	}
	tickets, err := loadTicketKeys(km, files)
	if err != nil {
		closeFiles(files[:km.Count])
		return nil, nil, err
	}
	signers, err := parseKeyFiles(files[:km.Count], km.Passphrase)
	keys.Wipe(km.Passphrase)
	if err != nil {
		return nil, nil, err
	}
	return signers, tickets, sendPublic(sup, signers)
}

// loadTicketKeys reads TICKETKEYFILE, the file after the keys, or makes
// keys of our own. Its failure is reported as the key one past the last.
func loadTicketKeys(km *protocol.Keys, files []*os.File) (*ticketKeys, error) {
	if !km.Tickets {
		return randomTicketKeys()
	}
	t, err := readTicketKeys(files[km.Count])
	if err != nil {
		return nil, protocol.KeyError(int(km.Count), err)
	}
	return t, nil
}

func parseKeyFiles(files []*os.File, pass []byte) ([]crypto.Signer, error) {
	defer closeFiles(files)
	var signers []crypto.Signer
	for i, f := range files {
		s, err := parseKeyFile(f, pass)
		if err != nil {
			return nil, protocol.KeyError(i, err)
		}
		signers = append(signers, s)
	}
	return signers, nil
}

func parseKeyFile(f *os.File, pass []byte) (crypto.Signer, error) {
	pem, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	defer keys.Wipe(pem)
	if err != nil {
		return nil, err
	}
	if len(pem) > maxKeyFile {
		return nil, fmt.Errorf("key file larger than %d bytes", maxKeyFile)
	}
	return keys.ParseKey(pem, pass)
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

func sendPublic(sup *protocol.Channel, signers []crypto.Signer) error {
	var m protocol.KeysLoaded
	for _, s := range signers {
		der, err := x509.MarshalPKIXPublicKey(s.Public())
		if err != nil {
			return err
		}
		m.Public = append(m.Public, der)
	}
	return sup.Send(&m)
}

// serveSupervisor takes worker channels, and grants for them, until the
// supervisor hangs up; it returns once the workers it has have hung up
// too. A reload makes the supervisor hang up on the key holder it
// replaces, and the sessions that began with that key holder's keys
// finish with them.
func serveSupervisor(sup *protocol.Channel, signers []crypto.Signer, tickets *ticketKeys) int {
	var (
		mu      sync.Mutex
		workers = map[uint32]*workerClient{}
		serving sync.WaitGroup
	)
	for {
		m, files, err := sup.Recv()
		if errors.Is(err, io.EOF) {
			serving.Wait()
			return protocol.ExitOK
		}
		if err != nil {
			return fail(protocol.KeyHolderArgv0, err)
		}
		switch m := m.(type) {
		case *protocol.NewWorker:
			ch, err := protocol.NewChannel(files[0], protocol.SignRequests)
			if err != nil {
				return fail(protocol.KeyHolderArgv0, err)
			}
			w := &workerClient{ch: ch, signers: signers, tickets: tickets, wait: time.Duration(m.WaitMsec) * time.Millisecond,
				grants: make(chan struct{}, 1)}
			w.grant(int(m.Signs))
			mu.Lock()
			old := workers[m.ID]
			workers[m.ID] = w
			mu.Unlock()
			if old != nil {
				return fail(protocol.KeyHolderArgv0, fmt.Errorf("worker ID %d given twice", m.ID))
			}
			serving.Add(1)
			go func() {
				defer serving.Done()
				w.serve()
				mu.Lock()
				delete(workers, m.ID)
				mu.Unlock()
			}()
		case *protocol.Grant:
			mu.Lock()
			w := workers[m.ID]
			mu.Unlock()
			if w != nil { // else the worker has gone meanwhile
				w.grant(int(m.Signs))
			}
		default:
			closeFiles(files)
			return fail(protocol.KeyHolderArgv0, fmt.Errorf("unexpected message type %d from supervisor", m.Type()))
		}
	}
}

// workerClient is one worker's channel as the key holder sees it, for
// the worker's life. Each signature, ticket sealed and ticket opened
// takes an allowance of its kind; the supervisor grants a session's worth
// (perSession) for each session. Allowances do not add up: a worker
// whose session needed no signature does not carry one into the next.
type workerClient struct {
	ch      *protocol.Channel
	signers []crypto.Signer
	tickets *ticketKeys
	wait    time.Duration // for a grant, beyond the allowance
	mu      sync.Mutex
	allowed [opKinds]int
	grants  chan struct{} // a token when allowed went up
}

// The kinds of request a worker may make of the key holder.
const (
	opSign = iota
	opSeal
	opOpen
	opKinds
)

// perSession is what one session may ask of each kind: one signature
// (a full handshake signs once), one ticket sealed (Go's server sends one
// ticket a handshake, TLS 1.2 or 1.3), and two tickets opened (a TLS 1.3
// client may offer more than one; Go's server tries them in turn).
var perSession = [opKinds]int{opSign: 1, opSeal: 1, opOpen: 2}

var opNames = [opKinds]string{opSign: "signatures", opSeal: "tickets to seal", opOpen: "tickets to open"}

// grant raises each allowance to n sessions' worth.
func (w *workerClient) grant(n int) {
	w.mu.Lock()
	for op := range w.allowed {
		w.allowed[op] = max(w.allowed[op], n*perSession[op])
	}
	w.mu.Unlock()
	select {
	case w.grants <- struct{}{}:
	default:
	}
}

// take uses one allowance, waiting up to w.wait for a grant: one the
// supervisor sent before this worker's session may still be on its way
// through the supervisor's channel.
func (w *workerClient) take(op int) bool {
	deadline := time.NewTimer(w.wait)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		if w.allowed[op] > 0 {
			w.allowed[op]--
			w.mu.Unlock()
			return true
		}
		w.mu.Unlock()
		select {
		case <-w.grants:
		case <-deadline.C:
			return false
		}
	}
}

// serve answers the worker's sign requests until it hangs up; a worker
// waits for sessions as long as it likes, so there is no deadline on
// the next request.
func (w *workerClient) serve() {
	defer w.ch.Close()
	for {
		m, _, err := w.ch.Recv()
		if err != nil {
			return
		}
		op := opOf(m)
		if !w.take(op) {
			w.refuse("no more " + opNames[op] + " for this session")
			return
		}
		reply, err := w.answer(m)
		if err != nil {
			w.refuse(err.Error())
			return
		}
		if w.ch.Send(reply) != nil {
			return
		}
	}
}

// opOf is the kind of a request the channel accepted.
func opOf(m protocol.Message) int {
	switch m.(type) {
	case *protocol.SealTicket:
		return opSeal
	case *protocol.OpenTicket:
		return opOpen
	}
	return opSign
}

// answer serves one request within its allowance.
func (w *workerClient) answer(m protocol.Message) (protocol.Message, error) {
	switch m := m.(type) {
	case *protocol.SealTicket:
		t, err := w.tickets.seal(m.State)
		if err != nil || len(t) > protocol.MaxTicket {
			return nil, errors.New("unable to seal the ticket")
		}
		return &protocol.Ticket{Ticket: t}, nil
	case *protocol.OpenTicket:
		return &protocol.TicketState{State: w.tickets.open(m.Ticket)}, nil
	}
	sig, err := w.sign(m.(*protocol.SignRequest)) // the channel accepts nothing else
	if err != nil {
		return nil, err
	}
	return &protocol.Signature{Sig: sig}, nil
}

func (w *workerClient) refuse(reason string) {
	w.ch.Send(&protocol.SignRefused{Reason: reason})
}

func (w *workerClient) sign(req *protocol.SignRequest) ([]byte, error) {
	if int(req.Key) >= len(w.signers) {
		return nil, fmt.Errorf("no key %d", req.Key)
	}
	s := w.signers[req.Key]
	if err := fits(s, req); err != nil {
		return nil, err
	}
	return s.Sign(rand.Reader, req.Digest, signOpts(req))
}

// fits refuses requests whose shape doesn't belong to the key's type, so
// a worker cannot, say, ask an RSA key for an Ed25519-style raw message.
func fits(s crypto.Signer, req *protocol.SignRequest) error {
	switch s.(type) {
	case *rsa.PrivateKey:
		if req.Hash == 0 {
			return errors.New("RSA key asked to sign without a hash")
		}
	case *ecdsa.PrivateKey:
		if req.Hash == 0 || req.PSS {
			return errors.New("ECDSA key asked for an RSA or Ed25519 signature")
		}
	case ed25519.PrivateKey:
		if req.Hash != 0 {
			return errors.New("Ed25519 key asked to sign a digest")
		}
	default:
		return fmt.Errorf("unsupported key type %T", s)
	}
	return nil
}
