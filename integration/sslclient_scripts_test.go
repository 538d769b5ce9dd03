package integration

// The wrappers users know from ucspi-tcp and ucspi-ssl, as scripts
// around sslclient: sslcat, sslconnect, https@.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runScript runs scripts/name with sslclient first in PATH and CAFILE
// set; it returns stdout and the exit code.
func runScript(t *testing.T, ca *testCA, name, stdin string, args ...string) (string, int) {
	t.Helper()
	binary(t, "sslclient")
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTime)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", name), args...)
	cmd.Env = append(clientBaseEnv(), "PATH="+binDir+":"+os.Getenv("PATH"), "CAFILE="+ca.path)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out) + stderr.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v\n%s", name, err, stderr.String())
	}
	return string(out), 0
}

func TestSslclientScripts(t *testing.T) {
	t.Parallel()
	needTool(t, "awk")
	ca := newTestCA(t, "Itest CA")
	t.Run("sslcat", func(t *testing.T) {
		s := serverWithCA(t, ca, serverConfig{role: "env"})
		out, code := runScript(t, ca, "sslcat", "", "127.0.0.1", portOf(s))
		if code != 0 || !strings.Contains(out, `"PROTO=SSL"`+"\n") {
			t.Errorf("sslcat: exit %d, output:\n%s", code, out)
		}
	})
	t.Run("https@", func(t *testing.T) {
		s := serverWithCA(t, ca, serverConfig{role: "echo"})
		out, code := runScript(t, ca, "https@", "", "127.0.0.1", "index.html", portOf(s))
		want := "GET /index.html HTTP/1.0\nHost: 127.0.0.1:" + portOf(s) + "\n\n"
		if code != 0 || out != want {
			t.Errorf("https@: exit %d, output %q, want %q", code, out, want)
		}
	})
	t.Run("sslconnect", func(t *testing.T) {
		s := serverWithCA(t, ca, serverConfig{role: "echo"})
		out, code := runScript(t, ca, "sslconnect", "EHLO there\nQUIT\n", "127.0.0.1", portOf(s))
		if code != 0 || out != "EHLO there\r\nQUIT\r\n" {
			t.Errorf("sslconnect: exit %d, output %q", code, out)
		}
	})
	t.Run("usage", func(t *testing.T) {
		for _, name := range []string{"sslcat", "sslconnect", "https@"} {
			if out, code := runScript(t, ca, name, ""); code != 100 || !strings.Contains(out, name+": usage: ") {
				t.Errorf("%s without arguments: exit %d, %q", name, code, out)
			}
		}
	})
}
