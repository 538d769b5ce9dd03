package supervisor

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStampSeesEveryChange: the poll's summary of the files changes when
// a symlink is switched to another file, when a file is rewritten in
// place with as many bytes and the same modification time, and when a
// file goes; it stays the same when nothing changed.
func TestStampSeesEveryChange(t *testing.T) {
	dir := t.TempDir()
	a, b, link := filepath.Join(dir, "a.pem"), filepath.Join(dir, "b.pem"), filepath.Join(dir, "cert.pem")
	write := func(p, data string) {
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(a, "first")
	write(b, "other")
	if err := os.Symlink("a.pem", link); err != nil {
		t.Fatal(err)
	}
	files := []string{link}
	before := stampOf(files, nil)
	if again := stampOf(files, nil); again != before {
		t.Fatal("the stamp changed with nothing changed")
	}
	tmp := link + ".new"
	os.Symlink("b.pem", tmp)
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	swapped := stampOf(files, nil)
	if swapped == before {
		t.Error("a symlink switched to another file left the stamp as it was")
	}
	st, _ := os.Stat(b)
	write(b, "OTHER")
	os.Chtimes(b, time.Time{}, st.ModTime())
	rewritten := stampOf(files, nil)
	if rewritten == swapped {
		t.Error("a rewrite with the same size and time left the stamp as it was")
	}
	os.Remove(b)
	if stampOf(files, nil) == rewritten {
		t.Error("a file gone left the stamp as it was")
	}

	// A key file: its content is not read, its replacement by rename is
	// seen all the same.
	key := filepath.Join(dir, "key.pem")
	write(key, "key one")
	secret := map[string]bool{key: true}
	one := stampOf([]string{key}, secret)
	write(key+".new", "key two")
	os.Rename(key+".new", key)
	if stampOf([]string{key}, secret) == one {
		t.Error("a key file replaced by rename left the stamp as it was")
	}
}
