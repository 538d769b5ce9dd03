package sslhandle

import (
	"context"
	"os"
	"path/filepath"

	"github.com/ucspi-tls/sslserver/internal/proc"
	"github.com/ucspi-tls/sslserver/protocol"
	"github.com/ucspi-tls/sslserver/supervisor"
	"github.com/ucspi-tls/sslserver/tlsworker"
)

// init names a re-executed role after the binary, as a process started
// from its file is named: roles are exec'd through /proc/self/exe, which
// would name them "exe" in ps -e, top and pgrep. Package init runs on the
// main thread, whose name is the process's.
func init() {
	switch os.Args[0] {
	case protocol.WorkerArgv0, protocol.KeyHolderArgv0, protocol.HandlerArgv0:
		if exe, err := os.Readlink("/proc/self/exe"); err == nil {
			proc.SetName(filepath.Base(exe))
		}
	}
}

// Handler serves one session and returns the status a program would
// exit with (0 for success; 100 and 111 as in UCSPI). ctx is cancelled
// when the session is aborted (the TLS worker failed, or the server
// gives up waiting at shutdown); the session's descriptors are then
// closed under the handler's feet, so its reads and writes fail. The
// package closes the session once the handler returns.
type Handler func(ctx context.Context, s *Session) int

// Server is a program that serves with a Handler.
type Server struct {
	Handler Handler
	// Name is used in log lines and usage messages; "" is the base name
	// of os.Args[0].
	Name string
	// Check, if set, vets the arguments after host and port at start,
	// in the supervisor: an error is a usage error (exit 100). The
	// handlers get the same arguments from Session.Args.
	Check func(args []string) error
	// Operands names those arguments in --help's usage line, as
	// "backend [ proxy ]"; "" is "[ args ... ]".
	Operands string
}

// Main runs the program as sslhandle with h: see Server.Main.
func Main(h Handler) int {
	return (&Server{Handler: h}).Main()
}

// Main runs the role this process was started in and returns its exit
// code, for os.Exit. Started from a shell it is the supervisor, which
// parses the command line; it re-executes the same binary as TLS
// workers, key holder and handler processes, telling them apart by
// argv[0], so Main must be the first thing main does, before anything
// that assumes a role.
func (srv *Server) Main() int {
	switch os.Args[0] {
	case protocol.WorkerArgv0:
		return tlsworker.WorkerMain()
	case protocol.KeyHolderArgv0:
		return tlsworker.KeyHolderMain()
	case protocol.HandlerArgv0:
		return serveHandler(srv.Handler, os.Args[1:], os.Stderr)
	}
	return supervisor.HandleMain(supervisor.HandleConfig{
		Name: srv.name(), Args: os.Args[1:], Check: srv.Check, Operands: srv.Operands,
		Stdout: os.Stdout, Stderr: os.Stderr,
	})
}

func (srv *Server) name() string {
	if srv.Name != "" {
		return srv.Name
	}
	return filepath.Base(os.Args[0])
}
