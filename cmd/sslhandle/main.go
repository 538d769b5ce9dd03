// Command sslhandle is a TLS front for a plain TCP or Unix-socket
// service: it accepts TLS connections on host port as sslserver does
// (confined TLS workers, the key in a key holder of its own) and relays
// each session's plaintext to a fresh connection to backend, from one
// of -c long-lived handler processes. See docs/sslhandle.md.
//
//	sslhandle [ options ] host port backend [ proxy ]
//
// backend is host:port or the path of a Unix socket (it has a '/');
// with the word proxy, each backend connection starts with a PROXY
// protocol v2 header: the client's address and the TLS facts.
package main

import (
	"os"

	"github.com/ucspi-tls/sslserver/sslhandle"
)

func main() {
	srv := &sslhandle.Server{Handler: relay, Name: "sslhandle", Check: checkArgs, Operands: "backend [ proxy ]"}
	os.Exit(srv.Main())
}
