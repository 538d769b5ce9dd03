package protocol

import (
	"bytes"
	"errors"
	"testing"
)

// The decoders read bytes from processes we do not trust (a TLS worker
// may be under an attacker's control). Each must never panic, and must
// be canonical: whatever it accepts, encoding gives back byte for byte,
// so there is exactly one way to say each thing. Seeds are in
// testdata/fuzz/<FuzzName>/.

func FuzzDecodeBlock(f *testing.F) {
	for _, vars := range [][]Var{nil, {{"A", "1"}}, {{"SSL_PROTOCOL", "TLSv1.3"}, {"X", ""}}} {
		b, _ := EncodeBlock(vars)
		f.Add(b)
	}
	f.Add([]byte("A=1\x00"))
	f.Add([]byte("\x00\x00\x00"))
	f.Fuzz(fuzzDecodeBlock)
}

func fuzzDecodeBlock(t *testing.T, p []byte) {
	vars, err := DecodeBlock(p)
	if err != nil {
		return
	}
	again, err := EncodeBlock(vars)
	if err != nil {
		t.Fatalf("DecodeBlock(%q) gave %q, which EncodeBlock refuses: %v", p, vars, err)
	}
	if !bytes.Equal(again, p) {
		t.Fatalf("DecodeBlock(%q) then EncodeBlock gave %q", p, again)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(Encode(m))
	}
	f.Add([]byte{byte(MsgWorkerConfig), 0, 0, 0, 1})
	f.Fuzz(fuzzDecodeMessage)
}

func fuzzDecodeMessage(t *testing.T, p []byte) {
	m, err := Decode(p)
	if err != nil {
		return
	}
	if again := Encode(m); !bytes.Equal(again, p) {
		t.Fatalf("Decode(%q) = %+v, which encodes as %q", p, m, again)
	}
	if sr, ok := m.(*SignRequest); ok {
		if err := sr.Check(); err != nil {
			t.Fatalf("Decode accepted a SignRequest that Check refuses: %v", err)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, b := range []byte{'y', 'Y', 'n', 0, 0xff} {
		f.Add(b)
	}
	f.Fuzz(fuzzParseCommand)
}

func fuzzParseCommand(t *testing.T, b byte) {
	c, err := ParseCommand(b)
	valid := b == 'y' || b == 'Y'
	switch {
	case valid && (err != nil || byte(c) != b):
		t.Fatalf("ParseCommand(%q) = %q, %v", b, byte(c), err)
	case !valid && !errors.Is(err, ErrUnknownCommand):
		t.Fatalf("ParseCommand(%q) accepted it as %q (err %v)", b, byte(c), err)
	}
}
