package protocol

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
)

// sampleMessages is one well-formed message of every type; the test
// below checks that the list covers the closed list of types.
func sampleMessages() []Message {
	return []Message{
		&WorkerConfig{
			UID: 65534, GID: 65533, Root: "/var/empty", Delayed: true, SSLEnv: true, Sessions: 3,
			HandshakeMsec: 26000, IdleMsec: 3600000,
			Certs: []Cert{
				{Name: "", Chain: [][]byte{[]byte("leaf"), []byte("intermediate")}, Key: 0},
				{Name: "mx.example.org", Chain: [][]byte{[]byte("leaf2")}, Key: 1},
			},
			CipherSuites: []uint16{0xc02b, 0xc02f},
			Banner:       []byte("220 ready\r\n"),
			ClientCert:   ClientCertMatchHost, ClientCAs: [][]byte{[]byte("ca one"), []byte("ca two")},
			AdvertiseCAs: [][]byte{[]byte("ca one")}, VerifyDepth: 3,
		},
		&HandshakeDone{Protocol: "TLSv1.3", Cipher: "TLS_AES_128_GCM_SHA256", Block: []byte("SSL_PROTOCOL=TLSv1.3\x00\x00")},
		&SessionFailed{Code: ExitTemp, Reason: "unable to accept TLS: EOF"},
		&ProgramExited{Seq: 9},
		&WorkerReady{Seccomp: true, Landlock: 7},
		&Session{Seq: 0xfffffffe},
		&SessionEnd{Seq: 9, Code: ExitUsage},
		&SessionTaken{Seq: 9},
		&KeyHolderLost{},
		&KeyChannel{},
		&ClientVerdict{Seq: 9, OK: true},
		&ClientConfig{Jail: true, UID: 1000, GID: 1000, Root: "/var/empty", Delayed: true,
			HandshakeMsec: 26000, IdleMsec: 3600000, ServerName: "mx.example.org", VerifyHost: "mx.example.org",
			Enforce: true, CAFile: "/etc/ssl/certs/ca.pem", CADir: "/etc/ssl/certs",
			Chain: [][]byte{[]byte("client leaf")}, Passphrase: []byte("pw"), CipherSuites: []uint16{0xc02c}},
		&ClientReady{},
		&SignRequest{Key: 3, Hash: crypto.SHA256, PSS: true, Digest: bytes.Repeat([]byte{7}, 32)},
		&Signature{Sig: []byte("signature bytes")},
		&SignRefused{Reason: "no such key"},
		&SealTicket{State: []byte("session state")},
		&Ticket{Ticket: []byte("sealed")},
		&OpenTicket{Ticket: []byte("sealed")},
		&TicketState{State: []byte("session state")},
		&Keys{Count: 2, Passphrase: []byte("secret"), UID: 101, GID: 102, Root: "/run/empty", MaxFiles: 144, Tickets: true},
		&KeysLoaded{Public: [][]byte{[]byte("spki one"), []byte("spki two")}},
		&KeysFailed{Reason: "bad passphrase"},
		&NewWorker{ID: 0xfffffff0, Signs: 1, WaitMsec: 3626000},
		&Grant{ID: 7, Signs: 1},
		&HandlerSession{Seq: 12, Delayed: true, Env: []byte("PROTO=SSL\x00SSL_PROTOCOL=TLSv1.3\x00\x00")},
		&HandlerEnd{Seq: 12, Code: 111},
		&HandlerAbort{Seq: 12},
	}
}

func TestMessageRoundTripEveryType(t *testing.T) {
	seen := map[MsgType]bool{}
	for _, m := range sampleMessages() {
		seen[m.Type()] = true
		p := Encode(m)
		if p[0] != byte(m.Type()) {
			t.Errorf("%T: first byte %d, want type %d", m, p[0], m.Type())
		}
		got, err := Decode(p)
		if err != nil {
			t.Errorf("%T: Decode(Encode) = %v", m, err)
			continue
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%T: round trip gave %+v, want %+v", m, got, m)
		}
		if again := Encode(got); !bytes.Equal(again, p) {
			t.Errorf("%T: re-encoding differs", m)
		}
	}
	for typ := 0; typ < 256; typ++ {
		if _, err := newMessage(MsgType(typ)); err == nil && !seen[MsgType(typ)] {
			t.Errorf("message type %d has no sample in this test", typ)
		}
	}
}

