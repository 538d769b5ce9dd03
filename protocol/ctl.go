package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Command is the one byte an application writes to $SSLCTLFD.
type Command byte

const (
	// CmdStart starts TLS; nothing is written back.
	CmdStart Command = 'y'
	// CmdStartReply starts TLS and asks for the connection's variables.
	CmdStartReply Command = 'Y'
)

// ErrUnknownCommand is wrapped by ParseCommand for any other byte.
var ErrUnknownCommand = errors.New("unknown control command")

// ParseCommand accepts exactly the two commands of UCSPI-TLS.
func ParseCommand(b byte) (Command, error) {
	switch c := Command(b); c {
	case CmdStart, CmdStartReply:
		return c, nil
	}
	return 0, fmt.Errorf("%w %q", ErrUnknownCommand, []byte{b})
}

// Var is one NAME=value entry of a reply block or an environment.
type Var struct {
	Name, Value string
}

// MaxBlock bounds a reply block; a real one is a few kilobytes (two PEM
// certificates at most).
const MaxBlock = 64 << 10

// EncodeBlock returns NAME=value\0...\0 followed by one more \0; an empty
// list gives \0\0.
func EncodeBlock(vars []Var) ([]byte, error) {
	return encodeVars(vars, MaxBlock)
}

// encodeVars is EncodeBlock with max bytes at most.
func encodeVars(vars []Var, max int) ([]byte, error) {
	var b bytes.Buffer
	for _, v := range vars {
		if err := checkVar(v); err != nil {
			return nil, err
		}
		b.WriteString(v.Name)
		b.WriteByte('=')
		b.WriteString(v.Value)
		b.WriteByte(0)
	}
	if len(vars) == 0 {
		b.WriteByte(0)
	}
	b.WriteByte(0)
	if b.Len() > max {
		return nil, fmt.Errorf("reply block of %d bytes exceeds %d", b.Len(), max)
	}
	return b.Bytes(), nil
}

// DecodeBlock is the strict inverse of EncodeBlock: the input must be one
// whole block and nothing more.
func DecodeBlock(p []byte) ([]Var, error) {
	return decodeVars(p, MaxBlock)
}

// decodeVars is DecodeBlock with max bytes at most.
func decodeVars(p []byte, max int) ([]Var, error) {
	if len(p) > max {
		return nil, fmt.Errorf("reply block of %d bytes exceeds %d", len(p), max)
	}
	if bytes.Equal(p, []byte{0, 0}) {
		return nil, nil
	}
	if len(p) < 2 || p[len(p)-1] != 0 || p[len(p)-2] != 0 {
		return nil, fmt.Errorf("reply block does not end in \\0\\0: %q", tail(p))
	}
	var vars []Var
	for _, e := range bytes.Split(p[:len(p)-2], []byte{0}) {
		v, err := parseVar(e)
		if err != nil {
			return nil, err
		}
		vars = append(vars, v)
	}
	return vars, nil
}

func parseVar(e []byte) (Var, error) {
	name, value, ok := bytes.Cut(e, []byte{'='})
	if !ok {
		return Var{}, fmt.Errorf("reply block entry without '=': %q", e)
	}
	v := Var{Name: string(name), Value: string(value)}
	return v, checkVar(v)
}

func checkVar(v Var) error {
	if !ValidName(v.Name) {
		return fmt.Errorf("invalid variable name %q", v.Name)
	}
	if bytes.IndexByte([]byte(v.Value), 0) >= 0 {
		return fmt.Errorf("variable %s has a NUL byte in its value", v.Name)
	}
	return nil
}

// ValidName reports whether s is a usable environment variable name:
// letters, digits and underscores, not starting with a digit.
func ValidName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func tail(p []byte) []byte {
	if len(p) > 16 {
		return p[len(p)-16:]
	}
	return p
}

// ReadBlock reads one reply block from r, up to and including its final
// \0\0, and decodes it; it reads byte by byte so that nothing after the
// block is consumed. EOF before the end means the handshake failed.
func ReadBlock(r io.Reader) ([]Var, error) {
	var p []byte
	var b [1]byte
	for len(p) <= MaxBlock {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			if err == io.EOF {
				return nil, fmt.Errorf("TLS failed: control fd closed after %d bytes of the reply block", len(p))
			}
			return nil, err
		}
		p = append(p, b[0])
		if blockDone(p) {
			return DecodeBlock(p)
		}
	}
	return nil, fmt.Errorf("reply block exceeds %d bytes", MaxBlock)
}

// blockDone reports whether p ends a block: \0\0 at the very start (the
// empty block) or an entry's \0 followed by the closing \0.
func blockDone(p []byte) bool {
	n := len(p)
	return n >= 2 && p[n-1] == 0 && p[n-2] == 0
}

// StartTLS is the application's side of UCSPI-TLS: it writes the command
// to the control fd and, with reply, reads the block; either way it waits
// for the control fd to close, which happens once the handshake is done.
// On return the application switches to $SSLREADFD and $SSLWRITEFD.
func StartTLS(ctl io.ReadWriter, reply bool) ([]Var, error) {
	cmd := CmdStart
	if reply {
		cmd = CmdStartReply
	}
	if _, err := ctl.Write([]byte{byte(cmd)}); err != nil {
		return nil, fmt.Errorf("writing control command: %w", err)
	}
	var vars []Var
	if reply {
		v, err := ReadBlock(ctl)
		if err != nil {
			return nil, err
		}
		vars = v
	}
	return vars, waitClosed(ctl)
}

func waitClosed(r io.Reader) error {
	var b [1]byte
	n, err := r.Read(b[:])
	if n > 0 {
		return fmt.Errorf("unexpected byte %q on the control fd after the reply", b[:n])
	}
	if err == io.EOF {
		return nil
	}
	return fmt.Errorf("TLS failed: %w", err)
}
