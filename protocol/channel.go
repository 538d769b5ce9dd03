package protocol

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Channel carries Messages between two of our processes over an AF_UNIX
// SOCK_SEQPACKET socket: one message per datagram, descriptors attached
// with SCM_RIGHTS.
type Channel struct {
	c      *net.UnixConn
	rc     syscall.RawConn
	oob    []byte  // Recv's control buffer; a channel has one reader at a time
	accept Accepts // the types Recv lets through
}

// recvBufs holds the datagram buffers of Recv, MaxMsg+1 bytes each. A
// buffer is taken only once a datagram is waiting and given back as soon
// as it is decoded, so a process with many channels idle (the supervisor
// with a thousand sessions, the key holder) holds none of them, and a
// new channel costs no 128 KiB allocation to clear and collect.
var recvBufs = sync.Pool{New: func() any { b := make([]byte, MaxMsg+1); return &b }}

// Pair returns both ends of a new channel as files, ready to be handed to
// a child or to NewChannel.
func Pair(name string) (a, b *os.File, err error) {
	return socketPair(unix.SOCK_SEQPACKET, name)
}

// StreamPair returns a connected AF_UNIX stream socket pair, as used for
// $SSLCTLFD.
func StreamPair(name string) (a, b *os.File, err error) {
	return socketPair(unix.SOCK_STREAM, name)
}

func socketPair(typ int, name string) (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair for %s: %w", name, err)
	}
	return os.NewFile(uintptr(fds[0]), name), os.NewFile(uintptr(fds[1]), name), nil
}

// NewChannel takes over f (which it closes) and returns a Channel on it
// that receives the message types in accept and refuses every other.
func NewChannel(f *os.File, accept Accepts) (*Channel, error) {
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("channel on %s: %w", f.Name(), err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("channel on %s: not a unix socket", f.Name())
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		uc.Close()
		return nil, fmt.Errorf("channel on %s: %w", f.Name(), err)
	}
	return &Channel{c: uc, rc: rc, oob: make([]byte, unix.CmsgSpace(MaxKeyFiles*4)), accept: accept}, nil
}

// Send writes m as one datagram with files attached.
func (ch *Channel) Send(m Message, files ...*os.File) error {
	if len(files) != Files(m) {
		return fmt.Errorf("message type %d takes %d files, not %d", m.Type(), Files(m), len(files))
	}
	p := Encode(m)
	if len(p) > MaxMsg {
		return fmt.Errorf("message type %d of %d bytes exceeds %d", m.Type(), len(p), MaxMsg)
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	var errno unix.Errno
	err := ch.rc.Write(func(fd uintptr) bool {
		errno = rawSendmsg(fd, p, oob)
		return errno != unix.EAGAIN
	})
	if err == nil && errno != 0 {
		err = os.NewSyscallError("sendmsg", errno)
	}
	return err
}

// Recv reads one message; it must not be called from two goroutines at
// once (the decoded message copies what it keeps, so the buffer is
// reused). A truncated datagram, an unknown type, a type the channel
// does not accept, a malformed body or the wrong number of descriptors
// is an error, and any descriptors that came with it are closed. The
// peer hanging up is io.EOF.
func (ch *Channel) Recv() (Message, []*os.File, error) {
	var (
		bp             *[]byte
		n, oobn, flags int
		rerr           unix.Errno
		resets         int
	)
	err := ch.rc.Read(func(fd uintptr) bool {
		bp = recvBufs.Get().(*[]byte)
		for {
			n, oobn, flags, rerr = rawRecvmsg(fd, *bp, ch.oob)
			if rerr == unix.ECONNRESET && resets == 0 {
				// The peer closed with a message of ours unread. Linux
				// reports that once, ahead of what the peer sent before
				// it closed; the next read returns those messages, then
				// the hangup.
				resets++
				continue
			}
			break
		}
		if rerr == unix.EAGAIN {
			recvBufs.Put(bp)
			bp = nil
			return false // wait in the poller, holding no buffer
		}
		return true
	})
	if bp != nil {
		defer recvBufs.Put(bp)
	}
	if err == nil && rerr != 0 {
		err = os.NewSyscallError("recvmsg", rerr)
	}
	if err != nil {
		return nil, nil, err // nothing was received: no descriptors to close
	}
	files, ferr := parseRights(ch.oob[:oobn])
	m, err := checkRecv((*bp)[:n], flags, files, ferr, ch.accept)
	if err != nil {
		closeAll(files)
		return nil, nil, err
	}
	return m, files, nil
}

func checkRecv(p []byte, flags int, files []*os.File, ferr error, accept Accepts) (Message, error) {
	switch {
	case ferr != nil:
		return nil, ferr
	case flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0:
		return nil, errors.New("message truncated")
	case len(p) == 0 && len(files) == 0:
		return nil, io.EOF
	case len(p) > 0 && !accept.Has(MsgType(p[0])):
		return nil, fmt.Errorf("message type %d not accepted here (%d files closed)", p[0], len(files))
	}
	m, err := Decode(p)
	if err != nil {
		return nil, err
	}
	if len(files) != Files(m) {
		return nil, fmt.Errorf("message type %d came with %d files, want %d", m.Type(), len(files), Files(m))
	}
	return m, nil
}

func parseRights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("control message: %w", err)
	}
	var files []*os.File
	for _, cm := range msgs {
		fds, err := unix.ParseUnixRights(&cm)
		if err != nil {
			closeAll(files)
			return nil, fmt.Errorf("control message: %w", err)
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "passed fd"))
		}
	}
	return files, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// SetDeadline bounds the next Send and Recv calls.
func (ch *Channel) SetDeadline(t time.Time) error { return ch.c.SetDeadline(t) }

// SetReadDeadline bounds the next Recv calls.
func (ch *Channel) SetReadDeadline(t time.Time) error { return ch.c.SetReadDeadline(t) }

// Close closes the channel.
func (ch *Channel) Close() error { return ch.c.Close() }
