package client

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ucspi-tls/sslserver/internal/getopt"
)

// Options is sslclient's command line.
type Options struct {
	Host, Port   string
	Program      []string
	LocalIP      string           // -i
	LocalPort    string           // -p
	Connect      [2]time.Duration // -T x+y: first pass, second pass (0: none)
	Family       byte             // -4 or -6: only that family; 0: both
	RemoteLookup bool             // -h / -H
	LocalName    string           // -l; "" means look it up, "0" none
	NoDelay      bool             // -D (on) / -d
	TCPVars      bool             // -e / -E
	SSLEnv       bool             // -s / -S
	Delayed      bool             // -y / -Y
	Verify       bool             // -x (on) / -X
	NameCheck    bool             // -n (on) / -N
	Passphrase   bool             // -3
	Idle         time.Duration    // -w
	CAFile       string           // -a, else $CAFILE
	CADir        string           // -A, else $CADIR
	CertFile     string           // -c, else $CERTFILE
	KeyFile      string           // -k, else $KEYFILE
	Ciphers      string           // -z, else $CIPHERS
	Verbosity    Verbosity
}

// ErrUsage marks command-line errors: exit 100.
var ErrUsage = errors.New("usage")

// Help is what "sslclient --help" prints: every option and every
// variable sslclient reads. -h is not help: as in ucspi-ssl it turns the
// server's PTR lookup on.
const Help = `usage: sslclient [ options ] host port program [ args ... ]

Connect to a TLS server at host port and run program with fd 6 reading
from the server and fd 7 writing to it, with TLS done by a confined
process. The manual: man 1 sslclient.

Options (flags may be clustered, as in -yv; -h is not help but ucspi-ssl's
PTR lookup, use --help):
  -y, -Y        delayed TLS (the client side of UCSPI-TLS) / immediate (-Y)
  -x, -X        refuse / don't refuse a server that fails verification (-x)
  -n, -N        check / don't check the certificate's name against host (-n)
  -s, -S        put / don't put the SSL_* variables in the environment (-S)
  -e, -E        set / don't set the TCP* variables too (-E)
  -T x+y        connect timeouts, seconds: first and second round (2+58)
  -i localip    connect from this local address
  -p localport  connect from this local port
  -4, -6        try only the IPv4 / IPv6 addresses of host
  -h, -H        look up / don't look up the server's host name (-h)
  -l name       local host name; -l 0: none (default: PTR lookup)
  -R            no IDENT lookup (the only behaviour)
  -w n          idle timeout, seconds; 0: none (3600)
  -d, -D        TCP_NODELAY off / on (-D)
  -3            read the client key's passphrase from fd 3
  -a cafile     as CAFILE
  -A cadir      as CADIR
  -c certfile   as CERTFILE
  -k keyfile    as KEYFILE
  -z ciphers    as CIPHERS
  -q            log fatal errors only
  -Q            log errors and warnings (default)
  -v, -V        also log what happens to the connection
  --help        print this help and exit 0

Environment read at start:
  CAFILE, CADIR        trust anchors (default: the system's)
  CERTFILE             client certificate, PEM, leaf first
  KEYFILE              its private key; unset: the key is in CERTFILE
  CERTCHAINFILE        more certificates for the client chain
  CIPHERS              TLS 1.2 suites, OpenSSL names
  DHFILE, VERIFYDEPTH  ignored
  SSL_UID, SSL_GID     ids of the TLS process when run as root
  SSL_CHROOT           its empty root directory when run as root
  PATH                 to find program

Exit status: the program's; 100 usage; 111 no connection, a failed
handshake or verification.
`

// Defaults as tcpclient and ucspi-ssl's sslclient have them, except that
// the server's certificate and name are verified.
func defaultOptions() *Options {
	return &Options{
		Connect: [2]time.Duration{2 * time.Second, 58 * time.Second}, RemoteLookup: true,
		NoDelay: true, Verify: true, NameCheck: true, Idle: 3600 * time.Second, Verbosity: Errors,
	}
}

