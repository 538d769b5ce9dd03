package bench

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestFrontCells: the front cells run only the servers that can connect
// to a backend, and those that run no program sit the other cells out.
func TestFrontCells(t *testing.T) {
	front, prog := &cell{prog: progBackendClose}, &cell{prog: progTrue}
	for name, want := range map[string][2]bool{
		"sslhandle": {true, false}, "hitch": {true, false}, "stunnel4": {true, true},
		"sslserver": {true, true}, "ceiling": {false, true}, "socat": {false, true}, "tcpserver": {false, true},
	} {
		v, err := parseVariant(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := [2]bool{v.serves(front), v.serves(prog)}; got != want {
			t.Errorf("%s serves front, program cells: %v, want %v", name, got, want)
		}
	}
}

// TestFrontCommands: each front reaches the backend.
func TestFrontCommands(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(cert, []byte("CERT\n"), 0o600)
	os.WriteFile(key, []byte("KEY\n"), 0o600)
	st := &setup{dir: dir, addr: "127.0.0.1:4433", port: 4433, cert: &certFiles{Cert: cert, Key: key},
		backend: "127.0.0.1:8080", closes: true, maxConn: 2000}
	tl := &tools{bin: "/opt/bin", self: "/opt/bin/sslbench", uid: 65534, gid: 65534}
	cmd, _ := sslhandleCmd(tl, st, nil)
	if want := []string{"/opt/bin/sslhandle", "-H", "-R", "-l", "localhost", "-D", "-c", "16", "-b", "1024", "127.0.0.1", "4433", "127.0.0.1:8080"}; !slices.Equal(cmd.Args, want) {
		t.Errorf("sslhandle: %q", cmd.Args)
	}
	cmd, _ = sslserverCmd(tl, st, nil)
	if tail := cmd.Args[len(cmd.Args)-5:]; !slices.Equal(tail, []string{"/bin/sh", "-c", "exec socat -t $1 STDIO TCP:$0 3<&- 4<&- 5>&-", "127.0.0.1:8080", "0"}) {
		t.Errorf("sslserver's program: %q", tail)
	}
	if _, err := stunnelCmd(tl, st, nil); err != nil {
		t.Fatal(err)
	}
	conf, _ := os.ReadFile(filepath.Join(dir, "stunnel-4433.conf"))
	if !strings.Contains(string(conf), "connect = 127.0.0.1:8080\n") || strings.Contains(string(conf), "exec") {
		t.Errorf("stunnel's configuration:\n%s", conf)
	}
	if _, err := hitchCmd(tl, st, nil); err != nil {
		t.Fatal(err)
	}
	conf, _ = os.ReadFile(filepath.Join(dir, "hitch-4433.conf"))
	pem, _ := os.ReadFile(filepath.Join(dir, "hitch-4433.pem"))
	if !strings.Contains(string(conf), `backend = "[127.0.0.1]:8080"`) || string(pem) != "CERT\nKEY\n" {
		t.Errorf("hitch's configuration:\n%s\nPEM %q", conf, pem)
	}
}
