// Command sslrulescheck shows which rule of a rules cdb a client would hit
// and what it sets, with the interface and output of ucspi-tcp's
// tcprulescheck:
//
//	TCPREMOTEIP=1.2.3.4 TCPREMOTEHOST=mx.example.com sslrulescheck rules.cdb
//
// The remote IP comes from $TCPREMOTEIP (or $SSLREMOTEIP), the host name
// from $TCPREMOTEHOST (or $SSLREMOTEHOST), the IDENT info from
// $TCPREMOTEINFO (or $SSLREMOTEINFO); empty counts as unknown. Output:
//
//	rule 1.2.3.4:                      or "default:"
//	set environment variable X=y       per assignment
//	allow connection                   or "deny connection"
//
// Exit codes: 0 done, 100 usage or no valid remote IP, 111 the cdb cannot
// be read or is malformed.
package main

import (
	"fmt"
	"io"
	"net/netip"
	"os"

	"github.com/ucspi-tls/sslserver/acl"
	"github.com/ucspi-tls/sslserver/internal/getopt"
	"github.com/ucspi-tls/sslserver/protocol"
)

const progName = "sslrulescheck"

// help is what -h and --help print.
const help = `usage: sslrulescheck rules.cdb

Show which rule of rules.cdb a client would hit and what it sets, as
sslserver -x would apply it. The manual: man 1 sslrulescheck.

Options:
  -h, --help  print this help and exit 0
  --          end of options

Environment (the client to check; empty counts as unknown):
  TCPREMOTEIP or SSLREMOTEIP      its IP address (required)
  TCPREMOTEHOST or SSLREMOTEHOST  its host name
  TCPREMOTEINFO or SSLREMOTEINFO  its IDENT answer

Exit status: 0 done, 100 usage or no valid remote IP, 111 the cdb cannot be
read or is malformed.
`

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is the whole program; it returns the exit code.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, help)
		return protocol.ExitOK
	}
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) != 1 || args[0] == "" {
		getopt.PrintUsage(stderr, progName, "usage: sslrulescheck rules.cdb")
		return protocol.ExitUsage
	}
	q, err := query(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "%s: fatal: %v\n", progName, err)
		return protocol.ExitUsage
	}
	v, err := acl.Check(args[0], q)
	if err != nil {
		fmt.Fprintf(stderr, "%s: fatal: unable to read: %v\n", progName, err)
		return protocol.ExitTemp
	}
	if _, err := io.WriteString(stdout, v.String()); err != nil {
		fmt.Fprintf(stderr, "%s: fatal: unable to write output: %v\n", progName, err)
		return protocol.ExitTemp
	}
	return protocol.ExitOK
}

// either returns the TCP variable, or the SSL one if that is empty.
func either(getenv func(string) string, suffix string) string {
	if v := getenv("TCP" + suffix); v != "" {
		return v
	}
	return getenv("SSL" + suffix)
}

func query(getenv func(string) string) (acl.Query, error) {
	s := either(getenv, "REMOTEIP")
	if s == "" {
		return acl.Query{}, fmt.Errorf("$TCPREMOTEIP (or $SSLREMOTEIP) is not set")
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return acl.Query{}, fmt.Errorf("bad remote IP %q: %w", s, err)
	}
	return acl.Query{
		IP:   ip,
		Host: either(getenv, "REMOTEHOST"),
		Info: either(getenv, "REMOTEINFO"),
	}, nil
}
