package protocol

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// ExampleAppFromEnv is a client program under sslclient -y: it has
// agreed with the server (SMTP: EHLO, STARTTLS, 220) on fds 6 and 7, and
// now switches to TLS.
func ExampleAppFromEnv() {
	app, err := AppFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err) // not under sslclient -y
		return
	}
	vars, err := app.StartTLS(true)
	if err != nil {
		fmt.Fprintln(os.Stderr, err) // sslclient ends the session
		return
	}
	if err := app.MoveTo(6, 7); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	for _, v := range vars {
		if v.Name == "SSL_SERVER_VERIFY" {
			fmt.Fprintf(app.Write, "EHLO client.example\r\n")
		}
	}
}

// appEnv makes a control socket pair and two pipes, and an environment
// naming the program's ends. Those are raw descriptors, owned by the
// App a test opens on them (closeApp closes them otherwise), so that no
// two *os.File ever own one number. It returns the peer's ends: the
// control socket, the pipe the program reads, the pipe the program
// writes.
func appEnv(t *testing.T) (getenv func(string) string, closeApp func(), ctlPeer, toApp, fromApp *os.File) {
	t.Helper()
	ctlPeer, ctl, err := StreamPair("ctl")
	if err != nil {
		t.Fatal(err)
	}
	readR, toApp, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fromApp, writeW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, f := range []*os.File{ctlPeer, toApp, fromApp} {
			f.Close()
		}
	})
	fds := []int{rawFD(t, ctl), rawFD(t, readR), rawFD(t, writeW)}
	env := map[string]string{EnvCtlFD: strconv.Itoa(fds[0]), EnvReadFD: strconv.Itoa(fds[1]), EnvWriteFD: strconv.Itoa(fds[2])}
	closeApp = func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	return func(k string) string { return env[k] }, closeApp, ctlPeer, toApp, fromApp
}

// rawFD moves f to a descriptor no *os.File owns.
func rawFD(t *testing.T, f *os.File) int {
	t.Helper()
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

func TestAppStartTLS(t *testing.T) {
	getenv, _, ctlPeer, toApp, fromApp := appEnv(t)
	app, err := AppFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	go answerY(ctlPeer, []byte("SSL_PROTOCOL=TLSv1.3\x00\x00"))
	vars, err := app.StartTLS(true)
	if err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	if len(vars) != 1 || vars[0] != (Var{"SSL_PROTOCOL", "TLSv1.3"}) {
		t.Errorf("vars %+v", vars)
	}
	io.WriteString(toApp, "from the peer")
	toApp.Close()
	if got, err := io.ReadAll(app.Read); err != nil || string(got) != "from the peer" {
		t.Errorf("app.Read gave %q, %v", got, err)
	}
	io.WriteString(app.Write, "to the peer")
	app.Write.Close()
	if got, err := io.ReadAll(fromApp); err != nil || string(got) != "to the peer" {
		t.Errorf("the peer read %q, %v", got, err)
	}
}

// answerY plays sslclient's TLS process: it expects Y, writes the block
// and closes the control socket.
func answerY(ctl *os.File, block []byte) {
	var b [1]byte
	if _, err := ctl.Read(b[:]); err != nil || b[0] != 'Y' {
		ctl.Close()
		return
	}
	ctl.Write(block)
	ctl.Close()
}

// A control socket closed before the block is a failed handshake.
func TestAppStartTLSFailure(t *testing.T) {
	getenv, _, ctlPeer, _, _ := appEnv(t)
	app, err := AppFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	go answerY(ctlPeer, nil)
	if vars, err := app.StartTLS(true); err == nil {
		t.Errorf("StartTLS succeeded with %+v after the control socket closed without a block", vars)
	}
}

func TestAppFromEnvRefuses(t *testing.T) {
	getenv, closeApp, _, _, _ := appEnv(t)
	defer closeApp()
	closed, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	closedFD := strconv.Itoa(int(closed.Fd()))
	closed.Close()
	cases := map[string]map[string]string{
		"not a number":   {EnvReadFD: "four"},
		"signed":         {EnvReadFD: "+" + getenv(EnvReadFD)},
		"below 3":        {EnvWriteFD: "1"},
		"unset read fd":  {EnvReadFD: ""},
		"same as ctl":    {EnvWriteFD: getenv(EnvCtlFD)},
		"a closed fd":    {EnvReadFD: closedFD},
		"leading zero":   {EnvCtlFD: "0" + getenv(EnvCtlFD)},
		"negative fd":    {EnvCtlFD: "-3"},
		"whitespace fd":  {EnvCtlFD: getenv(EnvCtlFD) + " "},
		"reads from ctl": {EnvReadFD: getenv(EnvCtlFD)},
	}
	for name, override := range cases {
		get := func(k string) string {
			if v, ok := override[k]; ok {
				return v
			}
			return getenv(k)
		}
		if _, err := AppFromEnv(get); err == nil {
			t.Errorf("%s: AppFromEnv accepted %v", name, override)
		}
	}
	if _, err := AppFromEnv(func(string) string { return "" }); !errors.Is(err, ErrNoUCSPITLS) {
		t.Errorf("no $SSLCTLFD: %v, want ErrNoUCSPITLS", err)
	}
}

// MoveTo puts Read and Write on the numbers asked for, closing what was
// there and the original descriptors.
func TestAppMoveTo(t *testing.T) {
	getenv, _, _, toApp, fromApp := appEnv(t)
	app, err := AppFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	oldRead, _ := strconv.Atoi(getenv(EnvReadFD))
	// Two high numbers that stand for the raw connection's descriptors.
	targets := [2]int{}
	for i := range targets {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		targets[i], err = unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 200)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := app.MoveTo(targets[0], targets[1]); err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if _, err := unix.FcntlInt(uintptr(oldRead), unix.F_GETFD, 0); err == nil {
		t.Errorf("the old read descriptor %d is still open", oldRead)
	}
	io.WriteString(toApp, "x")
	var b [1]byte
	if n, err := unix.Read(targets[0], b[:]); n != 1 || err != nil || b[0] != 'x' {
		t.Errorf("read from fd %d after the move: %d %v", targets[0], n, err)
	}
	if _, err := unix.Write(targets[1], []byte("y")); err != nil {
		t.Fatal(err)
	}
	if n, err := fromApp.Read(b[:]); n != 1 || err != nil || b[0] != 'y' {
		t.Errorf("the peer read %q, %v", b[:n], err)
	}
	if err := app.MoveTo(targets[0], targets[0]); err == nil {
		t.Error("MoveTo accepted the same target twice")
	}
}
