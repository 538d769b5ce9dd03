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

	"github.com/ucspi-tls/sslserver/protocol"
	"github.com/ucspi-tls/sslserver/supervisor"
	"github.com/ucspi-tls/sslserver/tlsworker"
)

func main() {
	switch os.Args[0] {
	case protocol.WorkerArgv0:
		os.Exit(tlsworker.WorkerMain())
	case protocol.KeyHolderArgv0:
		os.Exit(tlsworker.KeyHolderMain())
	}
	os.Exit(supervisor.Main(os.Args[1:], os.Stdout, os.Stderr))
}
