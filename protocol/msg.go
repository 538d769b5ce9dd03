package protocol

import (
	"crypto"
	"fmt"
)

// MsgType is the first byte of every message between our processes. The
// list is closed: any other value is an error.
type MsgType uint8

const (
	// supervisor <-> TLS worker
	MsgWorkerConfig  MsgType = 1  // supervisor -> worker, exactly once, first
	MsgHandshakeDone MsgType = 2  // worker -> supervisor, at most once
	MsgSessionFailed MsgType = 3  // worker -> supervisor, at most once, then it exits with Code
	MsgProgramExited MsgType = 4  // supervisor -> worker, at most once a session
	MsgWorkerReady   MsgType = 5  // worker -> supervisor, once, when confined
	MsgSession       MsgType = 6  // supervisor -> worker, when idle; the session's fds ride along
	MsgSessionEnd    MsgType = 7  // worker -> supervisor, once a session, last
	MsgSessionTaken  MsgType = 8  // worker -> supervisor, once a session, first
	MsgKeyHolderLost MsgType = 9  // worker -> supervisor, in a session: its key channel hung up
	MsgKeyChannel    MsgType = 16 // supervisor -> worker, answering KeyHolderLost; the new channel rides along
	MsgClientVerdict MsgType = 18 // supervisor -> worker, -n -z: once a session, after HandshakeDone

	// TLS worker <-> key holder
	MsgSignRequest MsgType = 10 // worker -> key holder
	MsgSignature   MsgType = 11 // key holder -> worker
	MsgSignRefused MsgType = 12 // key holder -> worker, then it hangs up
	MsgSealTicket  MsgType = 13 // worker -> key holder: a session state to seal into a ticket
	MsgTicket      MsgType = 14 // key holder -> worker: the sealed ticket
	MsgOpenTicket  MsgType = 15 // worker -> key holder: a client's ticket to open
	MsgTicketState MsgType = 17 // key holder -> worker: the state in it, or none

	// supervisor <-> key holder
	MsgKeys       MsgType = 20 // supervisor -> key holder, once, first; the key files ride along
	MsgKeysLoaded MsgType = 21 // key holder -> supervisor
	MsgKeysFailed MsgType = 22 // key holder -> supervisor, then it exits
	MsgNewWorker  MsgType = 23 // supervisor -> key holder; a worker's channel rides along
	MsgGrant      MsgType = 24 // supervisor -> key holder: a worker may sign again
)

// Bounds on fields; anything larger is refused by the decoder.
const (
	MaxMsg        = 128 << 10 // one SOCK_SEQPACKET datagram, well inside the default socket buffer
	maxCertDER    = 32 << 10
	maxChainLen   = 16
	maxCerts      = 64
	maxClientCAs  = 512
	MaxTicket     = 64 << 10 // a session state (with the client's certificates) or a ticket
	maxReason     = 1024
	maxBanner     = 4096
	MaxSignInput  = 2048 // an Ed25519 message; digests are far shorter
	maxSignature  = 1024 // RSA-8192
	maxPassphrase = 1024
	MaxKeyFiles   = 64
	maxName       = 255
	maxSuites     = 64
	maxPath       = 4096
)

// Message is one of the types below.
type Message interface {
	Type() MsgType
	encode(*encoder)
	decode(*decoder)
}

// Cert is one certificate the worker may present: the chain as DER, leaf
// first, and the index of its key in the key holder. Name is the SNI name
// it answers to; "" is the default.
type Cert struct {
	Name  string
	Chain [][]byte
	Key   uint16
}

// WorkerConfig tells a fresh worker who to become and what to do.
type WorkerConfig struct {
	UID, GID      uint32
	Root          string // absolute path to chroot into
	Delayed       bool   // -n: wait for a control command
	SSLEnv        bool   // -s: send the SSL_* block with MsgHandshakeDone
	Sessions      uint16 // how many sessions, one after another, before exiting
	HandshakeMsec uint32
	IdleMsec      uint32
	Certs         []Cert
	CipherSuites  []uint16 // TLS 1.2 suites; empty: Go's defaults
	Banner        []byte   // immediate mode: sent over TLS first

	// Client certificates (-z, -m): ClientCert is one of the
	// ClientCert* values; ClientCAs are the DER certificates a client's
	// chain must lead to (CAFILE, CADIR), AdvertiseCAs those whose names
	// the server's CertificateRequest lists (CCAFILE), VerifyDepth the
	// most CA certificates above the client's. All empty under -Z.
	ClientCert   uint8
	ClientCAs    [][]byte
	AdvertiseCAs [][]byte
	VerifyDepth  uint16
}

