package protocol

import (
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseCommandAcceptsOnlyYAndCapitalY(t *testing.T) {
	for b := 0; b < 256; b++ {
		c, err := ParseCommand(byte(b))
		switch byte(b) {
		case 'y', 'Y':
			if err != nil || byte(c) != byte(b) {
				t.Errorf("ParseCommand(%q) = %q, %v; want the command back", byte(b), byte(c), err)
			}
		default:
			if !errors.Is(err, ErrUnknownCommand) {
				t.Errorf("ParseCommand(%q) error = %v, want ErrUnknownCommand", byte(b), err)
			}
		}
	}
}

func TestParseCommandQuotesTheByte(t *testing.T) {
	_, err := ParseCommand('\n')
	if err == nil || !strings.Contains(err.Error(), `"\n"`) {
		t.Fatalf("error %v does not quote the refused byte", err)
	}
}

func TestEncodeBlockEmptyIsTwoNULs(t *testing.T) {
	for _, vars := range [][]Var{nil, {}} {
		b, err := EncodeBlock(vars)
		if err != nil || !bytes.Equal(b, []byte{0, 0}) {
			t.Errorf("EncodeBlock(%#v) = %q, %v; want \"\\x00\\x00\"", vars, b, err)
		}
	}
}

func TestEncodeBlockLayout(t *testing.T) {
	b, err := EncodeBlock([]Var{{"SSL_PROTOCOL", "TLSv1.3"}, {"EMPTY", ""}, {"EQ", "a=b"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "SSL_PROTOCOL=TLSv1.3\x00EMPTY=\x00EQ=a=b\x00\x00"
	if string(b) != want {
		t.Fatalf("EncodeBlock = %q, want %q", b, want)
	}
}

func TestBlockRoundTrip(t *testing.T) {
	cases := [][]Var{
		nil,
		{{"A", "1"}},
		{{"SSL_PROTOCOL", "TLSv1.2"}, {"SSL_CIPHER", "ECDHE-ECDSA-AES256-GCM-SHA384"}},
		{{"_x9", ""}, {"V", "=="}, {"PEM", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}},
		{{"BIN", "\x01\xff\t\r\n"}},
	}
	for _, vars := range cases {
		b, err := EncodeBlock(vars)
		if err != nil {
			t.Fatalf("EncodeBlock(%q): %v", vars, err)
		}
		got, err := DecodeBlock(b)
		if err != nil {
			t.Fatalf("DecodeBlock(%q): %v", b, err)
		}
		if !reflect.DeepEqual(got, vars) {
			t.Errorf("round trip of %q gave %q", vars, got)
		}
	}
}

func TestEncodeBlockRefusesBadVars(t *testing.T) {
	cases := map[string]Var{
		"empty name":     {"", "x"},
		"digit first":    {"1A", "x"},
		"equals in name": {"A=B", "x"},
		"NUL in name":    {"A\x00", "x"},
		"dash in name":   {"SSL-X", "x"},
		"NUL in value":   {"A", "x\x00y"},
		"space in name":  {"A B", "x"},
	}
	for what, v := range cases {
		if b, err := EncodeBlock([]Var{{"OK", "1"}, v}); err == nil {
			t.Errorf("%s: EncodeBlock accepted %q as %q", what, v, b)
		}
	}
}

func TestEncodeBlockRefusesOversize(t *testing.T) {
	big := strings.Repeat("x", MaxBlock)
	if _, err := EncodeBlock([]Var{{"A", big}}); err == nil {
		t.Fatal("EncodeBlock accepted a block larger than MaxBlock")
	}
	// The largest block that fits: "A=" value "\0\0".
	fits := strings.Repeat("x", MaxBlock-4)
	if _, err := EncodeBlock([]Var{{"A", fits}}); err != nil {
		t.Fatalf("EncodeBlock refused a block of exactly MaxBlock bytes: %v", err)
	}
}

func TestDecodeBlockRefusals(t *testing.T) {
	cases := map[string]string{
		"empty input":           "",
		"one NUL":               "\x00",
		"no terminator":         "A=1",
		"single terminator":     "A=1\x00",
		"entry without equals":  "A\x00\x00",
		"empty name":            "=1\x00\x00",
		"bad name":              "1A=1\x00\x00",
		"empty entry in middle": "A=1\x00\x00B=2\x00\x00",
		"trailing byte":         "A=1\x00\x00x",
		"trailing NUL":          "A=1\x00\x00\x00",
		"empty block plus NUL":  "\x00\x00\x00",
		"empty block plus byte": "\x00\x00A",
		"empty then entry":      "\x00A=1\x00\x00",
	}
	for what, in := range cases {
		if vars, err := DecodeBlock([]byte(in)); err == nil {
			t.Errorf("%s: DecodeBlock(%q) = %q, want an error", what, in, vars)
		}
	}
}

func TestDecodeBlockRefusesOversize(t *testing.T) {
	p := append([]byte("A="), bytes.Repeat([]byte("x"), MaxBlock)...)
	p = append(p, 0, 0)
	if _, err := DecodeBlock(p); err == nil {
		t.Fatal("DecodeBlock accepted a block larger than MaxBlock")
	}
}

func TestValidName(t *testing.T) {
	good := []string{"A", "_", "a1", "SSL_CLIENT_S_DN_Email", "_1"}
	bad := []string{"", "1", "9A", "A-B", "A.B", "A=B", "Ä", "A\x00"}
	for _, s := range good {
		if !ValidName(s) {
			t.Errorf("ValidName(%q) = false", s)
		}
	}
	for _, s := range bad {
		if ValidName(s) {
			t.Errorf("ValidName(%q) = true", s)
		}
	}
}

// streamPair returns both ends of a real AF_UNIX stream socketpair.
func streamPair(t *testing.T) (a, b *os.File) {
	t.Helper()
	a, b, err := StreamPair("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestReadBlockOverSocket(t *testing.T) {
	a, b := streamPair(t)
	want := []Var{{"SSL_PROTOCOL", "TLSv1.3"}, {"SSL_CIPHER", "TLS_AES_128_GCM_SHA256"}}
	block, _ := EncodeBlock(want)
	go writeAndClose(a, block)
	got, err := ReadBlock(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadBlock = %q, want %q", got, want)
	}
}

func TestReadBlockByteByByte(t *testing.T) {
	a, b := streamPair(t)
	want := []Var{{"A", "1"}, {"B", ""}, {"SSL_SESSION_ID", "ABCDEF"}}
	block, _ := EncodeBlock(want)
	go writeSlowly(a, block)
	got, err := ReadBlock(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadBlock = %q, want %q", got, want)
	}
}

func TestReadBlockEmptyBlock(t *testing.T) {
	a, b := streamPair(t)
	go writeSlowly(a, []byte{0, 0})
	got, err := ReadBlock(b)
	if err != nil || len(got) != 0 {
		t.Fatalf("ReadBlock of \\0\\0 = %q, %v", got, err)
	}
}

func TestReadBlockEOFMeansTLSFailed(t *testing.T) {
	for _, partial := range []string{"", "A=1", "A=1\x00", "\x00"} {
		a, b := streamPair(t)
		go writeAndClose(a, []byte(partial))
		_, err := ReadBlock(b)
		if err == nil || !strings.Contains(err.Error(), "TLS failed") {
			t.Errorf("ReadBlock after %q then EOF: error %v, want one saying TLS failed", partial, err)
		}
	}
}

func TestReadBlockMalformedIsAnError(t *testing.T) {
	a, b := streamPair(t)
	go writeAndClose(a, []byte("NOEQUALS\x00\x00"))
	if vars, err := ReadBlock(b); err == nil {
		t.Fatalf("ReadBlock accepted a malformed block as %q", vars)
	}
}

func TestReadBlockIsBounded(t *testing.T) {
	a, b := streamPair(t)
	go writeAndClose(a, append([]byte("A="), bytes.Repeat([]byte("x"), MaxBlock+100)...))
	done := make(chan error, 1)
	go readBlockInto(b, done)
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("ReadBlock accepted an endless block")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadBlock did not give up on an oversize block")
	}
}

func readBlockInto(r io.Reader, done chan<- error) {
	_, err := ReadBlock(r)
	done <- err
}

// TestReadBlockLeavesFollowingBytes: ReadBlock reads the block and not
// one byte more, so whatever follows on the control fd (which must be
// nothing but EOF) is still there for the caller to see.
func TestReadBlockLeavesFollowingBytes(t *testing.T) {
	a, b := streamPair(t)
	block, _ := EncodeBlock([]Var{{"A", "1"}})
	go writeAndClose(a, append(block, "after"...))
	if _, err := ReadBlock(b); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(b)
	if err != nil || string(rest) != "after" {
		t.Fatalf("after ReadBlock the stream holds %q (%v), want %q", rest, err, "after")
	}
}

func writeAndClose(f *os.File, p []byte) {
	f.Write(p)
	f.Close()
}

func writeSlowly(f *os.File, p []byte) {
	for i := range p {
		f.Write(p[i : i+1])
		time.Sleep(time.Millisecond)
	}
	f.Close()
}

// fakePeer plays the TLS worker's side of the control fd: it reads the
// command, writes reply, and closes.
type fakePeer struct {
	reply []byte
	got   chan []byte
}

func (p *fakePeer) serve(f *os.File) {
	defer f.Close()
	var b [1]byte
	n, _ := f.Read(b[:])
	p.got <- b[:n]
	if len(p.reply) > 0 {
		f.Write(p.reply)
	}
}

func startPeer(t *testing.T, reply []byte) (app *os.File, peer *fakePeer) {
	t.Helper()
	a, b := streamPair(t)
	peer = &fakePeer{reply: reply, got: make(chan []byte, 1)}
	go peer.serve(a)
	return b, peer
}

func TestStartTLSLowerYReadsNothingAndWaitsForClose(t *testing.T) {
	app, peer := startPeer(t, nil)
	vars, err := StartTLS(app, false)
	if err != nil || vars != nil {
		t.Fatalf("StartTLS(y) = %q, %v", vars, err)
	}
	if got := <-peer.got; string(got) != "y" {
		t.Fatalf("peer read %q, want \"y\"", got)
	}
}

func TestStartTLSCapitalYReadsTheBlock(t *testing.T) {
	want := []Var{{"SSL_PROTOCOL", "TLSv1.3"}, {"SSL_CIPHER", "TLS_AES_256_GCM_SHA384"}}
	block, _ := EncodeBlock(want)
	app, peer := startPeer(t, block)
	vars, err := StartTLS(app, true)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(vars, want) {
		t.Fatalf("StartTLS(Y) = %q, want %q", vars, want)
	}
	if got := <-peer.got; string(got) != "Y" {
		t.Fatalf("peer read %q, want \"Y\"", got)
	}
}

func TestStartTLSCapitalYEmptyBlock(t *testing.T) {
	app, _ := startPeer(t, []byte{0, 0})
	vars, err := StartTLS(app, true)
	if err != nil || len(vars) != 0 {
		t.Fatalf("StartTLS(Y) with \\0\\0 = %q, %v", vars, err)
	}
}

func TestStartTLSFailureIsEOFBeforeBlockEnd(t *testing.T) {
	for _, reply := range []string{"", "SSL_PROTOCOL=TLSv1.3\x00"} {
		app, _ := startPeer(t, []byte(reply))
		if _, err := StartTLS(app, true); err == nil || !strings.Contains(err.Error(), "TLS failed") {
			t.Errorf("StartTLS(Y) with reply %q then close: %v, want TLS failed", reply, err)
		}
	}
}

func TestStartTLSLowerYRefusesABlock(t *testing.T) {
	app, _ := startPeer(t, []byte("A=1\x00\x00"))
	if _, err := StartTLS(app, false); err == nil {
		t.Fatal("StartTLS(y) accepted bytes on the control fd")
	}
}

// TestStartTLSRefusesBytesAfterTheBlock: after the block the control fd
// must close; a peer that keeps writing is not a UCSPI-TLS server.
func TestStartTLSRefusesBytesAfterTheBlock(t *testing.T) {
	app, _ := startPeer(t, []byte("A=1\x00\x00junk"))
	if vars, err := StartTLS(app, true); err == nil {
		t.Fatalf("StartTLS(Y) accepted trailing bytes after the block, vars %q", vars)
	}
}

func TestStartTLSWriteFailure(t *testing.T) {
	a, b := streamPair(t)
	a.Close()
	b.Close()
	if _, err := StartTLS(b, true); err == nil {
		t.Fatal("StartTLS on a closed control fd succeeded")
	}
}
