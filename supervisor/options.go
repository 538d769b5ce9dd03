package supervisor

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ucspi-tls/sslserver/internal/getopt"
)

// Options is sslserver's command line.
type Options struct {
	Host, Port   string
	Program      []string
	MaxConn      int           // -c
	Backlog      int           // -b
	Rules        string        // -x
	RulesMissing bool          // -X: a missing -x cdb allows
	IPRules      string        // -y
	Banner       string        // -B
	UID, GID     *uint32       // -u, -g (or -U)
	FromEnvIDs   bool          // -U
	LocalName    string        // -l; "0" means none
	RemoteLookup bool          // -h / -H
	Paranoid     bool          // -p / -P
	Ident        bool          // -r / -R
	IdentTimeout time.Duration // -t
	Handshake    time.Duration // -T
	Idle         time.Duration // -w
	NoDelay      bool          // -D (on) / -d
	TCPVars      bool          // -e / -E
	SSLEnv       bool          // -s / -S
	Delayed      bool          // -n / -N
	ClientCert   byte          // 'z', 'm' or 'Z'
	PrintPort    bool          // -1
	Passphrase   bool          // -3
	Prefer       byte          // '4' or '6' or 0
	Interface    string        // -I
	ReusePort    bool          // REUSEPORT=1 (environment)
	Verbosity    Verbosity
}

// ErrUsage marks command-line errors: exit 100.
var ErrUsage = errors.New("usage")

// Help is what "sslserver --help" prints: every option and every
// variable sslserver reads. -h is not help: as in ucspi-ssl it turns the
// client's PTR lookup on.
const Help = `usage: sslserver [ options ] host port program [ args ... ]

Accept TCP connections on host port and run program for each, with TLS
done by a confined worker process and the private key in a separate key
holder. Runs as root. The manual: man 8 sslserver.

Options (flags may be clustered, as in -vn; -h is not help but ucspi-ssl's
PTR lookup, use --help):
  -c n      at most n sessions at once (40)
  -b n      listen backlog (20)
  -x cdb    rules cdb in tcprules format, read for every connection
  -X        with -x, a missing cdb allows
  -y cdb    rules looked up by the client's IP address alone, before -x
  -B text   banner written to the client before the program runs
  -u uid    run the program with this numeric uid
  -g gid    run the program with this numeric gid
  -U        same as -u $UID -g $GID
  -l name   local host name; -l 0: none (default: PTR lookup)
  -h, -H    look up / don't look up the client's host name (-h)
  -p, -P    paranoid PTR check on / off (-P)
  -r, -R    IDENT lookup on / off (-R)
  -t n      IDENT timeout, seconds (26)
  -T n      TLS handshake deadline, seconds (26)
  -w n      idle timeout, seconds; 0: none (3600)
  -d, -D    TCP_NODELAY off / on (-D)
  -e, -E    set / don't set the TCP* variables too (-e)
  -s, -S    put / don't put the SSL_* variables in the environment (-S)
  -n, -N    delayed TLS (UCSPI-TLS, STARTTLS) / immediate TLS (-N)
  -z        require a client certificate naming the remote host (-h)
  -m        require a client certificate, no name check
  -Z        don't ask for a client certificate (-Z)
  -1        print the bound port on standard output
  -3        read the key's passphrase from fd 3
  -4, -6    bind the first IPv4 / IPv6 address of a host name
  -I if     interface (zone) of an IPv6 link-local host
  -o, -O    accepted for ucspi-ssl's sake, ignored
  -q        log fatal errors only
  -Q        log errors and warnings (default)
  -v        also log one line per session event
  -V        as -v, with the protocol and cipher in the tls line
  --help    print this help and exit 0

Environment read at start (the certificate files again on SIGHUP):
  CERTFILE             certificate chain, PEM, leaf first (required)
  KEYFILE              its private key; unset: the key is in CERTFILE
  CERTCHAINFILE        more certificates for CERTFILE's chain
  CERTFILE:name        certificate for SNI name "name"
  KEYFILE:name         its key; unset: in CERTFILE:name
  CAFILE, CADIR        CAs of client certificates (-z, -m): PEM file, hash dir
  CCAFILE              CAs named to clients (default: CAFILE's; -: none)
  VERIFYDEPTH          CA certificates above a client's, at most (5)
  TICKETKEYFILE        session-ticket keys shared by hosts and restarts
  CERTFILE2, KEYFILE2  a second certificate (say RSA) for the default; :name too
  CIPHERS              TLS 1.2 suites, OpenSSL names
  DHFILE               ignored
  SSL_UID, SSL_GID     ids of the TLS workers and the key holder
  SSL_CHROOT           their empty root directory
  SSL_PREFORK          TLS workers started ahead of demand (4)
  SSL_WORKER_SESSIONS  sessions one worker may serve (1)
  SSL_RELOAD_POLL      seconds between looks at the certificate files (60; 0: none)
  MAXCONIP             sessions at once per client address
  DNSCACHEIP           DNS server for -h, -p and the local name
  PROXYFROM            proxies (addresses, CIDRs) that must send a PROXY header
  REUSEPORT            1: bind with SO_REUSEPORT, to hand the port over
  LISTEN_FDS           with LISTEN_PID: systemd socket activation, serve fd 3
  NOTIFY_SOCKET        systemd: READY=1 once serving, STOPPING=1 at SIGTERM
  SSLSERVER_LOG        json: log in JSON
  UID, GID             the program's ids with -U
  PATH, TMPDIR         to find program; where the default root is made

Exit status: 0 stopped by SIGTERM or SIGINT, 100 usage, 111 cannot start.
A session refused for its client certificate ends with status 110.
`