func TestDecodeRefusesUnknownTypes(t *testing.T) {
	known := map[MsgType]bool{}
	for _, m := range sampleMessages() {
		known[m.Type()] = true
	}
	for typ := 0; typ < 256; typ++ {
		if known[MsgType(typ)] {
			continue
		}
		if m, err := Decode([]byte{byte(typ)}); err == nil {
			t.Errorf("Decode accepted unknown type %d as %T", typ, m)
		}
	}
}

func TestDecodeRefusesEmptyAndOversize(t *testing.T) {
	if _, err := Decode(nil); err == nil {
		t.Error("Decode accepted an empty datagram")
	}
	p := make([]byte, MaxMsg+1)
	p[0] = byte(MsgProgramExited)
	if _, err := Decode(p); err == nil {
		t.Error("Decode accepted a datagram larger than MaxMsg")
	}
}

func TestDecodeRefusesTrailingBytes(t *testing.T) {
	for _, m := range sampleMessages() {
		p := append(Encode(m), 0)
		if _, err := Decode(p); err == nil || !strings.Contains(err.Error(), "trailing") {
			t.Errorf("%T with a trailing byte: %v, want a trailing-bytes error", m, err)
		}
	}
}

// TestDecodeRefusesEveryTruncation cuts every sample at every length.
func TestDecodeRefusesEveryTruncation(t *testing.T) {
	for _, m := range sampleMessages() {
		p := Encode(m)
		for n := 1; n < len(p); n++ {
			if got, err := Decode(p[:n]); err == nil {
				t.Errorf("%T cut to %d of %d bytes decoded as %+v", m, n, len(p), got)
			}
		}
	}
}

// raw builds a message field by field, to make the malformed ones
// Encode cannot produce.
type raw struct{ b []byte }

func msg(t MsgType) *raw               { return &raw{b: []byte{byte(t)}} }
func (r *raw) u8(v uint8) *raw         { r.b = append(r.b, v); return r }
func (r *raw) u16(v uint16) *raw       { r.b = binary.BigEndian.AppendUint16(r.b, v); return r }
func (r *raw) u32(v uint32) *raw       { r.b = binary.BigEndian.AppendUint32(r.b, v); return r }
func (r *raw) str(s string) *raw       { return r.u32(uint32(len(s))).bytes([]byte(s)) }
func (r *raw) bytes(p []byte) *raw     { r.b = append(r.b, p...); return r }
func (r *raw) lenOnly(n uint32) *raw   { return r.u32(n) }
func (r *raw) strN(n int, c byte) *raw { return r.str(strings.Repeat(string(c), n)) }
func (r *raw) done() []byte            { return r.b }
func (r *raw) then(f func(*raw)) *raw  { f(r); return r }
func (r *raw) cert(name string, chain ...string) *raw {
	r.str(name).u16(0).u16(uint16(len(chain)))
	for _, c := range chain {
		r.str(c)
	}
	return r
}

// wcFields is a WorkerConfig written field by field, so a test can
// put any bytes in any field.
type wcFields struct {
	uid, gid        uint32
	root            string
	delayed, sslEnv uint8
	sessions        uint16
	handshake, idle uint32
	certs, suites   func(*raw)
	banner          func(*raw)
	client          func(*raw)
}

func goodWC() wcFields {
	return wcFields{uid: 1, gid: 2, root: "/x", sslEnv: 1, sessions: 1, handshake: 1000, idle: 2000,
		certs: oneCert, suites: func(r *raw) { r.u16(0) }, banner: func(r *raw) { r.str("") },
		client: func(r *raw) { r.u8(0).u16(0).u16(0).u16(0) }}
}

func (w wcFields) done() []byte {
	r := msg(MsgWorkerConfig).u32(w.uid).u32(w.gid).str(w.root).u8(w.delayed).u8(w.sslEnv).u16(w.sessions)
	return r.u32(w.handshake).u32(w.idle).then(w.certs).then(w.suites).then(w.banner).then(w.client).done()
}

// wc is the reference raw WorkerConfig changed by f.
func wc(f func(w *wcFields)) []byte {
	w := goodWC()
	f(&w)
	return w.done()
}