// What a worker does about client certificates.
const (
	ClientCertNone      = 0 // -Z: don't ask
	ClientCertRequire   = 1 // -m: require one that verifies
	ClientCertMatchHost = 2 // -z: and the supervisor matches its name to the remote host
)

// HandshakeDone reports the negotiated parameters; Block is the
// connection's SSL_* variables as an encoded reply block.
type HandshakeDone struct {
	Protocol, Cipher string
	Block            []byte
}

// SessionFailed says why the worker ends the session; it exits with Code.
type SessionFailed struct {
	Code   uint8
	Reason string
}

// ProgramExited tells the worker that session Seq's program has been
// reaped.
type ProgramExited struct{ Seq uint32 }

// WorkerReady says the worker is confined and waits for a Session, and
// which sandbox layers it got beyond its jail: the seccomp allow-list,
// and the Landlock ABI version it enforces (0: none).
type WorkerReady struct {
	Seccomp  bool
	Landlock uint8
}

// Session hands an idle worker one connection. Its descriptors ride
// along in the order of the SessionFd* constants.
type Session struct{ Seq uint32 }

// SessionTaken says the worker holds session Seq's descriptors: until
// then the supervisor may give the session to another worker, should
// this one die.
type SessionTaken struct{ Seq uint32 }

// KeyHolderLost says the worker's channel to the key holder hung up
// while it needed a signature: the key holder was restarted.
type KeyHolderLost struct{}

// KeyChannel hands a worker a channel to the new key holder (one fd),
// good for one signature.
type KeyChannel struct{}

// ClientVerdict is the supervisor's answer, under -n with -z, to a
// HandshakeDone: whether the client's certificate names the remote host.
// The worker waits for it before it answers the program's command or
// relays a byte; OK false ends the session with status 110.
type ClientVerdict struct {
	Seq uint32
	OK  bool
}

// SessionEnd closes session Seq with the status the session ends with:
// 0, or the code of the SessionFailed sent before it.
type SessionEnd struct {
	Seq  uint32
	Code uint8
}

// SignRequest asks the key holder to sign Digest (for Ed25519, Hash is 0
// and Digest is the whole message) with key Key.
type SignRequest struct {
	Key    uint16
	Hash   crypto.Hash
	PSS    bool // RSA-PSS with salt length equal to the hash length
	Digest []byte
}

// Signature answers a SignRequest.
type Signature struct{ Sig []byte }

// SignRefused answers a SignRequest the key holder will not serve.
type SignRefused struct{ Reason string }

// SealTicket asks the key holder to seal a TLS session state (crypto/tls
// SessionState.Bytes) into a session ticket.
type SealTicket struct{ State []byte }

// Ticket answers SealTicket.
type Ticket struct{ Ticket []byte }

// OpenTicket asks the key holder to open a ticket a client presented.
type OpenTicket struct{ Ticket []byte }

// TicketState answers OpenTicket: the session state, or empty when the
// ticket does not open (another server's, an old key's, or forged): the
// handshake is then a full one.
type TicketState struct{ State []byte }

// Keys hands the key holder its key files (as many fds as Count), the
// passphrase for encrypted ones, and who to become once they are read.
// With Tickets, one more fd follows the key files: TICKETKEYFILE.
type Keys struct {
	Count      uint16
	Passphrase []byte
	UID, GID   uint32
	Root       string
	MaxFiles   uint32
	Tickets    bool
}

// KeysLoaded lists the public keys, PKIX DER, in the order of the files.
type KeysLoaded struct{ Public [][]byte }

// KeysFailed says why the key holder could not load its keys.
type KeysFailed struct{ Reason string }

// NewWorker hands the key holder one worker's channel (one fd) for the
// worker's life, the number ID that Grant names it by, how many
// signatures that worker may ask for before a Grant, and how long the key
// holder waits for a Grant the worker asks beyond that.
type NewWorker struct {
	ID       uint32
	Signs    uint16
	WaitMsec uint32
}

// Grant lets worker ID make Signs more signatures: the supervisor sends
// one when a worker it reuses goes back to idle, before it can be given
// the next session, so a worker signs once per session it is given.
type Grant struct {
	ID    uint32
	Signs uint16
}

