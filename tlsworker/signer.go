package tlsworker

import (
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
)

// remoteSigner is the worker's crypto.Signer: the private key stays in
// the key holder, and every signature is a bounded round trip to it.
type remoteSigner struct {
	pub     crypto.PublicKey
	key     uint16
	ch      *protocol.Channel
	timeout time.Duration
	mu      sync.Mutex // one request in flight on the channel
	// renew, if set, replaces a channel that hung up (see keyLink); the
	// request is then made once more on the new one.
	renew func(old *protocol.Channel) (*protocol.Channel, error)
}

func (s *remoteSigner) Public() crypto.PublicKey { return s.pub }

func (s *remoteSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	req, err := signRequest(s.key, digest, opts)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.roundTrip(req)
	if err != nil && s.renew != nil && hungUp(err) {
		ch, rerr := s.renew(s.ch)
		if rerr != nil {
			return nil, fmt.Errorf("key holder: %w; %v", err, rerr)
		}
		s.ch = ch
		m, err = s.roundTrip(req)
	}
	if err != nil {
		return nil, fmt.Errorf("key holder: %w", err)
	}
	return signResult(m)
}

// roundTrip sends req and reads the answer, within s.timeout.
func (s *remoteSigner) roundTrip(req *protocol.SignRequest) (protocol.Message, error) {
	return exchange(s.ch, req, s.timeout)
}

func signRequest(key uint16, digest []byte, opts crypto.SignerOpts) (*protocol.SignRequest, error) {
	req := &protocol.SignRequest{Key: key, Hash: opts.HashFunc(), Digest: digest}
	if pss, ok := opts.(*rsa.PSSOptions); ok {
		if pss.SaltLength != rsa.PSSSaltLengthEqualsHash {
			return nil, fmt.Errorf("unsupported PSS salt length %d", pss.SaltLength)
		}
		req.PSS = true
	}
	return req, req.Check()
}

func signResult(m protocol.Message) ([]byte, error) {
	switch m := m.(type) {
	case *protocol.Signature:
		return m.Sig, nil
	case *protocol.SignRefused:
		return nil, fmt.Errorf("key holder refused to sign: %s", m.Reason)
	}
	return nil, errors.New("key holder: unexpected message")
}

// signOpts turns a checked request back into the options crypto.Signer
// implementations expect.
func signOpts(req *protocol.SignRequest) crypto.SignerOpts {
	if req.PSS {
		return &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: req.Hash}
	}
	return req.Hash
}
