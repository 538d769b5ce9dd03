package protocol

import "fmt"

// sslclient's TLS process: sslclient re-executes itself with this argv[0].
const ClientWorkerArgv0 = "sslclient-tlsworker"

// The fd map of sslclient's TLS process. sslclient builds its file list
// in exactly this order; 0 and 1 are /dev/null, 2 is sslclient's stderr.
const (
	ClientWorkerFdParent      = 3 // SOCK_SEQPACKET: Msg* between sslclient and its TLS process
	ClientWorkerFdConn        = 4 // the TCP connection with the server
	ClientWorkerFdCtl         = 5 // -y: SOCK_STREAM, the TLS process's end of $SSLCTLFD; else /dev/null
	ClientWorkerFdToProgram   = 6 // pipe, write end: plaintext from the server
	ClientWorkerFdFromProgram = 7 // pipe, read end: plaintext for the server
)

// The fds of the program that sslclient runs, as tcpclient has them: it
// reads what the server sent on 6 and writes on 7. Under -y they are the
// TCP connection itself, and $SSLCTLFD, $SSLREADFD and $SSLWRITEFD are
// ProgramFdCtl, ProgramFdRead and ProgramFdWrite, as under sslserver -n.
const (
	ClientProgramFdRead  = 6
	ClientProgramFdWrite = 7
)

// Messages between sslclient and its TLS process, which also uses
// MsgHandshakeDone, MsgSessionFailed and MsgProgramExited in the same
// sense as a server's worker.
const (
	MsgClientConfig MsgType = 30 // sslclient -> TLS process, exactly once, first; the key file rides along
	MsgClientReady  MsgType = 31 // TLS process -> sslclient, once: confined, key and trust anchors loaded
)

// ClientConfig tells sslclient's TLS process who to become and how to
// talk to the server. With Jail (sslclient runs as root) it confines
// itself fully into Root as UID/GID; without, it applies what an
// unprivileged process can, and UID, GID and Root are zero.
type ClientConfig struct {
	Jail          bool
	UID, GID      uint32
	Root          string
	Delayed       bool // -y: wait for a control command
	HandshakeMsec uint32
	IdleMsec      uint32
	ServerName    string   // SNI; "" sends none (the host is an IP address)
	VerifyHost    string   // name or IP address the certificate must be for; "" with -N
	Enforce       bool     // refuse a certificate that fails verification; false with -X
	CAFile, CADir string   // trust anchors; both "" means the system's
	Chain         [][]byte // the client certificate chain, DER, leaf first; none when empty
	Passphrase    []byte   // for an encrypted client key
	CipherSuites  []uint16 // TLS 1.2 suites; empty: Go's defaults
}

// ClientReady says the TLS process is confined and ready to talk to the
// server.
type ClientReady struct{}

func (*ClientConfig) Type() MsgType { return MsgClientConfig }
func (*ClientReady) Type() MsgType  { return MsgClientReady }

// HasKey reports whether the client key's file must ride along: it does
// exactly when there is a client certificate.
func (m *ClientConfig) HasKey() bool { return len(m.Chain) > 0 }

func (m *ClientConfig) encode(e *encoder) {
	e.bool(m.Jail)
	e.u32(m.UID)
	e.u32(m.GID)
	e.bytes([]byte(m.Root))
	e.bool(m.Delayed)
	e.u32(m.HandshakeMsec)
	e.u32(m.IdleMsec)
	e.bytes([]byte(m.ServerName))
	e.bytes([]byte(m.VerifyHost))
	e.bool(m.Enforce)
	e.bytes([]byte(m.CAFile))
	e.bytes([]byte(m.CADir))
	e.u16(uint16(len(m.Chain)))
	for _, der := range m.Chain {
		e.bytes(der)
	}
	e.bytes(m.Passphrase)
	e.u16(uint16(len(m.CipherSuites)))
	for _, s := range m.CipherSuites {
		e.u16(s)
	}
}

func (m *ClientConfig) decode(d *decoder) {
	m.Jail = d.bool()
	m.UID = d.u32()
	m.GID = d.u32()
	m.Root = d.string(maxPath)
	m.Delayed = d.bool()
	m.HandshakeMsec = d.u32()
	m.IdleMsec = d.u32()
	m.ServerName = d.string(maxName)
	m.VerifyHost = d.string(maxName)
	m.Enforce = d.bool()
	m.CAFile = d.string(maxPath)
	m.CADir = d.string(maxPath)
	n := count(d, maxChainLen, "chain certificates")
	for i := 0; i < n && d.err == nil; i++ {
		m.Chain = append(m.Chain, d.bytes(maxCertDER))
	}
	m.Passphrase = d.bytes(maxPassphrase)
	n = count(d, maxSuites, "cipher suites")
	for i := 0; i < n && d.err == nil; i++ {
		m.CipherSuites = append(m.CipherSuites, d.u16())
	}
	if d.err == nil {
		d.err = m.check()
	}
}

// check refuses a configuration that would leave the TLS process less
// confined than intended, or that no sslclient sends.
func (m *ClientConfig) check() error {
	switch {
	case m.Jail:
		if err := checkJail(m.UID, m.GID, m.Root); err != nil {
			return err
		}
	case m.UID != 0 || m.GID != 0 || m.Root != "":
		return fmt.Errorf("ids %d:%d and root %q without a jail", m.UID, m.GID, m.Root)
	}
	if m.HandshakeMsec == 0 {
		return fmt.Errorf("no handshake deadline")
	}
	for _, p := range []string{m.CAFile, m.CADir} {
		if p != "" && p[0] != '/' {
			return fmt.Errorf("trust anchor path %q is not absolute", p)
		}
	}
	if len(m.Passphrase) > 0 && !m.HasKey() {
		return fmt.Errorf("passphrase without a client certificate")
	}
	return nil
}

func (*ClientReady) encode(*encoder) {}
func (*ClientReady) decode(*decoder) {}