// workerConfig writes a WorkerConfig with the given jail and certs part.
func workerConfig(uid, gid uint32, root string, certs func(*raw)) *raw {
	return &raw{b: wc(func(w *wcFields) { w.uid, w.gid, w.root, w.certs = uid, gid, root, certs })}
}

func oneCert(r *raw) { r.u16(1).cert("", "der") }

func TestDecodeRawWorkerConfigIsAccepted(t *testing.T) {
	m, err := Decode(goodWC().done())
	if err != nil {
		t.Fatalf("the reference raw WorkerConfig is refused: %v", err)
	}
	want := &WorkerConfig{UID: 1, GID: 2, Root: "/x", SSLEnv: true, Sessions: 1, HandshakeMsec: 1000, IdleMsec: 2000,
		Certs: []Cert{{Chain: [][]byte{[]byte("der")}}}, Banner: []byte{}}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("decoded %+v, want %+v", m, want)
	}
}

func TestDecodeRefusesMalformed(t *testing.T) {
	cases := map[string][]byte{
		"worker uid 0":              workerConfig(0, 2, "/x", oneCert).done(),
		"worker gid 0":              workerConfig(1, 0, "/x", oneCert).done(),
		"worker root /":             workerConfig(1, 2, "/", oneCert).done(),
		"worker root relative":      workerConfig(1, 2, "var/empty", oneCert).done(),
		"worker root empty":         workerConfig(1, 2, "", oneCert).done(),
		"worker no certificate":     workerConfig(1, 2, "/x", func(r *raw) { r.u16(0) }).done(),
		"worker empty chain":        workerConfig(1, 2, "/x", func(r *raw) { r.u16(1).cert("") }).done(),
		"worker 65 certificates":    workerConfig(1, 2, "/x", func(r *raw) { r.u16(65) }).done(),
		"worker 17 chain certs":     workerConfig(1, 2, "/x", func(r *raw) { r.u16(1).str("").u16(0).u16(17) }).done(),
		"worker name too long":      workerConfig(1, 2, "/x", func(r *raw) { r.u16(1).cert(strings.Repeat("n", 256), "der") }).done(),
		"worker cert too long":      workerConfig(1, 2, "/x", func(r *raw) { r.u16(1).cert("", strings.Repeat("d", 32<<10+1)) }).done(),
		"worker root too long":      workerConfig(1, 2, "/"+strings.Repeat("r", 4096), oneCert).done(),
		"worker boolean 2":          wc(func(w *wcFields) { w.delayed = 2 }),
		"worker boolean 255":        wc(func(w *wcFields) { w.sslEnv = 255 }),
		"worker 65 suites":          wc(func(w *wcFields) { w.suites = func(r *raw) { r.u16(65).bytes(make([]byte, 130)) } }),
		"worker banner too long":    wc(func(w *wcFields) { w.banner = func(r *raw) { r.strN(4097, 'b') } }),
		"worker for no sessions":    wc(func(w *wcFields) { w.sessions = 0 }),
		"worker client cert mode 3": wc(func(w *wcFields) { w.client = func(r *raw) { r.u8(3).u16(1).str("ca").u16(0).u16(1) } }),
		"worker -m without CAs":     wc(func(w *wcFields) { w.client = func(r *raw) { r.u8(1).u16(0).u16(0).u16(1) } }),
		"worker CAs under -Z":       wc(func(w *wcFields) { w.client = func(r *raw) { r.u8(0).u16(1).str("ca").u16(0).u16(1) } }),
		"worker 513 client CAs":     wc(func(w *wcFields) { w.client = func(r *raw) { r.u8(1).u16(513) } }),
		"worker huge length":        msg(MsgWorkerConfig).u32(1).u32(2).lenOnly(0xffffffff).done(),
		"length beyond the data":    msg(MsgSignRefused).lenOnly(10).bytes([]byte("short")).done(),
		"done block malformed":      msg(MsgHandshakeDone).str("TLSv1.3").str("X").str("A=1\x00").done(),
		"done block missing":        msg(MsgHandshakeDone).str("TLSv1.3").str("X").str("").done(),
		"done block too long":       msg(MsgHandshakeDone).str("TLSv1.3").str("X").lenOnly(MaxBlock + 1).done(),
		"done protocol too long":    msg(MsgHandshakeDone).strN(256, 'p').str("X").str("\x00\x00").done(),
		"failed with code 0":        msg(MsgSessionFailed).u8(0).str("why").done(),
		"failed reason too long":    msg(MsgSessionFailed).u8(111).strN(1025, 'r').done(),
		"exited with a body":        msg(MsgProgramExited).u8(0).done(),
		"sign unknown hash":         msg(MsgSignRequest).u16(0).u16(uint16(crypto.MD5)).u8(0).str(strings.Repeat("d", 16)).done(),
		"sign SHA-1":                msg(MsgSignRequest).u16(0).u16(uint16(crypto.SHA1)).u8(0).str(strings.Repeat("d", 20)).done(),
		"sign hash 0xffff":          msg(MsgSignRequest).u16(0).u16(0xffff).u8(0).str("d").done(),
		"sign SHA-256 short":        msg(MsgSignRequest).u16(0).u16(uint16(crypto.SHA256)).u8(0).str(strings.Repeat("d", 31)).done(),
		"sign SHA-256 long":         msg(MsgSignRequest).u16(0).u16(uint16(crypto.SHA256)).u8(0).str(strings.Repeat("d", 33)).done(),
		"sign SHA-384 as SHA-512":   msg(MsgSignRequest).u16(0).u16(uint16(crypto.SHA384)).u8(1).str(strings.Repeat("d", 64)).done(),
		"sign SHA-512 empty":        msg(MsgSignRequest).u16(0).u16(uint16(crypto.SHA512)).u8(0).str("").done(),
		"sign Ed25519 empty":        msg(MsgSignRequest).u16(0).u16(0).u8(0).str("").done(),
		"sign Ed25519 with PSS":     msg(MsgSignRequest).u16(0).u16(0).u8(1).str("message").done(),
		"sign Ed25519 too long":     msg(MsgSignRequest).u16(0).u16(0).u8(0).strN(MaxSignInput+1, 'm').done(),
		"sign PSS boolean 2":        msg(MsgSignRequest).u16(0).u16(uint16(crypto.SHA256)).u8(2).str(strings.Repeat("d", 32)).done(),
		"signature empty":           msg(MsgSignature).str("").done(),
		"signature too long":        msg(MsgSignature).strN(1025, 's').done(),
		"refused reason too long":   msg(MsgSignRefused).strN(1025, 'r').done(),
		"keys count 0":              msg(MsgKeys).u16(0).str("").u32(1).u32(1).str("/x").u32(10).u8(0).done(),
		"keys count 65":             msg(MsgKeys).u16(65).str("").u32(1).u32(1).str("/x").u32(10).u8(0).done(),
		"keys uid 0":                msg(MsgKeys).u16(1).str("").u32(0).u32(1).str("/x").u32(10).u8(0).done(),
		"keys gid 0":                msg(MsgKeys).u16(1).str("").u32(1).u32(0).str("/x").u32(10).u8(0).done(),
		"keys root /":               msg(MsgKeys).u16(1).str("").u32(1).u32(1).str("/").u32(10).u8(0).done(),
		"keys root relative":        msg(MsgKeys).u16(1).str("").u32(1).u32(1).str("x").u32(10).u8(0).done(),
		"keys tickets boolean 2":    msg(MsgKeys).u16(1).str("").u32(1).u32(1).str("/x").u32(10).u8(2).done(),
		"seal empty state":          msg(MsgSealTicket).str("").done(),
		"open empty ticket":         msg(MsgOpenTicket).str("").done(),
		"ticket too long":           msg(MsgTicket).strN(MaxTicket+1, 't').done(),
		"keys passphrase too long":  msg(MsgKeys).u16(1).strN(1025, 'p').u32(1).u32(1).str("/x").u32(10).u8(0).done(),
		"loaded 65 keys":            msg(MsgKeysLoaded).u16(65).done(),
		"loaded key too long":       msg(MsgKeysLoaded).u16(1).strN(32<<10+1, 'k').done(),
		"loaded fewer than counted": msg(MsgKeysLoaded).u16(2).str("one").done(),
		"failed reason huge":        msg(MsgKeysFailed).strN(1025, 'r').done(),
		"new worker no signs":       msg(MsgNewWorker).u32(1).u16(0).u32(1000).done(),
		"new worker short":          msg(MsgNewWorker).u16(1).u32(1000).done(),
		"grant of none":             msg(MsgGrant).u32(1).u16(0).done(),
		"grant short":               msg(MsgGrant).u32(1).done(),
		"ready with no body":        msg(MsgWorkerReady).done(),
		"ready trailing byte":       msg(MsgWorkerReady).u8(1).u8(7).u8(0).done(),
		"ready seccomp is 2":        msg(MsgWorkerReady).u8(2).u8(7).done(),
		"session short":             msg(MsgSession).u16(1).done(),
		"session end short":         msg(MsgSessionEnd).u32(1).done(),
		"session taken short":       msg(MsgSessionTaken).u16(1).done(),
		"program exited short":      msg(MsgProgramExited).u16(1).done(),
		"verdict short":             msg(MsgClientVerdict).u32(9).done(),
		"verdict not a boolean":     msg(MsgClientVerdict).u32(9).u8(2).done(),
		"verdict trailing":          msg(MsgClientVerdict).u32(9).u8(1).u8(0).done(),
		"client ready with a body":  msg(MsgClientReady).u8(1).done(),
		"client jail uid 0":         cc(func(c *ClientConfig) { c.UID = 0 }),
		"client jail root /":        cc(func(c *ClientConfig) { c.Root = "/" }),
		"client jail relative root": cc(func(c *ClientConfig) { c.Root = "var/empty" }),
		"client ids without jail":   cc(func(c *ClientConfig) { c.Jail = false; c.Root = "" }),
		"client root without jail":  cc(func(c *ClientConfig) { c.Jail, c.UID, c.GID = false, 0, 0 }),
		"client no deadline":        cc(func(c *ClientConfig) { c.HandshakeMsec = 0 }),
		"client relative CAFile":    cc(func(c *ClientConfig) { c.CAFile = "ca.pem" }),
		"client relative CADir":     cc(func(c *ClientConfig) { c.CADir = "certs" }),
		"client passphrase, no key": cc(func(c *ClientConfig) { c.Chain = nil }),
		"client 17 chain certs":     cc(func(c *ClientConfig) { c.Chain = make([][]byte, 17) }),
		"client SNI too long":       cc(func(c *ClientConfig) { c.ServerName = strings.Repeat("n", 256) }),
		"client 65 suites":          cc(func(c *ClientConfig) { c.CipherSuites = make([]uint16, 65) }),
		"client jail boolean 2":     ccBytes(func(p []byte) { p[1] = 2 }),
	}
	for what, p := range cases {
		if m, err := Decode(p); err == nil {
			t.Errorf("%s: Decode accepted %+v", what, m)
		}
	}
}

