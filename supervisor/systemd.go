package supervisor

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// inheritedSockets are the descriptors a service manager handed this very
// process (LISTEN_FDS, LISTEN_PID; fds from 3 up), or none. They are
// close-on-exec, so no child inherits them.
func inheritedSockets() []*os.File {
	return activation.Files(false)
}

// activatedListener serves the one listening TCP socket of socket
// activation, in place of binding host and port. Its port must be the
// command line's, so that one run script serves both ways and a unit
// that listens elsewhere than the script says is found at start. The
// .socket unit's own settings (Backlog=, ReusePort=) apply, not -b or
// REUSEPORT.
func activatedListener(files []*os.File, o *Options) (*net.TCPListener, error) {
	defer closeFiles(files)
	if len(files) != 1 {
		return nil, fmt.Errorf("socket activation: LISTEN_FDS=%d, sslserver serves exactly one socket", len(files))
	}
	l, err := net.FileListener(files[0])
	if err != nil {
		return nil, fmt.Errorf("socket activation: fd 3 is not a listening socket: %w", err)
	}
	tl, ok := l.(*net.TCPListener)
	if !ok {
		l.Close()
		return nil, fmt.Errorf("socket activation: fd 3 is a %s socket, not TCP", l.Addr().Network())
	}
	if err := checkActivated(tl, o.Port); err != nil {
		tl.Close()
		return nil, err
	}
	return tl, nil
}

func checkActivated(l *net.TCPListener, portArg string) error {
	port, err := resolvePort(portArg)
	if err != nil {
		return err
	}
	if !isListening(l) {
		return errors.New("socket activation: fd 3 is not listening (Accept=yes units are not supported)")
	}
	if got := l.Addr().(*net.TCPAddr).Port; got != int(port) {
		return fmt.Errorf("socket activation: the inherited socket is bound to port %d, the command line says %s", got, portArg)
	}
	return nil
}

func isListening(l *net.TCPListener) bool {
	rc, err := l.SyscallConn()
	if err != nil {
		return false
	}
	v := 0
	rc.Control(func(fd uintptr) { v, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN) })
	return v == 1
}

// notify tells $NOTIFY_SOCKET, if set, of a change of state (READY=1,
// STOPPING=1): systemd's Type=notify. A socket that cannot be reached
// is a warning; the service goes on.
func (s *Server) notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		s.log.Warning("unable to tell NOTIFY_SOCKET %s: %v", state, err)
	}
}

// The sd_notify states sslserver sends.
const (
	daemonReady     = daemon.SdNotifyReady
	daemonStopping  = daemon.SdNotifyStopping
	daemonReloading = daemon.SdNotifyReloading // around a certificate reload (reload.go)
)
