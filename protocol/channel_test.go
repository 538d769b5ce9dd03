package protocol

import (
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/internal/testutil"
)

// channelPair returns a Channel on one end of a real SOCK_SEQPACKET
// pair and the other end as a plain file, for sending raw datagrams.
func channelPair(t *testing.T) (*Channel, *os.File) {
	t.Helper()
	a, b, err := Pair("test")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := NewChannel(b, anyType)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close(); a.Close() })
	return ch, a
}

// channels returns both ends of a pair as Channels.
func channels(t *testing.T) (*Channel, *Channel) {
	t.Helper()
	ch, f := channelPair(t)
	other, err := NewChannel(f, anyType)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	return other, ch
}

// pipes returns n pipe write ends (their read ends are closed).
func pipes(t *testing.T, n int) []*os.File {
	t.Helper()
	var files []*os.File
	for i := 0; i < n; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		t.Cleanup(func() { w.Close() })
		files = append(files, w)
	}
	return files
}

func TestChannelCarriesEveryMessage(t *testing.T) {
	send, recv := channels(t)
	for _, m := range sampleMessages() {
		if err := send.Send(m, pipes(t, Files(m))...); err != nil {
			t.Fatalf("Send(%T): %v", m, err)
		}
		got, files, err := recv.Recv()
		if err != nil {
			t.Fatalf("Recv after %T: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("sent %+v, received %+v", m, got)
		}
		if len(files) != Files(m) {
			t.Errorf("%T arrived with %d files, want %d", m, len(files), Files(m))
		}
		closeAll(files)
	}
}

func TestChannelPassesAWorkingDescriptor(t *testing.T) {
	send, recv := channels(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := send.Send(&NewWorker{Signs: 1, WaitMsec: 1}, w); err != nil {
		t.Fatal(err)
	}
	w.Close() // the only write end left is the one in flight
	_, files, err := recv.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Fatalf("received %d files, want 1", len(files))
	}
	assertCloexec(t, files[0])
	if _, err := files[0].Write([]byte("through the passed fd")); err != nil {
		t.Fatal(err)
	}
	files[0].Close()
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "through the passed fd" {
		t.Fatalf("read back %q, %v", got, err)
	}
}

// assertCloexec checks that a received descriptor will not leak into a
// child the receiver starts.
func assertCloexec(t *testing.T, f *os.File) {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	var ferr error
	rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFD, 0) })
	if ferr != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("received fd flags %#x (%v): close-on-exec not set", flags, ferr)
	}
}

func TestChannelSendRefusesWrongFileCount(t *testing.T) {
	send, recv := channels(t)
	cases := []struct {
		m     Message
		files int
	}{
		{&NewWorker{Signs: 1}, 0},
		{&NewWorker{Signs: 1}, 2},
		{&ProgramExited{}, 1},
		{&Keys{Count: 2, UID: 1, GID: 1, Root: "/x"}, 1},
	}
	for _, c := range cases {
		if err := send.Send(c.m, pipes(t, c.files)...); err == nil {
			t.Errorf("Send(%T) with %d files succeeded", c.m, c.files)
		}
	}
	recv.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if m, _, err := recv.Recv(); err == nil {
		t.Fatalf("a refused Send still delivered %T", m)
	}
}

func TestChannelSendRefusesOversize(t *testing.T) {
	send, _ := channels(t)
	m := &HandshakeDone{Block: make([]byte, MaxMsg)}
	if err := send.Send(m); err == nil {
		t.Fatal("Send accepted a message larger than MaxMsg")
	}
}

// sendRaw writes one datagram with descriptors on f's socket.
func sendRaw(t *testing.T, f *os.File, p []byte, fds []int) {
	t.Helper()
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	rc.Control(func(fd uintptr) { serr = unix.Sendmsg(int(fd), p, oob, nil, 0) })
	if serr != nil {
		t.Fatalf("sendmsg of %d bytes with %d fds: %v", len(p), len(fds), serr)
	}
}

