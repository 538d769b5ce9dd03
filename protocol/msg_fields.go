package protocol

import (
	"crypto"
	"fmt"
)

func (m *WorkerConfig) encode(e *encoder) {
	e.u32(m.UID)
	e.u32(m.GID)
	e.bytes([]byte(m.Root))
	e.bool(m.Delayed)
	e.bool(m.SSLEnv)
	e.u16(m.Sessions)
	e.u32(m.HandshakeMsec)
	e.u32(m.IdleMsec)
	e.u16(uint16(len(m.Certs)))
	for _, c := range m.Certs {
		encodeCert(e, c)
	}
	e.u16(uint16(len(m.CipherSuites)))
	for _, s := range m.CipherSuites {
		e.u16(s)
	}
	e.bytes(m.Banner)
	e.u8(m.ClientCert)
	encodeDERs(e, m.ClientCAs)
	encodeDERs(e, m.AdvertiseCAs)
	e.u16(m.VerifyDepth)
}

func encodeDERs(e *encoder, ders [][]byte) {
	e.u16(uint16(len(ders)))
	for _, der := range ders {
		e.bytes(der)
	}
}

func decodeDERs(d *decoder, max int, what string) [][]byte {
	var ders [][]byte
	n := count(d, max, what)
	for i := 0; i < n && d.err == nil; i++ {
		ders = append(ders, d.bytes(maxCertDER))
	}
	return ders
}

func (m *WorkerConfig) decode(d *decoder) {
	m.UID = d.u32()
	m.GID = d.u32()
	m.Root = d.string(maxPath)
	m.Delayed = d.bool()
	m.SSLEnv = d.bool()
	m.Sessions = d.u16()
	m.HandshakeMsec = d.u32()
	m.IdleMsec = d.u32()
	n := count(d, maxCerts, "certificates")
	for i := 0; i < n && d.err == nil; i++ {
		m.Certs = append(m.Certs, decodeCert(d))
	}
	n = count(d, maxSuites, "cipher suites")
	for i := 0; i < n && d.err == nil; i++ {
		m.CipherSuites = append(m.CipherSuites, d.u16())
	}
	m.Banner = d.bytes(maxBanner)
	m.ClientCert = d.u8()
	m.ClientCAs = decodeDERs(d, maxClientCAs, "client CA certificates")
	m.AdvertiseCAs = decodeDERs(d, maxClientCAs, "advertised CA certificates")
	m.VerifyDepth = d.u16()
	m.validate(d)
}

func (m *WorkerConfig) validate(d *decoder) {
	if d.err != nil {
		return
	}
	d.err = checkJail(m.UID, m.GID, m.Root)
	switch {
	case d.err != nil:
	case len(m.Certs) == 0:
		d.err = fmt.Errorf("no certificate")
	case m.Sessions == 0:
		d.err = fmt.Errorf("a worker for no sessions")
	case m.ClientCert > ClientCertMatchHost:
		d.err = fmt.Errorf("client certificate mode %d", m.ClientCert)
	case m.ClientCert != ClientCertNone && len(m.ClientCAs) == 0:
		d.err = fmt.Errorf("client certificates required with no CA to verify them")
	case m.ClientCert == ClientCertNone && len(m.ClientCAs)+len(m.AdvertiseCAs) > 0:
		d.err = fmt.Errorf("client CAs without client certificates")
	}
}

func encodeCert(e *encoder, c Cert) {
	e.bytes([]byte(c.Name))
	e.u16(c.Key)
	e.u16(uint16(len(c.Chain)))
	for _, der := range c.Chain {
		e.bytes(der)
	}
}

func decodeCert(d *decoder) Cert {
	c := Cert{Name: d.string(maxName), Key: d.u16()}
	n := count(d, maxChainLen, "chain certificates")
	if d.err == nil && n == 0 {
		d.err = fmt.Errorf("empty certificate chain")
	}
	for i := 0; i < n && d.err == nil; i++ {
		c.Chain = append(c.Chain, d.bytes(maxCertDER))
	}
	return c
}