func (*WorkerConfig) Type() MsgType  { return MsgWorkerConfig }
func (*HandshakeDone) Type() MsgType { return MsgHandshakeDone }
func (*SessionFailed) Type() MsgType { return MsgSessionFailed }
func (*ProgramExited) Type() MsgType { return MsgProgramExited }
func (*WorkerReady) Type() MsgType   { return MsgWorkerReady }
func (*Session) Type() MsgType       { return MsgSession }
func (*SessionEnd) Type() MsgType    { return MsgSessionEnd }
func (*SessionTaken) Type() MsgType  { return MsgSessionTaken }
func (*KeyHolderLost) Type() MsgType { return MsgKeyHolderLost }
func (*KeyChannel) Type() MsgType    { return MsgKeyChannel }
func (*ClientVerdict) Type() MsgType { return MsgClientVerdict }
func (*SignRequest) Type() MsgType   { return MsgSignRequest }
func (*Signature) Type() MsgType     { return MsgSignature }
func (*SignRefused) Type() MsgType   { return MsgSignRefused }
func (*SealTicket) Type() MsgType    { return MsgSealTicket }
func (*Ticket) Type() MsgType        { return MsgTicket }
func (*OpenTicket) Type() MsgType    { return MsgOpenTicket }
func (*TicketState) Type() MsgType   { return MsgTicketState }
func (*Keys) Type() MsgType          { return MsgKeys }
func (*KeysLoaded) Type() MsgType    { return MsgKeysLoaded }
func (*KeysFailed) Type() MsgType    { return MsgKeysFailed }
func (*NewWorker) Type() MsgType     { return MsgNewWorker }
func (*Grant) Type() MsgType         { return MsgGrant }

// newMessage is the closed list of message types.
func newMessage(t MsgType) (Message, error) {
	switch t {
	case MsgWorkerConfig:
		return new(WorkerConfig), nil
	case MsgHandshakeDone:
		return new(HandshakeDone), nil
	case MsgSessionFailed:
		return new(SessionFailed), nil
	case MsgProgramExited:
		return new(ProgramExited), nil
	case MsgWorkerReady:
		return new(WorkerReady), nil
	case MsgSession:
		return new(Session), nil
	case MsgSessionEnd:
		return new(SessionEnd), nil
	case MsgSessionTaken:
		return new(SessionTaken), nil
	case MsgKeyHolderLost:
		return new(KeyHolderLost), nil
	case MsgKeyChannel:
		return new(KeyChannel), nil
	case MsgClientVerdict:
		return new(ClientVerdict), nil
	case MsgSignRequest:
		return new(SignRequest), nil
	case MsgSignature:
		return new(Signature), nil
	case MsgSignRefused:
		return new(SignRefused), nil
	case MsgSealTicket:
		return new(SealTicket), nil
	case MsgTicket:
		return new(Ticket), nil
	case MsgOpenTicket:
		return new(OpenTicket), nil
	case MsgTicketState:
		return new(TicketState), nil
	case MsgKeys:
		return new(Keys), nil
	case MsgKeysLoaded:
		return new(KeysLoaded), nil
	case MsgKeysFailed:
		return new(KeysFailed), nil
	case MsgNewWorker:
		return new(NewWorker), nil
	case MsgGrant:
		return new(Grant), nil
	case MsgClientConfig:
		return new(ClientConfig), nil
	case MsgClientReady:
		return new(ClientReady), nil
	case MsgHandlerSession:
		return new(HandlerSession), nil
	case MsgHandlerEnd:
		return new(HandlerEnd), nil
	case MsgHandlerAbort:
		return new(HandlerAbort), nil
	}
	return nil, fmt.Errorf("unknown message type %d", t)
}

// Files says how many descriptors must ride along with m.
func Files(m Message) int {
	switch m := m.(type) {
	case *Keys:
		if m.Tickets {
			return int(m.Count) + 1
		}
		return int(m.Count)
	case *NewWorker, *KeyChannel:
		return 1
	case *Session:
		return SessionFiles
	case *HandlerSession:
		return handlerSessionFiles(m)
	case *ClientConfig:
		if m.HasKey() {
			return 1
		}
	}
	return 0
}

// Encode returns m as one datagram: its type byte, then its fields.
func Encode(m Message) []byte {
	e := &encoder{b: []byte{byte(m.Type())}}
	m.encode(e)
	return e.b
}

// Decode parses one datagram strictly.
func Decode(p []byte) (Message, error) {
	if len(p) == 0 {
		return nil, errShort
	}
	if len(p) > MaxMsg {
		return nil, fmt.Errorf("message of %d bytes exceeds %d", len(p), MaxMsg)
	}
	m, err := newMessage(MsgType(p[0]))
	if err != nil {
		return nil, err
	}
	d := &decoder{b: p[1:]}
	m.decode(d)
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("message type %d: %w", p[0], err)
	}
	return m, nil
}
