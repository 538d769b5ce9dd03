package keys

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadPassphrase(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // "" with wantErr
		wantErr  error  // nil: no error; errAny: any error
		left     string // what the reader still holds afterwards
	}{
		{"NUL-terminated", "secret\x00", "secret", nil, ""},
		{"stops at the NUL", "secret\x00more\x00", "secret", nil, "more\x00"},
		{"EOF after data", "secret", "secret", nil, ""},
		{"newline kept", "secret\n", "secret\n", nil, ""},
		{"empty passphrase", "\x00", "", nil, ""},
		{"longest", strings.Repeat("a", MaxPassphrase) + "\x00", strings.Repeat("a", MaxPassphrase), nil, ""},
		{"longest at EOF", strings.Repeat("a", MaxPassphrase), strings.Repeat("a", MaxPassphrase), nil, ""},
		{"too long", strings.Repeat("a", MaxPassphrase+1) + "\x00", "", ErrPassphraseLength, "\x00"},
		{"nothing", "", "", errAny, ""},
	}
	for _, tt := range tests {
		r := strings.NewReader(tt.in)
		got, err := ReadPassphrase(iotest.OneByteReader(r))
		switch {
		case tt.wantErr == nil && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantErr == nil && (got == nil || string(got) != tt.want):
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		case tt.wantErr != nil && (err == nil || got != nil):
			t.Errorf("%s: got %q, %v; want an error", tt.name, got, err)
		case tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.wantErr)
		}
		if left, _ := io.ReadAll(r); string(left) != tt.left {
			t.Errorf("%s: left %q unread, want %q", tt.name, left, tt.left)
		}
	}
}

var errAny = errors.New("any error")

func TestReadPassphraseReaderErrors(t *testing.T) {
	boom := errors.New("boom")
	if _, err := ReadPassphrase(iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Errorf("read error: got %v", err)
	}
	halfway := io.MultiReader(strings.NewReader("sec"), iotest.ErrReader(boom))
	if p, err := ReadPassphrase(halfway); !errors.Is(err, boom) || p != nil {
		t.Errorf("read error after data: got %q, %v", p, err)
	}
	if _, err := ReadPassphrase(stuckReader{}); !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("reader without progress: got %v", err)
	}
}

// stuckReader answers every Read with (0, nil).
type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }

// TestReadPassphrasePipe reads the passphrase from a pipe as sslserver -3
// reads it from fd 3, with the writer still open after the NUL.
func TestReadPassphrasePipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, err := w.Write([]byte("pipe secret\x00tail")); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPassphrase(r)
	if err != nil || string(got) != "pipe secret" {
		t.Fatalf("got %q, %v", got, err)
	}
	w.Close()
	if tail, _ := io.ReadAll(r); string(tail) != "tail" {
		t.Errorf("consumed past the NUL: left %q", tail)
	}
}

func TestWipe(t *testing.T) {
	b := []byte("secret passphrase")
	Wipe(b[:6])
	if !bytes.Equal(b, append(make([]byte, 6), " passphrase"...)) {
		t.Errorf("after Wipe: %q", b)
	}
	Wipe(nil) // must not panic
}
