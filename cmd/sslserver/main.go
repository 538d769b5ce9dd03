// Command sslserver accepts TCP connections and runs a program for each,
// with TLS done by a separate, confined worker process per connection.
// See docs/sslserver.md.
//
// The same binary is re-executed in two other roles, chosen by argv[0]:
// the TLS worker and the key holder (see protocol.WorkerArgv0 and
// protocol.KeyHolderArgv0).
package main

import (
	"os"

	"github.com/ucspi-tls/sslserver/internal/proc"
	"github.com/ucspi-tls/sslserver/protocol"
	"github.com/ucspi-tls/sslserver/supervisor"
	"github.com/ucspi-tls/sslserver/tlsworker"
)

// init names a worker or the key holder "sslserver", as a process started
// from this binary by its file name is: they are exec'd through
// /proc/self/exe, which would name them "exe" in ps -e, top and pgrep.
// Package main's init runs on the main thread, whose name is the
// process's.
func init() {
	switch os.Args[0] {
	case protocol.WorkerArgv0, protocol.KeyHolderArgv0:
		proc.SetName("sslserver")
	}
}

func main() {
	switch os.Args[0] {
	case protocol.WorkerArgv0:
		os.Exit(tlsworker.WorkerMain())
	case protocol.KeyHolderArgv0:
		os.Exit(tlsworker.KeyHolderMain())
	}
	os.Exit(supervisor.Main(os.Args[1:], os.Stdout, os.Stderr))
}
