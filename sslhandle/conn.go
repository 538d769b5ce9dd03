package sslhandle

import (
	"errors"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is a session's plaintext connection: a net.Conn that can also be
// half-closed. CloseWrite sends the client end of data (TLS close_notify
// and then FIN, once the TLS worker has sent what was written);
// CloseRead stops reading. Deadlines work as on a net.Conn.
type Conn interface {
	net.Conn
	CloseWrite() error
	CloseRead() error
}

// pipeConn is the plaintext of a TLS session: the client's data from
// the worker on r, data for the client to the worker on w.
type pipeConn struct {
	r, w          *os.File
	local, remote net.Addr
}

func newPipeConn(r, w *os.File, local, remote net.Addr) (*pipeConn, error) {
	pr, err := pollable(r)
	if err != nil {
		w.Close()
		return nil, err
	}
	pw, err := pollable(w)
	if err != nil {
		pr.Close()
		return nil, err
	}
	return &pipeConn{r: pr, w: pw, local: local, remote: remote}, nil
}

// pollable replaces f, which came over the channel in blocking mode, by
// a non-blocking copy in Go's poller: deadlines then work, and closing
// it interrupts a read or write in progress.
func pollable(f *os.File) (*os.File, error) {
	defer f.Close()
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

func (c *pipeConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *pipeConn) Write(p []byte) (int, error) { return c.w.Write(p) }
func (c *pipeConn) CloseRead() error            { return c.r.Close() }
func (c *pipeConn) CloseWrite() error           { return c.w.Close() }
func (c *pipeConn) LocalAddr() net.Addr         { return c.local }
func (c *pipeConn) RemoteAddr() net.Addr        { return c.remote }

func (c *pipeConn) Close() error {
	return errors.Join(ignoreClosed(c.r.Close()), ignoreClosed(c.w.Close()))
}

func (c *pipeConn) SetDeadline(t time.Time) error {
	return errors.Join(c.r.SetDeadline(t), c.w.SetDeadline(t))
}

func (c *pipeConn) SetReadDeadline(t time.Time) error  { return c.r.SetReadDeadline(t) }
func (c *pipeConn) SetWriteDeadline(t time.Time) error { return c.w.SetWriteDeadline(t) }

// ignoreClosed lets Close follow CloseRead or CloseWrite quietly.
func ignoreClosed(err error) error {
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}