// cc encodes the sample ClientConfig changed by f, which Encode does
// without checking.
func cc(f func(c *ClientConfig)) []byte {
	for _, m := range sampleMessages() {
		if c, ok := m.(*ClientConfig); ok {
			f(c)
			return Encode(c)
		}
	}
	panic("no ClientConfig sample")
}

// ccBytes changes the encoded sample ClientConfig's bytes.
func ccBytes(f func(p []byte)) []byte {
	p := cc(func(*ClientConfig) {})
	f(p)
	return p
}

func TestDecodeAcceptsBoundaryValues(t *testing.T) {
	sixteen := make([]string, 16)
	for i := range sixteen {
		sixteen[i] = "der"
	}
	cases := map[string][]byte{
		"sign SHA-384":          msg(MsgSignRequest).u16(9).u16(uint16(crypto.SHA384)).u8(1).str(strings.Repeat("d", 48)).done(),
		"sign SHA-512":          msg(MsgSignRequest).u16(9).u16(uint16(crypto.SHA512)).u8(0).str(strings.Repeat("d", 64)).done(),
		"sign Ed25519 max":      msg(MsgSignRequest).u16(0).u16(0).u8(0).strN(MaxSignInput, 'm').done(),
		"signature max":         msg(MsgSignature).strN(1024, 's').done(),
		"keys count 64":         msg(MsgKeys).u16(64).str("").u32(1).u32(1).str("/x").u32(10).u8(0).done(),
		"reason max":            msg(MsgSessionFailed).u8(100).strN(1024, 'r').done(),
		"banner max":            wc(func(w *wcFields) { w.banner = func(r *raw) { r.strN(4096, 'b') } }),
		"worker 64 suites":      wc(func(w *wcFields) { w.suites = func(r *raw) { r.u16(64).bytes(make([]byte, 128)) } }),
		"name max":              workerConfig(1, 2, "/x", func(r *raw) { r.u16(1).cert(strings.Repeat("n", 255), "der") }).done(),
		"chain of 16":           workerConfig(1, 2, "/x", func(r *raw) { r.u16(1).cert("", sixteen...) }).done(),
		"loaded no keys":        msg(MsgKeysLoaded).u16(0).done(),
		"refused empty reason":  msg(MsgSignRefused).str("").done(),
		"done empty block":      msg(MsgHandshakeDone).str("").str("").str("\x00\x00").done(),
		"new worker max values": msg(MsgNewWorker).u32(0xffffffff).u16(0xffff).u32(0xffffffff).done(),
		"grant max values":      msg(MsgGrant).u32(0xffffffff).u16(0xffff).done(),
		"client without jail":   cc(func(c *ClientConfig) { c.Jail, c.UID, c.GID, c.Root = false, 0, 0, "" }),
		"client no certificate": cc(func(c *ClientConfig) { c.Chain, c.Passphrase = nil, nil }),
		"client system anchors": cc(func(c *ClientConfig) { c.CAFile, c.CADir = "", "" }),
		"worker sessions max":   wc(func(w *wcFields) { w.sessions = 0xffff }),
		"ready no layers":       msg(MsgWorkerReady).u8(0).u8(0).done(),
	}
	for what, p := range cases {
		if _, err := Decode(p); err != nil {
			t.Errorf("%s: Decode refused it: %v", what, err)
		}
	}
}

