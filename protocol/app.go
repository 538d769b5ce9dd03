package protocol

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// The environment variables that name an application's UCSPI-TLS
// descriptors, under sslserver -n and sslclient -y alike.
const (
	EnvCtlFD   = "SSLCTLFD"
	EnvReadFD  = "SSLREADFD"
	EnvWriteFD = "SSLWRITEFD"
)

// ErrNoUCSPITLS is returned by AppFromEnv when $SSLCTLFD is unset: the
// program does not run under sslserver -n or sslclient -y and cannot
// start TLS (an SMTP server then does not offer STARTTLS).
var ErrNoUCSPITLS = errors.New("$SSLCTLFD is not set: no UCSPI-TLS")

// App is an application's end of UCSPI-TLS, the same on both sides: a
// server program under sslserver -n and a client program under
// sslclient -y start in plaintext on the connection itself (server: fds 0
// and 1; client: fds 6 and 7), agree with the peer to start TLS (SMTP's
// STARTTLS and its 220 reply, say), and then:
//
//	app, err := protocol.AppFromEnv(os.Getenv)
//	vars, err := app.StartTLS(true) // the handshake; with true, the SSL_* variables
//	// from here on, read app.Read and write app.Write
//
// (each err checked). A program that execs another one, or works on fixed
// descriptor numbers, calls app.MoveTo(0, 1) (server) or app.MoveTo(6, 7)
// (client) after StartTLS, which also closes its copies of the raw
// connection there. Bytes the peer sent before the handshake are still
// on the raw connection: read them, or discard them as SMTP requires
// after STARTTLS.
type App struct {
	Ctl   *os.File // $SSLCTLFD: write one command, read the reply
	Read  *os.File // $SSLREADFD: the peer's data, decrypted
	Write *os.File // $SSLWRITEFD: data for the peer, to be encrypted

	ctl, read, write int
}

// AppFromEnv opens the descriptors named by $SSLCTLFD, $SSLREADFD and
// $SSLWRITEFD: decimal numbers >= 3, all different, all open. With
// $SSLCTLFD unset it returns ErrNoUCSPITLS.
func AppFromEnv(getenv func(string) string) (*App, error) {
	if getenv(EnvCtlFD) == "" {
		return nil, ErrNoUCSPITLS
	}
	a := &App{}
	for _, v := range []struct {
		name string
		fd   *int
	}{{EnvCtlFD, &a.ctl}, {EnvReadFD, &a.read}, {EnvWriteFD, &a.write}} {
		fd, err := appFD(v.name, getenv(v.name))
		if err != nil {
			return nil, err
		}
		*v.fd = fd
	}
	if a.ctl == a.read || a.ctl == a.write || a.read == a.write {
		return nil, fmt.Errorf("UCSPI-TLS descriptors %d, %d and %d are not all different", a.ctl, a.read, a.write)
	}
	a.Ctl = os.NewFile(uintptr(a.ctl), EnvCtlFD)
	a.Read = os.NewFile(uintptr(a.read), EnvReadFD)
	a.Write = os.NewFile(uintptr(a.write), EnvWriteFD)
	return a, nil
}

// appFD parses one variable and checks that the descriptor is open.
func appFD(name, value string) (int, error) {
	fd, err := strconv.Atoi(value)
	if err != nil || fd < 3 || strconv.Itoa(fd) != value {
		return 0, fmt.Errorf("$%s is %q, want a descriptor number >= 3", name, value)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return 0, fmt.Errorf("$%s names descriptor %d: %w", name, fd, err)
	}
	return fd, nil
}

// StartTLS writes the command (Y with reply, else y), waits for the
// handshake (see the package function StartTLS) and closes the control
// descriptor. An error means TLS failed: sslserver or sslclient has ended,
// or is ending, the session.
func (a *App) StartTLS(reply bool) ([]Var, error) {
	vars, err := StartTLS(a.Ctl, reply)
	a.Ctl.Close()
	return vars, err
}

// MoveTo makes readFD a copy of Read and writeFD one of Write, closes
// the originals, and points Read and Write at the new numbers. Whatever
// readFD and writeFD were (the raw connection, typically) is closed by
// the move. The targets must not be the other UCSPI-TLS descriptors.
func (a *App) MoveTo(readFD, writeFD int) error {
	if readFD < 0 || writeFD < 0 || readFD == writeFD {
		return fmt.Errorf("cannot move UCSPI-TLS descriptors to %d and %d", readFD, writeFD)
	}
	if readFD == a.write || writeFD == a.read || readFD == a.ctl || writeFD == a.ctl {
		return fmt.Errorf("moving to %d and %d would overwrite a UCSPI-TLS descriptor", readFD, writeFD)
	}
	r, err := moveFD(a.Read, a.read, readFD)
	if err != nil {
		return err
	}
	a.Read, a.read = r, readFD
	w, err := moveFD(a.Write, a.write, writeFD)
	if err != nil {
		return err
	}
	a.Write, a.write = w, writeFD
	return nil
}

func moveFD(f *os.File, from, to int) (*os.File, error) {
	if from == to {
		return f, nil
	}
	if err := unix.Dup3(from, to, 0); err != nil {
		return nil, fmt.Errorf("moving fd %d to %d: %w", from, to, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("closing fd %d: %w", from, err)
	}
	return os.NewFile(uintptr(to), f.Name()), nil
}

// Close closes the three descriptors (Ctl may be closed already).
func (a *App) Close() error {
	a.Ctl.Close()
	err := a.Read.Close()
	if werr := a.Write.Close(); err == nil {
		err = werr
	}
	return err
}