// rawPipes returns n pipes as raw fds, both ends, to be closed by the
// caller with closeRaw.
func rawPipes(t *testing.T, n int) []int {
	t.Helper()
	var fds []int
	for i := 0; i < n; i++ {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		fds = append(fds, p[0], p[1])
	}
	return fds
}

func closeRaw(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// TestChannelRecvRefusesAndClosesDescriptors sends malformed datagrams
// with descriptors attached: each is refused, and the descriptors that
// came with it are closed rather than leaked.
func TestChannelRecvRefusesAndClosesDescriptors(t *testing.T) {
	cases := map[string]struct {
		p     []byte
		pipes int
	}{
		"ProgramExited with 2 fds":    {Encode(&ProgramExited{}), 1},
		"NewWorker with 2 fds":        {Encode(&NewWorker{Signs: 1}), 1},
		"NewWorker with 4 fds":        {Encode(&NewWorker{Signs: 1}), 2},
		"Keys(1) with 2 fds":          {Encode(&Keys{Count: 1, UID: 1, GID: 1, Root: "/x"}), 1},
		"Keys(3) with 2 fds":          {Encode(&Keys{Count: 3, UID: 1, GID: 1, Root: "/x"}), 1},
		"unknown type with fds":       {[]byte{99, 1, 2, 3}, 1},
		"malformed NewWorker and fds": {Encode(&NewWorker{Signs: 0}), 1},
		"trailing bytes and fds":      {append(Encode(&NewWorker{Signs: 1}), 0), 1},
		"empty datagram with fds":     {[]byte{}, 1},
		"too many fds for any message": {Encode(&Keys{Count: MaxKeyFiles, UID: 1, GID: 1, Root: "/x"}),
			MaxKeyFiles/2 + 4},
	}
	for what, c := range cases {
		t.Run(what, func(t *testing.T) {
			ch, raw := channelPair(t)
			before := testutil.OwnFdCount(t)
			for i := 0; i < 20; i++ {
				fds := rawPipes(t, c.pipes)
				sendRaw(t, raw, c.p, fds)
				closeRaw(fds)
				ch.SetReadDeadline(time.Now().Add(5 * time.Second))
				m, files, err := ch.Recv()
				if err == nil {
					t.Fatalf("Recv accepted %T with %d files", m, len(files))
				}
				if files != nil {
					t.Fatalf("Recv returned files with an error")
				}
			}
			if after := testutil.OwnFdCount(t); after > before {
				t.Fatalf("open fds grew from %d to %d: refused descriptors leak", before, after)
			}
			checkStillUsable(t, ch, raw)
		})
	}
}

// checkStillUsable: a refused datagram does not wedge the channel.
func checkStillUsable(t *testing.T, ch *Channel, raw *os.File) {
	t.Helper()
	sendRaw(t, raw, Encode(&ProgramExited{}), nil)
	m, _, err := ch.Recv()
	if err != nil {
		t.Fatalf("Recv after a refusal: %v", err)
	}
	if _, ok := m.(*ProgramExited); !ok {
		t.Fatalf("Recv after a refusal gave %T", m)
	}
}

func TestChannelRecvRefusesTruncatedDatagram(t *testing.T) {
	ch, raw := channelPair(t)
	rc, _ := raw.SyscallConn()
	rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 4*MaxMsg) })
	p := make([]byte, MaxMsg+64)
	p[0] = byte(MsgSignRefused)
	sendRaw(t, raw, p, nil)
	if m, _, err := ch.Recv(); err == nil {
		t.Fatalf("Recv accepted a datagram of %d bytes as %T", len(p), m)
	}
}

// TestChannelCarriesTheLargestMessage: MaxMsg promises that a message
// of that size fits in one datagram, so the socket's buffers must let
// one through.
func TestChannelCarriesTheLargestMessage(t *testing.T) {
	send, recv := channels(t)
	m := &WorkerConfig{UID: 1, GID: 1, Root: "/x", Sessions: 1, Banner: []byte{}}
	for n := len(Encode(m)); ; {
		c := Cert{Chain: [][]byte{make([]byte, maxCertDER)}}
		n += len(encodeOne(c))
		if n > MaxMsg {
			break
		}
		m.Certs = append(m.Certs, c)
	}
	if err := send.Send(m); err != nil {
		t.Fatalf("Send of a %d-byte message (MaxMsg %d): %v", len(Encode(m)), MaxMsg, err)
	}
	got, _, err := recv.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatal("the largest message arrived changed")
	}
}