// count reads a u16 element count and bounds it.
func count(d *decoder, max int, what string) int {
	n := int(d.u16())
	if d.err == nil && n > max {
		d.err = fmt.Errorf("%d %s exceed %d", n, what, max)
		return 0
	}
	return n
}

func (m *HandshakeDone) encode(e *encoder) {
	e.bytes([]byte(m.Protocol))
	e.bytes([]byte(m.Cipher))
	e.bytes(m.Block)
}

func (m *HandshakeDone) decode(d *decoder) {
	m.Protocol = d.string(maxName)
	m.Cipher = d.string(maxName)
	m.Block = d.bytes(MaxBlock)
	if d.err == nil {
		if _, err := DecodeBlock(m.Block); err != nil {
			d.err = err
		}
	}
}

func (m *SessionFailed) encode(e *encoder) {
	e.u8(m.Code)
	e.bytes([]byte(m.Reason))
}

func (m *SessionFailed) decode(d *decoder) {
	m.Code = d.u8()
	m.Reason = d.string(maxReason)
	if d.err == nil && m.Code == 0 {
		d.err = fmt.Errorf("session failure with exit code 0")
	}
}

func (m *ProgramExited) encode(e *encoder) { e.u32(m.Seq) }
func (m *ProgramExited) decode(d *decoder) { m.Seq = d.u32() }

func (m *WorkerReady) encode(e *encoder) {
	e.bool(m.Seccomp)
	e.u8(m.Landlock)
}

func (m *WorkerReady) decode(d *decoder) {
	m.Seccomp = d.bool()
	m.Landlock = d.u8()
}

func (m *Session) encode(e *encoder) { e.u32(m.Seq) }
func (m *Session) decode(d *decoder) { m.Seq = d.u32() }

func (*KeyHolderLost) encode(*encoder) {}
func (*KeyHolderLost) decode(*decoder) {}

func (*KeyChannel) encode(*encoder) {}
func (*KeyChannel) decode(*decoder) {}

func (m *SessionTaken) encode(e *encoder) { e.u32(m.Seq) }
func (m *SessionTaken) decode(d *decoder) { m.Seq = d.u32() }

func (m *ClientVerdict) encode(e *encoder) {
	e.u32(m.Seq)
	e.bool(m.OK)
}

func (m *ClientVerdict) decode(d *decoder) {
	m.Seq = d.u32()
	m.OK = d.bool()
}

func (m *SessionEnd) encode(e *encoder) {
	e.u32(m.Seq)
	e.u8(m.Code)
}

func (m *SessionEnd) decode(d *decoder) {
	m.Seq = d.u32()
	m.Code = d.u8()
}

func (m *SignRequest) encode(e *encoder) {
	e.u16(m.Key)
	e.u16(uint16(m.Hash))
	e.bool(m.PSS)
	e.bytes(m.Digest)
}

func (m *SignRequest) decode(d *decoder) {
	m.Key = d.u16()
	m.Hash = crypto.Hash(d.u16())
	m.PSS = d.bool()
	m.Digest = d.bytes(MaxSignInput)
	if d.err == nil {
		d.err = m.Check()
	}
}

// SignHashes are the hashes a TLS 1.2 or 1.3 handshake signs with; 0 is
// Ed25519, which signs the message itself.
var SignHashes = map[crypto.Hash]bool{0: true, crypto.SHA256: true, crypto.SHA384: true, crypto.SHA512: true}

// Check refuses requests no handshake of ours would make.
func (m *SignRequest) Check() error {
	if !SignHashes[m.Hash] {
		return fmt.Errorf("sign request with hash %d", m.Hash)
	}
	if m.Hash == 0 {
		if m.PSS || len(m.Digest) == 0 {
			return fmt.Errorf("malformed Ed25519 sign request")
		}
		return nil
	}
	if len(m.Digest) != m.Hash.Size() {
		return fmt.Errorf("digest of %d bytes for %v", len(m.Digest), m.Hash)
	}
	return nil
}

func (m *Signature) encode(e *encoder) { e.bytes(m.Sig) }

func (m *Signature) decode(d *decoder) {
	m.Sig = d.bytes(maxSignature)
	if d.err == nil && len(m.Sig) == 0 {
		d.err = fmt.Errorf("empty signature")
	}
}