func defaultOptions() *Options {
	return &Options{
		MaxConn: 40, Backlog: 20, RemoteLookup: true, IdentTimeout: 26 * time.Second,
		Handshake: 26 * time.Second, Idle: 3600 * time.Second, NoDelay: true,
		TCPVars: true, ClientCert: 'Z', Verbosity: Errors,
	}
}

// flagOptions are the options without an argument, and what they set.
var flagOptions = map[byte]func(o *Options){
	'1': func(o *Options) { o.PrintPort = true },
	'3': func(o *Options) { o.Passphrase = true },
	'4': func(o *Options) { o.Prefer = '4' },
	'6': func(o *Options) { o.Prefer = '6' },
	'U': func(o *Options) { o.FromEnvIDs = true },
	'X': func(o *Options) { o.RulesMissing = true },
	'h': func(o *Options) { o.RemoteLookup = true },
	'H': func(o *Options) { o.RemoteLookup = false },
	'p': func(o *Options) { o.Paranoid = true },
	'P': func(o *Options) { o.Paranoid = false },
	'r': func(o *Options) { o.Ident = true },
	'R': func(o *Options) { o.Ident = false },
	'o': func(o *Options) {}, // ucspi-ssl: leave IP options alone; nothing to do here
	'O': func(o *Options) {},
	'd': func(o *Options) { o.NoDelay = false },
	'D': func(o *Options) { o.NoDelay = true },
	'e': func(o *Options) { o.TCPVars = true },
	'E': func(o *Options) { o.TCPVars = false },
	's': func(o *Options) { o.SSLEnv = true },
	'S': func(o *Options) { o.SSLEnv = false },
	'n': func(o *Options) { o.Delayed = true },
	'N': func(o *Options) { o.Delayed = false },
	'z': func(o *Options) { o.ClientCert = 'z' },
	'm': func(o *Options) { o.ClientCert = 'm' },
	'Z': func(o *Options) { o.ClientCert = 'Z' },
	'q': func(o *Options) { o.Verbosity = Quiet },
	'Q': func(o *Options) { o.Verbosity = Errors },
	'v': func(o *Options) { o.Verbosity = Verbose },
	'V': func(o *Options) { o.Verbosity = Cipher },
}

// argOptions are the options that take an argument.
var argOptions = map[byte]func(o *Options, v string) error{
	'c': func(o *Options, v string) error { return positive(&o.MaxConn, v) },
	'b': func(o *Options, v string) error { return positive(&o.Backlog, v) },
	'x': func(o *Options, v string) error { o.Rules = v; return nil },
	'y': func(o *Options, v string) error { o.IPRules = v; return nil },
	'B': func(o *Options, v string) error { o.Banner = v; return nil },
	'u': func(o *Options, v string) error { return id(&o.UID, v) },
	'g': func(o *Options, v string) error { return id(&o.GID, v) },
	'l': func(o *Options, v string) error { o.LocalName = v; return nil },
	't': func(o *Options, v string) error { return getopt.Seconds(&o.IdentTimeout, v, 1) },
	'T': func(o *Options, v string) error { return getopt.Seconds(&o.Handshake, v, 1) },
	'w': func(o *Options, v string) error { return getopt.Seconds(&o.Idle, v, 0) },
	'I': func(o *Options, v string) error { o.Interface = v; return nil },
}

// ParseArgs parses args (without the program name) in the getopt manner
// of the UCSPI tools: clustered flags, an option's argument attached or
// next, "--" ends options, and host port program follow.
func ParseArgs(args []string) (*Options, error) {
	o := defaultOptions()
	operands, err := parseFlags(o, getopt.Set[*Options]{Flags: flagOptions, Args: argOptions}, args)
	if err != nil {
		return nil, err
	}
	return o, o.positional(operands)
}

// parseFlags parses the options of set into o and returns the operands
// after them. getopt.ErrHelp comes back as it is; any other error is a
// usage error.
func parseFlags(o *Options, set getopt.Set[*Options], args []string) ([]string, error) {
	operands, err := set.Parse(o, args)
	if err != nil && !errors.Is(err, getopt.ErrHelp) {
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	return operands, err
}

func (o *Options) positional(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("%w: need host, port and program", ErrUsage)
	}
	o.Host, o.Port, o.Program = args[0], args[1], args[2:]
	if o.Program[0] == "" {
		return fmt.Errorf("%w: empty program name", ErrUsage)
	}
	return nil
}

func positive(dst *int, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return fmt.Errorf("%q is not a positive number", v)
	}
	*dst = n
	return nil
}

func id(dst **uint32, v string) error {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil {
		return fmt.Errorf("%q is not a numeric id", v)
	}
	u := uint32(n)
	*dst = &u
	return nil
}