func encodeOne(c Cert) []byte {
	e := &encoder{}
	encodeCert(e, c)
	return e.b
}

func TestChannelPeerCloseIsEOF(t *testing.T) {
	ch, raw := channelPair(t)
	raw.Close()
	done := make(chan error, 1)
	go recvInto(ch, done)
	select {
	case err := <-done:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("Recv after peer close: %v, want io.EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Recv did not notice the peer hanging up")
	}
}

func recvInto(ch *Channel, done chan<- error) {
	_, _, err := ch.Recv()
	done <- err
}

func TestChannelDeadline(t *testing.T) {
	for name, set := range map[string]func(*Channel, time.Time) error{
		"SetReadDeadline": (*Channel).SetReadDeadline,
		"SetDeadline":     (*Channel).SetDeadline,
	} {
		ch, _ := channelPair(t)
		start := time.Now()
		set(ch, start.Add(100*time.Millisecond))
		_, _, err := ch.Recv()
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s: Recv with nobody sending: %v, want a deadline error", name, err)
		}
		if d := time.Since(start); d < 90*time.Millisecond || d > 5*time.Second {
			t.Errorf("%s: Recv gave up after %v, want about 100ms", name, d)
		}
	}
}

func TestChannelDeadlineCleared(t *testing.T) {
	send, recv := channels(t)
	recv.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	recv.Recv()
	recv.SetReadDeadline(time.Time{})
	time.AfterFunc(100*time.Millisecond, func() { send.Send(&ProgramExited{}) })
	if _, _, err := recv.Recv(); err != nil {
		t.Fatalf("Recv after clearing the deadline: %v", err)
	}
}

func TestNewChannelRefusesNonUnixSockets(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := NewChannel(r, anyType); err == nil {
		t.Error("NewChannel accepted a pipe")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	before := testutil.OwnFdCount(t)
	if _, err := NewChannel(f, anyType); err == nil {
		t.Error("NewChannel accepted a TCP socket")
	}
	if after := testutil.OwnFdCount(t); after >= before {
		t.Errorf("NewChannel did not close the file it refused: %d fds, then %d", before, after)
	}
}

func TestPairKinds(t *testing.T) {
	for name, mk := range map[string]struct {
		f   func(string) (*os.File, *os.File, error)
		typ int
	}{"Pair": {Pair, unix.SOCK_SEQPACKET}, "StreamPair": {StreamPair, unix.SOCK_STREAM}} {
		a, b, err := mk.f("x")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []*os.File{a, b} {
			assertCloexec(t, f)
			rc, _ := f.SyscallConn()
			var typ int
			rc.Control(func(fd uintptr) { typ, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE) })
			if typ != mk.typ {
				t.Errorf("%s: socket type %d, want %d", name, typ, mk.typ)
			}
			f.Close()
		}
	}
}

// TestChannelDeliversWhatWasSentBeforeAHangup: a worker that reports a
// failure and exits, with a message of ours still unread, must not lose
// its report: Linux flags such a hangup as a reset, ahead of the data.
func TestChannelDeliversWhatWasSentBeforeAHangup(t *testing.T) {
	peer, ch := channels(t)
	if err := ch.Send(&ProgramExited{Seq: 1}); err != nil { // never read by the peer
		t.Fatal(err)
	}
	if err := peer.Send(&SessionFailed{Code: ExitUsage, Reason: "last words"}); err != nil {
		t.Fatal(err)
	}
	peer.Close()
	m, _, err := ch.Recv()
	if err != nil {
		t.Fatalf("the report sent before the hangup was lost: %v", err)
	}
	if f, ok := m.(*SessionFailed); !ok || f.Reason != "last words" {
		t.Fatalf("received %+v", m)
	}
	if _, _, err := ch.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the report: %v, want io.EOF", err)
	}
}
