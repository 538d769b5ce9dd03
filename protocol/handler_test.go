package protocol

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestHandlerSessionRefusesMalformedEnvironments(t *testing.T) {
	for name, env := range map[string]string{
		"no final NUL":   "A=1\x00",
		"no equals sign": "A\x00\x00",
		"bad name":       "1A=x\x00\x00",
		"empty entry":    "A=1\x00\x00\x00",
		"nothing":        "",
	} {
		p := msg(MsgHandlerSession).u32(1).u8(0).str(env).done()
		if m, err := Decode(p); err == nil {
			t.Errorf("%s: %q decoded as %+v", name, env, m)
		}
	}
	big := msg(MsgHandlerSession).u32(1).u8(0).str("A=" + strings.Repeat("x", maxEnvBlock) + "\x00\x00").done()
	if _, err := Decode(big); err == nil {
		t.Error("an environment beyond maxEnvBlock was accepted")
	}
	if _, err := Decode(msg(MsgHandlerSession).u32(1).u8(2).str("\x00\x00").done()); err == nil {
		t.Error("a Delayed field of 2 was accepted")
	}
}

func TestEnvBlockRoundTrip(t *testing.T) {
	in := []string{"PATH=/bin", "PROTO=SSL", "EMPTY=", "SSL_CIPHER=TLS_AES_128_GCM_SHA256", "EQ=a=b"}
	block, err := EnvBlock(append(in, "bad name=x", "noequals"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(Encode(&HandlerSession{Seq: 3, Env: block}))
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.(*HandlerSession).Environ()
	if err != nil || !reflect.DeepEqual(got, in) {
		t.Fatalf("Environ() = %q, %v; want %q", got, err, in)
	}
}

// TestHandlerSessionCarriesItsFiles sends a session over a real channel:
// three descriptors under -N, four under -n, and a count that does not
// match the message is refused by the receiver.
func TestHandlerSessionCarriesItsFiles(t *testing.T) {
	a, b := channels(t)
	env, _ := EnvBlock([]string{"PROTO=SSL"})
	for _, delayed := range []bool{false, true} {
		m := &HandlerSession{Seq: 5, Delayed: delayed, Env: env}
		files := devNulls(t, Files(m))
		if err := a.Send(m, files...); err != nil {
			t.Fatal(err)
		}
		got, rfiles, err := b.Recv()
		if err != nil || !reflect.DeepEqual(got, m) || len(rfiles) != Files(m) {
			t.Fatalf("delayed=%v: got %+v with %d files, %v", delayed, got, len(rfiles), err)
		}
		closeAll(rfiles)
	}
	if err := a.Send(&HandlerSession{Seq: 6, Env: env}, devNulls(t, 4)...); err == nil {
		t.Error("Send took four files for a session under -N")
	}
}

func devNulls(t *testing.T, n int) []*os.File {
	var out []*os.File
	for i := 0; i < n; i++ {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		out = append(out, f)
	}
	return out
}
