// Command sslrules compiles tcprules source into the cdb that sslserver -x
// reads, with the interface of ucspi-tcp's tcprules:
//
//	sslrules rules.cdb rules.tmp < rules.txt
//
// It writes rules.tmp, syncs it and renames it over rules.cdb, so a server
// reading rules.cdb sees the old rules or the new ones, never a mix. On any
// error it removes rules.tmp and leaves rules.cdb alone. Exit codes: 0 done,
// 100 usage or a bad rule line, 111 a read, write or rename failure.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ucspi-tls/sslserver/acl"
	"github.com/ucspi-tls/sslserver/internal/getopt"
	"github.com/ucspi-tls/sslserver/protocol"
)

const progName = "sslrules"

// help is what -h and --help print.
const help = `usage: sslrules rules.cdb rules.tmp < rules.txt

Compile tcprules source on standard input into rules.cdb, the cdb that
sslserver -x and tcpserver -x read. The cdb is written to rules.tmp, synced
and renamed over rules.cdb; on any error rules.cdb is left as it was. The
manual: man 1 sslrules.

Options:
  -h, --help  print this help and exit 0
  --          end of options

No environment variable is read.

Exit status: 0 done, 100 usage or a bad rule line, 111 a read, write or
rename failure.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is the whole program; it returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, help)
		return protocol.ExitOK
	}
	cdbPath, tmpPath, ok := parseArgs(args)
	if !ok {
		getopt.PrintUsage(stderr, progName, "usage: sslrules rules.cdb rules.tmp < rules.txt")
		return protocol.ExitUsage
	}
	data, err := compile(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "%s: fatal: %v\n", progName, err)
		var perr *acl.ParseError
		if errors.As(err, &perr) {
			return protocol.ExitUsage
		}
		return protocol.ExitTemp
	}
	if err := replace(cdbPath, tmpPath, data); err != nil {
		fmt.Fprintf(stderr, "%s: fatal: %v\n", progName, err)
		return protocol.ExitTemp
	}
	return protocol.ExitOK
}

// parseArgs takes the two paths; "--" may come first, other options are
// refused so that a mistyped flag does not become a file name.
func parseArgs(args []string) (cdbPath, tmpPath string, ok bool) {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	} else if len(args) > 0 && strings.HasPrefix(args[0], "-") {
		return "", "", false
	}
	if len(args) != 2 || args[0] == "" || args[1] == "" {
		return "", "", false
	}
	return args[0], args[1], true
}

// compile reads all rules and returns the cdb bytes; nothing is written
// before the whole input has parsed.
func compile(stdin io.Reader) ([]byte, error) {
	rules, err := acl.ParseRules(stdin)
	if err != nil {
		return nil, err
	}
	records, err := acl.Compile(rules)
	if err != nil {
		return nil, err
	}
	return acl.MakeCDB(records)
}

// replace writes data to tmpPath, syncs it and renames it to cdbPath,
// removing tmpPath if any step fails.
func replace(cdbPath, tmpPath string, data []byte) error {
	if err := writeSynced(tmpPath, data); err != nil {
		os.Remove(tmpPath)
		return err
	}
	if err := os.Rename(tmpPath, cdbPath); err != nil {
		os.Remove(tmpPath)
		return fmt.Errorf("unable to move %s to %s: %w", tmpPath, cdbPath, err)
	}
	return syncDir(filepath.Dir(cdbPath))
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("unable to create: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("unable to write to %s: %w", path, err)
	}
	return nil
}

// syncDir makes the rename itself durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("unable to sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("unable to sync directory %s: %w", dir, err)
	}
	return nil
}