func TestSignRequestCheck(t *testing.T) {
	good := []SignRequest{
		{Hash: crypto.SHA256, Digest: make([]byte, 32)},
		{Hash: crypto.SHA256, PSS: true, Digest: make([]byte, 32)},
		{Hash: crypto.SHA384, Digest: make([]byte, 48)},
		{Hash: crypto.SHA512, Digest: make([]byte, 64)},
		{Hash: 0, Digest: []byte("whole message")},
	}
	for _, r := range good {
		if err := r.Check(); err != nil {
			t.Errorf("Check(%v, %d bytes) = %v", r.Hash, len(r.Digest), err)
		}
	}
	bad := []SignRequest{
		{Hash: crypto.SHA1, Digest: make([]byte, 20)},
		{Hash: crypto.SHA224, Digest: make([]byte, 28)},
		{Hash: crypto.MD5SHA1, Digest: make([]byte, 36)},
		{Hash: crypto.SHA256, Digest: make([]byte, 48)},
		{Hash: 0},
		{Hash: 0, PSS: true, Digest: []byte("m")},
	}
	for _, r := range bad {
		if err := r.Check(); err == nil {
			t.Errorf("Check accepted hash %v with %d bytes (PSS %v)", r.Hash, len(r.Digest), r.PSS)
		}
	}
}

func TestFilesPerMessage(t *testing.T) {
	cases := map[Message]int{
		&Keys{Count: 3}:                     3,
		&NewWorker{}:                        1,
		&Grant{}:                            0,
		&WorkerConfig{}:                     0,
		&ProgramExited{}:                    0,
		&ClientVerdict{}:                    0,
		&SignRequest{}:                      0,
		&HandshakeDone{}:                    0,
		&KeysLoaded{}:                       0,
		&Keys{Count: 64}:                    64,
		&Session{}:                          SessionFiles,
		&ClientConfig{Chain: [][]byte{{1}}}: 1,
		&ClientConfig{}:                     0,
		&WorkerReady{}:                      0,
		&SessionEnd{}:                       0,
		&ClientReady{}:                      0,
		&SessionFailed{}:                    0,
		&KeysFailed{}:                       0,
		&Signature{}:                        0,
		&SignRefused{}:                      0,
	}
	for m, want := range cases {
		if got := Files(m); got != want {
			t.Errorf("Files(%T) = %d, want %d", m, got, want)
		}
	}
}
