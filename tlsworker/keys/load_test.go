package keys

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestLoadKeyFromFIFO reads KEYFILE from a named pipe, which has no size
// to stat.
func TestLoadKeyFromFIFO(t *testing.T) {
	dir := makeKey(t, keyFormats[12]) // p256 pkcs8 aes128
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	written := make(chan error, 1)
	go writeFile(fifo, readTestFile(t, dir, "key.pem"), written)
	s, err := LoadKey(fifo, []byte("secret"))
	if err != nil {
		t.Fatalf("LoadKey from a FIFO: %v", err)
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	checkSigns(t, s, leafOf(t, dir, "cert.pem"))
}

// writeFile opens name, which blocks for a FIFO until a reader comes,
// and writes b.
func writeFile(name string, b []byte, done chan<- error) {
	done <- os.WriteFile(name, b, 0o600)
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(big, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, MaxFileSize+1); err != nil {
		t.Fatal(err)
	}
	// LoadChain reads both files before it parses either.
	small := filepath.Join(dir, "small.pem")
	if err := os.WriteFile(small, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for name, tt := range map[string]struct{ got, want error }{
		"key too big":     {second(LoadKey(big, nil)), ErrTooLarge},
		"cert too big":    {second(LoadChain(big, "")), ErrTooLarge},
		"chain too big":   {second(LoadChain(small, big)), ErrTooLarge},
		"missing key":     {second(LoadKey(missing, nil)), os.ErrNotExist},
		"missing cert":    {second(LoadChain(missing, "")), os.ErrNotExist},
		"key a directory": {second(LoadKey(dir, nil)), syscall.EISDIR},
	} {
		if !errors.Is(tt.got, tt.want) {
			t.Errorf("%s: got %v, want %v", name, tt.got, tt.want)
		}
	}
	_, err := LoadKey(missing, nil)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing key: error %v does not name the file", err)
	}
}

func second[T any](_ T, err error) error { return err }
