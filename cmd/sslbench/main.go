// Command sslbench measures sslserver against its peers: stunnel4, socat,
// tcpserver (no TLS, the spawn floor) and an in-process crypto/tls server
// (the ceiling for any Go design), on loopback, in alternating rounds.
// "make bench" runs it; docs/performance.md explains the figures.
//
//	sslbench run [-quick] [-servers "sslserver;sslserver SSL_PREFORK=16;stunnel4"] [-append docs/performance.md]
//	sslbench ceiling [-n] -cert file -key file -addr host:port program [args]
//	sslbench load [-kind close|firstbyte|smtp] [-c n] [-d duration] -cert file host:port
package main

import (
	"os"

	"github.com/ucspi-tls/sslserver/bench"
)

func main() {
	os.Exit(bench.Main(os.Args[1:], os.Stdout, os.Stderr))
}
