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
	Verbosity    Verbosity
}

// ErrUsage marks command-line errors: exit 100.
var ErrUsage = errors.New("usage")

// Usage is the one-line synopsis printed with a usage error.
const Usage = "usage: sslserver [ -1346UXpPhHrRoOdDqQvVeEsSnNzmZ ] [ -c limit ] [ -x rules.cdb ] [ -y iprules.cdb ] [ -B banner ] [ -g gid ] [ -u uid ] [ -b backlog ] [ -l localname ] [ -t timeout ] [ -T handshake ] [ -w idle ] [ -I interface ] host port program"

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
	set := getopt.Set[*Options]{Flags: flagOptions, Args: argOptions}
	operands, err := set.Parse(o, args)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	return o, o.positional(operands)
}

func (o *Options) positional(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("%w: need host, port and program", ErrUsage)
	}
	o.Host, o.Port, o.Program = args[0], args[1], args[2:]
	if o.Program[0] == "" {
		return fmt.Errorf("%w: empty program name", ErrUsage)
	}
	if o.ClientCert != 'Z' {
		return fmt.Errorf("%w: option -%c: client certificates are not supported yet", ErrUsage, o.ClientCert)
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
