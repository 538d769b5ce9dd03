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
	missing := filepath.Join(dir, "missing.pem")
	for name, err := range map[string]error{
		"key too big":     second(LoadKey(big, nil)),
		"chain too big":   second(LoadChain(certFile(t), big)),
		"missing key":     second(LoadKey(missing, nil)),
		"missing cert":    second(LoadChain(missing, "")),
		"key a directory": second(LoadKey(dir, nil)),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	_, err := LoadKey(missing, nil)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing key: error %v does not name the file", err)
	}
}

// certFile is a good certificate file, so LoadChain reaches the chain
// file.
func certFile(t *testing.T) string {
	t.Helper()
	return filepath.Join(makeCA(t), "leaf.pem")
}

func second[T any](_ T, err error) error { return err }
