package integration

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// encryptKey writes the certificate's key encrypted with passphrase
// (PKCS#8, AES-256) by openssl, as administrators make them.
func encryptKey(t *testing.T, c *testCert, passphrase string) string {
	t.Helper()
	openssl := needTool(t, "openssl")
	out := filepath.Join(t.TempDir(), "key.enc.pem")
	cmd := exec.Command(openssl, "pkey", "-in", c.keyPath, "-aes256", "-passout", "pass:"+passphrase, "-out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl pkey: %v: %s", err, b)
	}
	return out
}

// passphraseFd is a pipe holding passphrase and its NUL, for sslserver's
// fd 3 (-3).
func passphraseFd(t *testing.T, passphrase string) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString(passphrase + "\x00")
	w.Close()
	t.Cleanup(func() { r.Close() })
	return r
}

// TestPassphraseOnFd3: -3 reads the key's passphrase from fd 3; with it
// an encrypted key serves, with a wrong one sslserver does not start.
func TestPassphraseOnFd3(t *testing.T) {
	c := newCert(t, keyECDSA)
	enc := encryptKey(t, c, "s3cret pass")
	s := startServer(t, serverConfig{cert: c, flags: []string{"-3"}, env: []string{"KEYFILE=" + enc},
		inherit: []*os.File{passphraseFd(t, "s3cret pass")}, role: "echo"})
	s.goodSession(t, "through an encrypted key")

	cmd := exec.Command(binary(t, "sslserver"), "-3", "-1", "127.0.0.1", "0", "/bin/true")
	cmd.Env = append(serverEnv(t, serverConfig{cert: c}), "KEYFILE="+enc)
	cmd.ExtraFiles = []*os.File{passphraseFd(t, "wrong")}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := runBounded(t, cmd, 20*time.Second)
	if code := exitCode(err); code != 111 {
		t.Errorf("wrong passphrase: exit %d (%v), want 111; stderr %q", code, err, stderr.String())
	}
	if !regexp.MustCompile(`^sslserver: fatal: unable to load private key: .*passphrase`).MatchString(stderr.String()) {
		t.Errorf("wrong passphrase: stderr %q, want one fatal line about the passphrase", stderr.String())
	}
}

func runBounded(t *testing.T, cmd *exec.Cmd, limit time.Duration) error {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		cmd.Process.Kill()
		t.Fatalf("%s still running after %v", cmd.Path, limit)
		return nil
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestJSONLog: SSLSERVER_LOG=json gives one JSON object a line with the
// same events and facts as the classic lines.
func TestJSONLog(t *testing.T) {
	s := startServer(t, serverConfig{env: []string{"SSLSERVER_LOG=json"}, role: "echo"})
	tc, _ := s.dialTLS(t, nil)
	echoRoundTrip(t, tc, "json")
	tc.Close()
	s.waitLog(t, regexp.MustCompile(`"event":"end"`))
	events := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(s.log.text()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		ev, _ := m["event"].(string)
		events[ev] = m
	}
	for _, ev := range []string{"status", "pid", "ok", "tls", "end"} {
		if events[ev] == nil {
			t.Errorf("no %q event in the JSON log:\n%s", ev, s.log.text())
		}
	}
	pid := events["pid"]["pid"]
	for _, ev := range []string{"ok", "tls", "end"} {
		if events[ev] != nil && events[ev]["pid"] != pid {
			t.Errorf("%s event has pid %v, the pid event %v", ev, events[ev]["pid"], pid)
		}
	}
	if m := events["tls"]; m != nil && (m["protocol"] != "TLSv1.3" || m["cipher"] == "") {
		t.Errorf("tls event %v lacks protocol or cipher", m)
	}
	if m := events["end"]; m != nil && m["status"] != float64(0) {
		t.Errorf("end event %v, want status 0", m)
	}
}

// TestProgramIDsFromEnvironment: -U runs the program as $UID and $GID,
// with no supplementary group but $GID, as envuidgid users expect.
func TestProgramIDsFromEnvironment(t *testing.T) {
	s := startServer(t, serverConfig{flags: []string{"-U"}, env: []string{"UID=1001", "GID=1002"},
		program: []string{"/bin/sh", "-c", "id -u; id -g; id -G"}})
	tc, _ := s.dialTLS(t, nil)
	tc.SetDeadline(time.Now().Add(waitTime))
	out, err := io.ReadAll(tc)
	if err != nil {
		t.Fatalf("reading the program's output: %v", err)
	}
	if got, want := string(out), "1001\n1002\n1002\n"; got != want {
		t.Errorf("program ids %q, want %q", got, want)
	}
}
