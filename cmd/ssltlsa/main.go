// Command ssltlsa prints the DANE TLSA records that pin the public keys
// of certificates: of PEM files given as arguments, or, without any, of
// the certificates sslserver would serve in the same environment:
//
//	ssltlsa cert.pem                  3 1 1 <hex>  cert.pem
//	ssltlsa -n mx.example.org cert.pem
//	                                  _25._tcp.mx.example.org. IN TLSA 3 1 1 <hex>
//	envdir ./env ssltlsa              3 1 1 <hex>  default   (one line per certificate)
//
// It never reads private keys. Exit codes: 0 done, 100 usage, 111 a
// certificate cannot be read.
package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/ucspi-tls/sslserver/internal/dane"
	"github.com/ucspi-tls/sslserver/internal/getopt"
	"github.com/ucspi-tls/sslserver/protocol"
	"github.com/ucspi-tls/sslserver/supervisor"
	"github.com/ucspi-tls/sslserver/tlsworker/keys"
)

const progName = "ssltlsa"

// help is what -h and --help print.
const help = `usage: ssltlsa [ -a ] [ -n host ] [ -p port ] [ file ... ]

Print the DANE TLSA record (3 1 1: the SHA-256 of the public key) of the
first certificate of each PEM file; without files, of each certificate
sslserver would serve in this environment. Private keys are never read.
The manual: man 1 ssltlsa.

Options:
  -a          also print 2 1 1 for each further certificate of a chain
  -n host     print zone-file lines for host: _25._tcp.host. IN TLSA ...
              (without files, for the default certificate; those of
              CERTFILE:name are for name)
  -p port     the port of those lines (default 25)
  -h, --help  print this help and exit 0
  --          end of options

Environment (without files, as sslserver reads it):
  CERTFILE, CERTCHAINFILE    the default certificate and its chain
  CERTFILE:name              the certificate for SNI name "name"
  CERTFILE2, CERTFILE2:name  a second certificate for the same name
  KEYFILE, KEYFILE:name...   checked to be set as sslserver does, never read

Exit status: 0 done, 100 usage, 111 a certificate cannot be read.
`

// options is what the command line says.
type options struct {
	all  bool
	host string
	port int
}

var flags = map[byte]func(*options){
	'a': func(o *options) { o.all = true },
}

var withArgs = map[byte]func(*options, string) error{
	'n': setHost,
	'p': setPort,
}

// errHelp stands for -h, which getopt leaves to the program.
var errHelp = errors.New("help")

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Environ(), os.Stdout, os.Stderr))
}

// run is the whole program; it returns the exit code.
func run(args []string, getenv func(string) string, environ []string, stdout, stderr io.Writer) int {
	o := &options{port: 25}
	set := getopt.Set[*options]{Flags: flags, Args: withArgs, Unknown: helpLetter}
	files, err := set.Parse(o, args)
	switch {
	case errors.Is(err, getopt.ErrHelp) || errors.Is(err, errHelp):
		fmt.Fprint(stdout, help)
		return protocol.ExitOK
	case err != nil:
		getopt.PrintUsage(stderr, progName, "usage: "+err.Error())
		return protocol.ExitUsage
	}
	var lines []string
	if len(files) > 0 {
		lines, err = fileLines(o, files)
	} else {
		lines, err = envLines(o, getenv, environ)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: fatal: %v\n", progName, err)
		return protocol.ExitTemp
	}
	if _, err := io.WriteString(stdout, strings.Join(lines, "")); err != nil {
		fmt.Fprintf(stderr, "%s: fatal: unable to write output: %v\n", progName, err)
		return protocol.ExitTemp
	}
	return protocol.ExitOK
}

func helpLetter(c byte) error {
	if c == 'h' {
		return errHelp
	}
	return fmt.Errorf("unknown option -%c", c)
}

// setHost takes a DNS name, with or without the final dot.
func setHost(o *options, v string) error {
	v = strings.TrimSuffix(v, ".")
	if v == "" || strings.ContainsAny(v, " \t\r\n;") {
		return fmt.Errorf("bad host name %q", v)
	}
	o.host = v
	return nil
}

func setPort(o *options, v string) error {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("bad port %q", v)
	}
	o.port = int(n)
	return nil
}

// fileLines reads each file's certificates and gives their lines.
func fileLines(o *options, files []string) ([]string, error) {
	var lines []string
	for _, f := range files {
		chain, err := readChain(f)
		if err != nil {
			return nil, err
		}
		lines = append(lines, o.lines(chain, o.host, f)...)
	}
	return lines, nil
}

// readChain parses the CERTIFICATE blocks of a PEM file; other blocks,
// a private key among them, are skipped undecoded.
func readChain(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("unable to read certificate: %w", err)
	}
	ders, err := keys.ParseChain(data, nil)
	if err != nil {
		return nil, fmt.Errorf("unable to read certificate: %s: %w", file, err)
	}
	chain := make([]*x509.Certificate, len(ders))
	for i, der := range ders {
		if chain[i], err = x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("unable to read certificate: %s: %w", file, err)
		}
	}
	return chain, nil
}

// envLines gives the lines of every certificate sslserver would serve.
func envLines(o *options, getenv func(string) string, environ []string) ([]string, error) {
	served, err := supervisor.ServedCertificates(getenv, environ)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, s := range served {
		host := strings.TrimSuffix(s.Name, ".")
		if host == "" {
			host = o.host
		}
		lines = append(lines, o.lines(s.Chain, host, s.Label)...)
	}
	return lines, nil
}

// lines are one chain's records: the leaf's 3 1 1, and with -a a 2 1 1
// for each issuer. With -n they are zone-file lines for host, else
// each ends with what the certificate is (its file or label).
func (o *options) lines(chain []*x509.Certificate, host, what string) []string {
	var out []string
	for i, cert := range chain {
		usage := dane.EE
		if i > 0 {
			if !o.all {
				break
			}
			usage = dane.TA
		}
		out = append(out, o.line(dane.Record(usage, cert), host, what))
	}
	return out
}

func (o *options) line(record, host, what string) string {
	if o.host == "" {
		return record + "  " + what + "\n"
	}
	return fmt.Sprintf("_%d._tcp.%s. IN TLSA %s\n", o.port, host, record)
}
