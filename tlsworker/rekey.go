package tlsworker

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
)

// keyLink is a worker's channel to the key holder, shared by the signers
// of all its certificates. When the key holder is restarted the channel
// hangs up, with a request of a handshake in progress perhaps unanswered;
// the worker then asks the supervisor for a channel to the new key
// holder (KeyHolderLost) and asks again there, so the restart costs the
// handshake a moment rather than its success.
type keyLink struct {
	mu  sync.Mutex
	ch  *protocol.Channel
	sup *protocol.Channel
	got chan *os.File // a KeyChannel's descriptor, from readSupervisor
}

func newKeyLink(kh, sup *protocol.Channel) *keyLink {
	return &keyLink{ch: kh, sup: sup, got: make(chan *os.File, 1)}
}

// renew returns the channel that replaces old, asking the supervisor for
// it unless another signer has done so already.
func (l *keyLink) renew(old *protocol.Channel) (*protocol.Channel, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ch != old {
		return l.ch, nil
	}
	if err := l.sup.Send(&protocol.KeyHolderLost{}); err != nil {
		return nil, err
	}
	t := time.NewTimer(signWait)
	defer t.Stop()
	select {
	case f := <-l.got:
		ch, err := protocol.NewChannel(f, protocol.SignReplies)
		if err != nil {
			return nil, err
		}
		old.Close()
		l.ch = ch
		return ch, nil
	case <-t.C:
		return nil, errors.New("the supervisor sent no channel to a new key holder")
	}
}

// current is the channel in use: the first, or the one renew got.
func (l *keyLink) current() *protocol.Channel {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ch
}

// deliver takes the descriptor of a KeyChannel; one nobody asked for is
// closed.
func (l *keyLink) deliver(f *os.File) {
	select {
	case l.got <- f:
	default:
		f.Close()
	}
}

// hungUp reports whether err means the key holder's end is gone.
func hungUp(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}
