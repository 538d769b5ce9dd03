package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/ucspi-tls/sslserver/protocol"
)

// ucspiFDs are the three descriptors sslserver hands over for UCSPI-TLS.
type ucspiFDs struct {
	ctl, read, write int
}

// tlsInfo is what the reply block said about the connection.
type tlsInfo struct {
	protocol, cipher string
}

func (t *tlsInfo) String() string {
	if t == nil {
		return "plaintext"
	}
	return t.protocol + " " + t.cipher
}

// ucspiFromEnv returns nil when $SSLCTLFD is unset: then STARTTLS is not
// available. Set, all three variables must name descriptors >= 3.
func ucspiFromEnv(getenv func(string) string) (*ucspiFDs, error) {
	if getenv("SSLCTLFD") == "" {
		return nil, nil
	}
	var u ucspiFDs
	for _, v := range []struct {
		name string
		fd   *int
	}{{"SSLCTLFD", &u.ctl}, {"SSLREADFD", &u.read}, {"SSLWRITEFD", &u.write}} {
		fd, err := parseFD(v.name, getenv(v.name))
		if err != nil {
			return nil, err
		}
		*v.fd = fd
	}
	return &u, nil
}

func parseFD(name, value string) (int, error) {
	fd, err := strconv.Atoi(value)
	if err != nil || fd < 3 {
		return 0, fmt.Errorf("%w: $%s is %q, want a descriptor number >= 3", errUsage, name, value)
	}
	return fd, nil
}

// start asks sslserver for TLS with a Y command and, once the reply block
// has arrived and the control fd has closed, moves the decrypted channel
// onto fds 0 and 1 as UCSPI-TLS applications do, so the raw connection is
// no longer open here.
func (u *ucspiFDs) start() (*tlsInfo, error) {
	ctl := os.NewFile(uintptr(u.ctl), "SSLCTLFD")
	vars, err := protocol.StartTLS(ctl, true)
	ctl.Close()
	if err != nil {
		return nil, fmt.Errorf("starting TLS: %w", err)
	}
	if err := moveFD(u.read, 0); err != nil {
		return nil, err
	}
	if err := moveFD(u.write, 1); err != nil {
		return nil, err
	}
	return infoFrom(vars), nil
}

func infoFrom(vars []protocol.Var) *tlsInfo {
	var t tlsInfo
	for _, v := range vars {
		switch v.Name {
		case "SSL_PROTOCOL":
			t.protocol = v.Value
		case "SSL_CIPHER":
			t.cipher = v.Value
		}
	}
	return &t
}

// moveFD makes to a copy of from and closes from. Both are >= 3 or the
// standard descriptors, checked by parseFD, so the moves cannot clobber
// each other.
func moveFD(from, to int) error {
	if err := syscall.Dup3(from, to, 0); err != nil {
		return fmt.Errorf("moving fd %d to %d: %w", from, to, err)
	}
	if err := syscall.Close(from); err != nil {
		return fmt.Errorf("closing fd %d: %w", from, err)
	}
	return nil
}
