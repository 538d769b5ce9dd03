package keys

import (
	"crypto"
	"fmt"
	"io"
	"os"
)

// MaxFileSize bounds what LoadChain and LoadKey read from one file. A
// certificate file with a large CA bundle is a few hundred kilobytes.
const MaxFileSize = 4 << 20

// LoadChain reads CERTFILE and, unless chainFile is empty, CERTCHAINFILE,
// and parses them as ParseChain does.
func LoadChain(certFile, chainFile string) (Chain, error) {
	certPEM, err := readFile(certFile)
	if err != nil {
		return nil, err
	}
	var chainPEM []byte
	if chainFile != "" {
		if chainPEM, err = readFile(chainFile); err != nil {
			return nil, err
		}
	}
	c, err := ParseChain(certPEM, chainPEM)
	if err != nil {
		return nil, fmt.Errorf("%w (CERTFILE %q, CERTCHAINFILE %q)", err, certFile, chainFile)
	}
	return c, nil
}

// LoadKey reads keyFile, parses it as ParseKey does, and wipes what it
// read. The caller still owns, and should Wipe, passphrase.
func LoadKey(keyFile string, passphrase []byte) (crypto.Signer, error) {
	keyPEM, err := readFile(keyFile)
	defer Wipe(keyPEM)
	if err != nil {
		return nil, err
	}
	s, err := ParseKey(keyPEM, passphrase)
	if err != nil {
		return nil, fmt.Errorf("%w (key file %q)", err, keyFile)
	}
	return s, nil
}

// readFile reads at most MaxFileSize bytes into one buffer that is never
// grown, so no stale copy of a key is left behind to be wiped.
func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	defer f.Close()
	size, err := bufferSize(f)
	if err != nil {
		return nil, fmt.Errorf("keys: %q: %w", name, err)
	}
	// One byte more than expected, to notice a file that is larger.
	buf := make([]byte, size+1)
	n, err := io.ReadFull(f, buf)
	switch {
	case n == len(buf):
		Wipe(buf)
		return nil, fmt.Errorf("keys: %q: %w: more than %d bytes, or it grew while being read", name, ErrTooLarge, size)
	case err != nil && err != io.ErrUnexpectedEOF && err != io.EOF:
		Wipe(buf)
		return nil, fmt.Errorf("keys: reading %q: %w", name, err)
	}
	return buf[:n], nil
}

// bufferSize is how many bytes to expect from f: a regular file's size,
// else (a pipe, /dev/fd/N) the limit.
func bufferSize(f *os.File) (int, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return MaxFileSize, nil
	}
	if fi.Size() > MaxFileSize {
		return 0, fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, fi.Size(), MaxFileSize)
	}
	return int(fi.Size()), nil
}
