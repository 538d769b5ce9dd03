// Command mkman writes the man pages of the manuals in docs/ ("make man"):
//
//	go run ./internal/manpage/mkman -o bin/man docs/sslserver.md ...
//
// Each page goes to DIR/manN/name.N, as its first line says, and the
// alias pages (the scripts) to theirs. Exit codes: 0 done, 100 usage,
// 111 a manual that cannot be read, rendered or written.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/ucspi-tls/sslserver/internal/manpage"
)

func main() {
	if len(os.Args) < 4 || os.Args[1] != "-o" {
		fmt.Fprintln(os.Stderr, "mkman: usage: mkman -o dir manual.md ...")
		os.Exit(100)
	}
	if err := writeAll(os.Args[2], os.Args[3:]); err != nil {
		fmt.Fprintf(os.Stderr, "mkman: fatal: %v\n", err)
		os.Exit(111)
	}
}

func writeAll(dir string, manuals []string) error {
	for _, m := range manuals {
		md, err := os.ReadFile(m)
		if err != nil {
			return err
		}
		page, roff, err := manpage.Render(md, manpage.Pages)
		if err != nil {
			return fmt.Errorf("%s: %w", m, err)
		}
		if err := write(dir, page, roff); err != nil {
			return err
		}
	}
	for alias, to := range manpage.Aliases {
		if err := write(dir, alias, manpage.Alias(to)); err != nil {
			return err
		}
	}
	return nil
}

func write(dir string, p manpage.Page, data []byte) error {
	path := filepath.Join(dir, p.File())
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
