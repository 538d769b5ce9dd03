package supervisor

import (
	"fmt"
	"maps"
	"os"
	"strings"

	"github.com/ucspi-tls/sslserver/internal/getopt"
)

// HandleConfig is one sslhandle server: sslserver's supervisor, TLS
// workers and key holder, with -c long-lived handler processes in place
// of a program per session. See docs/sslhandle.md.
type HandleConfig struct {
	Name string   // in log lines and usage messages: "sslhandle"
	Args []string // the command line, without the program's name
	// Check, if set, vets the operands after host and port (a handler's
	// arguments) at start; an error is a usage error, exit 100.
	Check func(operands []string) error
	// Operands names them in --help's usage line; "" is "[ args ... ]".
	Operands       string
	Stdout, Stderr *os.File
}

// HandleMain runs an sslhandle supervisor and returns its exit code.
func HandleMain(c HandleConfig) int {
	fl := &flavor{
		name:     c.Name,
		help:     c.help(),
		parse:    func(args []string) (*Options, error) { return ParseHandleArgs(c.Name, args, c.Check) },
		programs: func(s *Server) programSide { return newHandlerPool(s) },
	}
	return mainFlavor(c.Args, c.Stdout, c.Stderr, ExecSpawner{Stderr: c.Stderr}, fl)
}

// help is HandleHelp with the program's name and operands.
func (c *HandleConfig) help() string {
	usage := "usage: " + c.Name + " [ options ] host port "
	if c.Operands != "" {
		usage += c.Operands
	} else {
		usage += "[ args ... ]"
	}
	_, rest, _ := strings.Cut(HandleHelp, "\n")
	return usage + "\n" + rest
}

// handleArgOptions are sslserver's options with an argument, and -f.
var handleArgOptions = func() map[byte]func(o *Options, v string) error {
	m := maps.Clone(argOptions)
	// ucspi-ssl's sslhandle serialises accept with a lock file; here the
	// supervisor alone accepts, so there is nothing to lock.
	m['f'] = func(*Options, string) error { return nil }
	return m
}()

// ParseHandleArgs parses sslhandle's command line: sslserver's options
// and -f, then host, port and the handler's arguments, which check (if
// not nil) vets. -s is on by default: a handler, unlike a program, gets
// its session only once the handshake is done, with the SSL_* variables.
// Options.Program is name followed by the handler's arguments.
func ParseHandleArgs(name string, args []string, check func([]string) error) (*Options, error) {
	o := defaultOptions()
	o.SSLEnv = true
	operands, err := parseFlags(o, getopt.Set[*Options]{Flags: flagOptions, Args: handleArgOptions}, args)
	if err != nil {
		return nil, err
	}
	if len(operands) < 2 {
		return nil, fmt.Errorf("%w: need host and port", ErrUsage)
	}
	if check != nil {
		if err := check(operands[2:]); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUsage, err)
		}
	}
	return o, o.positional(append(operands[:2:2], append([]string{name}, operands[2:]...)...))
}

// HandleHelp is what "sslhandle --help" prints, sslserver's options
// included.
var HandleHelp = `usage: sslhandle [ options ] host port [ args ... ]

Accept TCP connections on host port, with TLS done by confined worker
processes and the private key in a separate key holder, and serve each
session's plaintext in one of -c long-lived handler processes, one
session at a time each. Runs as root. See docs/sslhandle.md.

sslhandle takes every sslserver option, with these differences:
  -c n      n handler processes, so at most n sessions at once (40)
  -f file   ucspi-ssl's accept lock file: accepted and ignored (the
            supervisor alone accepts, so there is no thundering herd)
  -s, -S    -s is the default: a handler gets its session after the
            handshake, with the SSL_* variables

` + Help[strings.Index(Help, "Options ("):]