func (m *SignRefused) encode(e *encoder) { e.bytes([]byte(m.Reason)) }
func (m *SignRefused) decode(d *decoder) { m.Reason = d.string(maxReason) }

func (m *Keys) encode(e *encoder) {
	e.u16(m.Count)
	e.bytes(m.Passphrase)
	e.u32(m.UID)
	e.u32(m.GID)
	e.bytes([]byte(m.Root))
	e.u32(m.MaxFiles)
	e.bool(m.Tickets)
}

func (m *Keys) decode(d *decoder) {
	m.Count = d.u16()
	m.Passphrase = d.bytes(maxPassphrase)
	m.UID = d.u32()
	m.GID = d.u32()
	m.Root = d.string(maxPath)
	m.MaxFiles = d.u32()
	m.Tickets = d.bool()
	if d.err == nil && (m.Count == 0 || m.Count > MaxKeyFiles) {
		d.err = fmt.Errorf("%d key files, want 1 to %d", m.Count, MaxKeyFiles)
	}
	if d.err == nil {
		d.err = checkJail(m.UID, m.GID, m.Root)
	}
}

// checkJail refuses ids and roots that would leave a process unconfined.
func checkJail(uid, gid uint32, root string) error {
	switch {
	case uid == 0 || gid == 0:
		return fmt.Errorf("ids %d:%d: a confined process never runs as root", uid, gid)
	case len(root) == 0 || root[0] != '/' || root == "/":
		return fmt.Errorf("root %q is not an absolute path other than /", root)
	}
	return nil
}

func (m *KeysLoaded) encode(e *encoder) {
	e.u16(uint16(len(m.Public)))
	for _, p := range m.Public {
		e.bytes(p)
	}
}

func (m *KeysLoaded) decode(d *decoder) {
	n := count(d, MaxKeyFiles, "public keys")
	for i := 0; i < n && d.err == nil; i++ {
		m.Public = append(m.Public, d.bytes(maxCertDER))
	}
}

func (m *KeysFailed) encode(e *encoder) { e.bytes([]byte(m.Reason)) }
func (m *KeysFailed) decode(d *decoder) { m.Reason = d.string(maxReason) }

func (m *NewWorker) encode(e *encoder) {
	e.u32(m.ID)
	e.u16(m.Signs)
	e.u32(m.WaitMsec)
}

func (m *NewWorker) decode(d *decoder) {
	m.ID = d.u32()
	m.Signs = d.u16()
	m.WaitMsec = d.u32()
	if d.err == nil && m.Signs == 0 {
		d.err = fmt.Errorf("worker with no signatures to make")
	}
}

func (m *Grant) encode(e *encoder) {
	e.u32(m.ID)
	e.u16(m.Signs)
}

func (m *Grant) decode(d *decoder) {
	m.ID = d.u32()
	m.Signs = d.u16()
	if d.err == nil && m.Signs == 0 {
		d.err = fmt.Errorf("grant of no signatures")
	}
}

func (m *SealTicket) encode(e *encoder) { e.bytes(m.State) }
func (m *SealTicket) decode(d *decoder) { m.State = nonEmpty(d, "session state") }

func (m *Ticket) encode(e *encoder) { e.bytes(m.Ticket) }
func (m *Ticket) decode(d *decoder) { m.Ticket = nonEmpty(d, "ticket") }

func (m *OpenTicket) encode(e *encoder) { e.bytes(m.Ticket) }
func (m *OpenTicket) decode(d *decoder) { m.Ticket = nonEmpty(d, "ticket") }

func (m *TicketState) encode(e *encoder) { e.bytes(m.State) }
func (m *TicketState) decode(d *decoder) { m.State = d.bytes(MaxTicket) }

// nonEmpty reads bytes of at most MaxTicket that must not be empty.
func nonEmpty(d *decoder, what string) []byte {
	b := d.bytes(MaxTicket)
	if d.err == nil && len(b) == 0 {
		d.err = fmt.Errorf("empty %s", what)
	}
	return b
}
