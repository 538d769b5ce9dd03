package keys

import (
	"errors"
	"fmt"
	"io"
)

// MaxPassphrase is the longest passphrase ReadPassphrase accepts, the NUL
// not counted.
const MaxPassphrase = 1024

// ReadPassphrase reads a passphrase as sslserver -3 reads it from fd 3:
// bytes up to a NUL, which is not part of it. It reads one byte at a time
// so nothing after the NUL is consumed. EOF before any NUL ends the
// passphrase too, so `printf secret` works as the writer, but only after
// at least one byte: an empty, closed fd 3 is an error, not an empty
// passphrase (an empty one is a lone NUL). No newline is stripped: a
// passphrase written with echo ends in "\n".
func ReadPassphrase(r io.Reader) ([]byte, error) {
	buf := make([]byte, MaxPassphrase+1)
	for n := 0; n < len(buf); n++ {
		err := readByte(r, buf[n:n+1])
		switch {
		case err == nil && buf[n] == 0:
			return buf[:n:n], nil
		case errors.Is(err, io.EOF) && n > 0:
			return buf[:n:n], nil
		case errors.Is(err, io.EOF):
			return nil, errors.New("keys: no passphrase: end of input before any byte")
		case err != nil:
			Wipe(buf)
			return nil, fmt.Errorf("keys: reading passphrase: %w", err)
		}
	}
	Wipe(buf)
	return nil, fmt.Errorf("keys: %w: no NUL within %d bytes", ErrPassphraseLength, MaxPassphrase+1)
}

// readByte fills b (one byte) from r. io.ReadFull would turn a reader's
// (0, nil) answers into a busy loop; after a few of them it gives up.
func readByte(r io.Reader, b []byte) error {
	for range 100 {
		n, err := r.Read(b)
		if n == 1 {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// Wipe overwrites b with zeros: use it on the PEM buffers and the
// passphrase once the key is parsed.
func Wipe(b []byte) {
	clear(b)
}