// flagOptions are the options without an argument, and what they set.
var flagOptions = map[byte]func(o *Options){
	'3': func(o *Options) { o.Passphrase = true },
	'4': func(o *Options) { o.Family = '4' },
	'6': func(o *Options) { o.Family = '6' },
	'd': func(o *Options) { o.NoDelay = false },
	'D': func(o *Options) { o.NoDelay = true },
	'e': func(o *Options) { o.TCPVars = true },
	'E': func(o *Options) { o.TCPVars = false },
	'h': func(o *Options) { o.RemoteLookup = true },
	'H': func(o *Options) { o.RemoteLookup = false },
	'n': func(o *Options) { o.NameCheck = true },
	'N': func(o *Options) { o.NameCheck = false },
	'R': func(o *Options) {}, // no IDENT lookup: the only behaviour
	's': func(o *Options) { o.SSLEnv = true },
	'S': func(o *Options) { o.SSLEnv = false },
	'x': func(o *Options) { o.Verify = true },
	'X': func(o *Options) { o.Verify = false },
	'y': func(o *Options) { o.Delayed = true },
	'Y': func(o *Options) { o.Delayed = false },
	'q': func(o *Options) { o.Verbosity = Quiet },
	'Q': func(o *Options) { o.Verbosity = Errors },
	'v': func(o *Options) { o.Verbosity = Verbose },
	'V': func(o *Options) { o.Verbosity = Verbose },
}

// argOptions are the options that take an argument.
var argOptions = map[byte]func(o *Options, v string) error{
	'i': func(o *Options, v string) error { o.LocalIP = v; return nil },
	'p': func(o *Options, v string) error { o.LocalPort = v; return nil },
	'T': func(o *Options, v string) error { return connectTimeouts(&o.Connect, v) },
	'l': func(o *Options, v string) error { o.LocalName = v; return nil },
	'w': func(o *Options, v string) error { return getopt.Seconds(&o.Idle, v, 0) },
	'a': func(o *Options, v string) error { o.CAFile = v; return nil },
	'A': func(o *Options, v string) error { o.CADir = v; return nil },
	'c': func(o *Options, v string) error { o.CertFile = v; return nil },
	'k': func(o *Options, v string) error { o.KeyFile = v; return nil },
	'z': func(o *Options, v string) error { o.Ciphers = v; return nil },
}

// ParseArgs parses args (without the program name) in the getopt manner
// of the UCSPI tools: clustered flags, an option's argument attached or
// next, "--" ends options, and host port program follow.
func ParseArgs(args []string) (*Options, error) {
	o := defaultOptions()
	set := getopt.Set[*Options]{Flags: flagOptions, Args: argOptions, Unknown: unknownOption}
	operands, err := set.Parse(o, args)
	if errors.Is(err, getopt.ErrHelp) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	return o, o.positional(operands)
}

// unknownOption names tcpclient's IDENT options, which sslclient does
// not implement, rather than calling them unknown.
func unknownOption(c byte) error {
	if c == 'r' || c == 't' {
		return fmt.Errorf("option -%c: sslclient makes no IDENT lookups", c)
	}
	return fmt.Errorf("unknown option -%c", c)
}

func (o *Options) positional(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("%w: need host, port and program", ErrUsage)
	}
	o.Host, o.Port, o.Program = args[0], args[1], args[2:]
	switch {
	case o.Host == "":
		return fmt.Errorf("%w: empty host", ErrUsage)
	case o.Program[0] == "":
		return fmt.Errorf("%w: empty program name", ErrUsage)
	}
	if _, err := parsePort(o.Port); err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if o.LocalPort != "" {
		if _, err := parsePort(o.LocalPort); err != nil {
			return fmt.Errorf("%w: option -p: %v", ErrUsage, err)
		}
	}
	return nil
}

// connectTimeouts reads -T x+y; "x" alone means no second pass.
func connectTimeouts(dst *[2]time.Duration, v string) error {
	first, second, hasSecond := strings.Cut(v, "+")
	var t [2]time.Duration
	if err := getopt.Seconds(&t[0], first, 1); err != nil {
		return err
	}
	if hasSecond {
		if err := getopt.Seconds(&t[1], second, 0); err != nil {
			return err
		}
	}
	if t[0]+t[1] > getopt.MaxSeconds*time.Second {
		return fmt.Errorf("%q adds up to more than %d seconds", v, getopt.MaxSeconds)
	}
	*dst = t
	return nil
}

// Handshake is the TLS handshake's deadline: as in ucspi-ssl, -T x+y
// bounds the SSL connection attempt too.
func (o *Options) Handshake() time.Duration {
	return o.Connect[0] + o.Connect[1]
}
