package protocol

import "fmt"

// sslhandle's long-lived handler processes: the supervisor re-executes
// its own binary with this argv[0], under the program's ids (-u, -g).
const HandlerArgv0 = "sslhandle-handler"

// The fd map of a handler process at exec: 0 and 1 are /dev/null, 2 is
// the supervisor's stderr (as a program's), and
const (
	HandlerFdSupervisor = 3 // SOCK_SEQPACKET: MsgHandler* between supervisor and handler, for the handler's life
)

// A handler gets each session's descriptors with MsgHandlerSession, in
// this order: the program's end of $SSLCTLFD, its $SSLREADFD and its
// $SSLWRITEFD; and under -n (Delayed) the TCP connection as well, which
// is a program's fds 0 and 1 there.
const (
	HandlerFdCtl   = iota // SOCK_STREAM: UCSPI-TLS control
	HandlerFdRead         // pipe, read end: plaintext from the client
	HandlerFdWrite        // pipe, write end: plaintext for the client
	HandlerFdConn         // -n only: the TCP connection with the client
)

// Messages between the supervisor and a handler. A handler serves one
// session at a time: the supervisor sends HandlerSession only to an idle
// handler, may send HandlerAbort for that session, and the handler
// answers each session with exactly one HandlerEnd.
const (
	MsgHandlerSession MsgType = 40 // supervisor -> handler, when idle; the session's fds ride along
	MsgHandlerEnd     MsgType = 41 // handler -> supervisor, once a session, last
	MsgHandlerAbort   MsgType = 42 // supervisor -> handler, at most once a session: end it now
)

// maxEnvBlock bounds a session's environment; the per-session part is a
// few kilobytes, the rest is the server's own environment.
const maxEnvBlock = 96 << 10

// HandlerSession hands an idle handler session Seq. Env is the
// environment a program of that session would get, as a reply block
// (NAME=value\0...\0\0; see EncodeBlock), less the fd numbers, which
// mean nothing in the handler. Delayed (-n) says whether the TCP
// connection rides along too.
type HandlerSession struct {
	Seq     uint32
	Delayed bool
	Env     []byte
}

// HandlerEnd closes session Seq with the handler's status for it, the
// exit code a program would have had.
type HandlerEnd struct {
	Seq  uint32
	Code uint8
}

// HandlerAbort asks the handler to end session Seq at once: the TLS
// worker failed, or the server is stopping.
type HandlerAbort struct{ Seq uint32 }

func (*HandlerSession) Type() MsgType { return MsgHandlerSession }
func (*HandlerEnd) Type() MsgType     { return MsgHandlerEnd }
func (*HandlerAbort) Type() MsgType   { return MsgHandlerAbort }

// handlerSessionFiles says how many descriptors ride with m.
func handlerSessionFiles(m *HandlerSession) int {
	if m.Delayed {
		return HandlerFdConn + 1
	}
	return HandlerFdConn
}

func (m *HandlerSession) encode(e *encoder) {
	e.u32(m.Seq)
	e.bool(m.Delayed)
	e.bytes(m.Env)
}

func (m *HandlerSession) decode(d *decoder) {
	m.Seq = d.u32()
	m.Delayed = d.bool()
	m.Env = d.bytes(maxEnvBlock)
	if d.err != nil {
		return
	}
	if _, err := decodeEnvBlock(m.Env); err != nil {
		d.err = fmt.Errorf("session environment: %w", err)
	}
}

// Environ returns Env as NAME=value strings.
func (m *HandlerSession) Environ() ([]string, error) {
	vars, err := decodeEnvBlock(m.Env)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(vars))
	for i, v := range vars {
		out[i] = v.Name + "=" + v.Value
	}
	return out, nil
}

// EnvBlock encodes an environment for HandlerSession.Env. Entries whose
// name a block cannot carry (see ValidName) are left out.
func EnvBlock(environ []string) ([]byte, error) {
	var vars []Var
	for _, kv := range environ {
		v, err := parseVar([]byte(kv))
		if err == nil {
			vars = append(vars, v)
		}
	}
	return encodeEnvBlock(vars)
}

// encodeEnvBlock and decodeEnvBlock are EncodeBlock and DecodeBlock with
// the environment's larger bound.
func encodeEnvBlock(vars []Var) ([]byte, error) {
	return encodeVars(vars, maxEnvBlock)
}

func decodeEnvBlock(p []byte) ([]Var, error) {
	return decodeVars(p, maxEnvBlock)
}

func (m *HandlerEnd) encode(e *encoder) {
	e.u32(m.Seq)
	e.u8(m.Code)
}

func (m *HandlerEnd) decode(d *decoder) {
	m.Seq = d.u32()
	m.Code = d.u8()
}

func (m *HandlerAbort) encode(e *encoder) { e.u32(m.Seq) }
func (m *HandlerAbort) decode(d *decoder) { m.Seq = d.u32() }
