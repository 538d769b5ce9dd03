package keys

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
)

// Errors callers may want to tell apart with errors.Is.
var (
	ErrMalformedPEM     = errors.New("malformed or truncated PEM block")
	ErrNoCertificate    = errors.New("no certificate")
	ErrNoKey            = errors.New("no private key")
	ErrNeedPassphrase   = errors.New("private key is encrypted and no passphrase was given (sslserver -3)")
	ErrWrongPassphrase  = errors.New("wrong passphrase")
	ErrUnsupported      = errors.New("unsupported")
	ErrMismatch         = errors.New("private key does not match certificate")
	ErrPassphraseLength = errors.New("passphrase too long")
	ErrTooLarge         = errors.New("file too large")
)

var pemBegin = []byte("-----BEGIN ")

// pemBlocks decodes every PEM block in data. Text around blocks is allowed,
// as OpenSSL allows it (openssl pkcs12 writes "Bag Attributes" lines), but
// every "-----BEGIN " line must start a well-formed block. pem.Decode alone
// skips a BEGIN line that has no END and returns the next block, so a
// certificate cut off at a line end in the middle of a chain would
// silently vanish.
func pemBlocks(data []byte) ([]*pem.Block, error) {
	var blocks []*pem.Block
	for {
		start := nextBegin(data)
		if start < 0 {
			return blocks, nil
		}
		data = data[start:]
		b, rest := pem.Decode(data)
		if b == nil || countBegin(data[:len(data)-len(rest)]) != 1 {
			return blocks, fmt.Errorf("%w at %q", ErrMalformedPEM, firstLine(data))
		}
		blocks = append(blocks, b)
		data = rest
	}
}

// nextBegin is the offset of the next "-----BEGIN " at the start of a line,
// where pem.Decode looks for one, or -1.
func nextBegin(data []byte) int {
	if bytes.HasPrefix(data, pemBegin) {
		return 0
	}
	i := bytes.Index(data, append([]byte("\n"), pemBegin...))
	if i < 0 {
		return -1
	}
	return i + 1
}

// countBegin counts the "-----BEGIN " lines in data.
func countBegin(data []byte) int {
	n := 0
	for i := nextBegin(data); i >= 0; i = nextBegin(data) {
		n++
		data = data[i+len(pemBegin):]
	}
	return n
}

// firstLine is the start of data up to its first newline, shortened for
// an error message.
func firstLine(data []byte) []byte {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		data = data[:i]
	}
	const limit = 64
	if len(data) > limit {
		data = data[:limit]
	}
	return bytes.TrimRight(data, "\r")
}
