// Command sslclient connects to a TLS server and runs a program that
// reads from the server on fd 6 and writes to it on fd 7; with -y the
// program starts in plaintext and turns TLS on itself (the client side
// of UCSPI-TLS). See docs/sslclient.md.
//
// The same binary is re-executed as its TLS process, chosen by argv[0]
// (see protocol.ClientWorkerArgv0).
package main

import (
	"os"

	"github.com/ucspi-tls/sslserver/client"
	"github.com/ucspi-tls/sslserver/protocol"
	"github.com/ucspi-tls/sslserver/tlsworker"
)

func main() {
	if os.Args[0] == protocol.ClientWorkerArgv0 {
		os.Exit(tlsworker.ClientWorkerMain())
	}
	os.Exit(client.Main(os.Args[1:], os.Stdout, os.Stderr))
}
