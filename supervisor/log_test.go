package supervisor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// logAll writes one of every event, with SPEC section 5's values.
func logAll(l *Log) {
	l.Status(3, 40)
	l.Pid(4711, "192.0.2.7")
	l.OK(4711, "mx.example.org:192.0.2.1:25", "client.example.net:192.0.2.7::50123")
	l.Deny(4711, "mx.example.org:192.0.2.1:25", ":192.0.2.7::50123")
	l.TLS(4711, "TLSv1.3", "TLS_AES_128_GCM_SHA256")
	l.End(4711, "status", 0)
	l.End(4712, "signal", 15)
	l.Info("keyholder pid %d", 42)
	l.Warning("dropping connection from %s, unable to accept TLS: %s", "192.0.2.7", "EOF")
	l.Fatal("unable to bind: %s", "address already in use")
}

const (
	lineStatus  = "sslserver: status: 3/40"
	linePid     = "sslserver: pid 4711 from 192.0.2.7"
	lineOK      = "sslserver: ok 4711 mx.example.org:192.0.2.1:25 client.example.net:192.0.2.7::50123"
	lineDeny    = "sslserver: deny 4711 mx.example.org:192.0.2.1:25 :192.0.2.7::50123"
	lineTLS     = "sslserver: tls 4711 accept"
	lineTLSV    = "sslserver: tls 4711 accept TLSv1.3:TLS_AES_128_GCM_SHA256"
	lineEnd     = "sslserver: end 4711 status 0"
	lineSignal  = "sslserver: end 4712 signal 15"
	lineInfo    = "sslserver: keyholder pid 42"
	lineWarning = "sslserver: warning: dropping connection from 192.0.2.7, unable to accept TLS: EOF"
	lineFatal   = "sslserver: fatal: unable to bind: address already in use"
)

func TestLogClassicLinesByVerbosity(t *testing.T) {
	verbose := []string{lineStatus, linePid, lineOK, lineDeny, lineTLS, lineEnd, lineSignal, lineInfo, lineWarning, lineFatal}
	cases := map[string]struct {
		v    Verbosity
		want []string
	}{
		"-q": {Quiet, []string{lineFatal}},
		"-Q": {Errors, []string{lineWarning, lineFatal}},
		"-v": {Verbose, verbose},
		"-V": {Cipher, []string{lineStatus, linePid, lineOK, lineDeny, lineTLSV, lineEnd, lineSignal, lineInfo, lineWarning, lineFatal}},
	}
	for flag, c := range cases {
		var b bytes.Buffer
		logAll(NewLog(&b, "sslserver", c.v, false))
		want := strings.Join(c.want, "\n") + "\n"
		if b.String() != want {
			t.Errorf("%s:\n got %q\nwant %q", flag, b.String(), want)
		}
	}
}

func TestLogNameIsThePrefix(t *testing.T) {
	var b bytes.Buffer
	NewLog(&b, "sslhandle", Verbose, false).Status(0, 1)
	if b.String() != "sslhandle: status: 0/1\n" {
		t.Fatalf("got %q", b.String())
	}
}

// TestLogOneEventOneLine: a reason from the network or a peer process
// cannot start a line of its own in the log.
func TestLogOneEventOneLine(t *testing.T) {
	var b bytes.Buffer
	l := NewLog(&b, "sslserver", Verbose, false)
	l.Warning("dropping connection from %s, %s", "192.0.2.7", "bad\nsslserver: end 1 status 0\r\n")
	if n := strings.Count(b.String(), "\n"); n != 1 {
		t.Fatalf("one warning wrote %d lines: %q", n, b.String())
	}
	if !strings.HasPrefix(b.String(), "sslserver: warning: dropping connection from 192.0.2.7, bad") {
		t.Fatalf("got %q", b.String())
	}
}

func TestLogJSON(t *testing.T) {
	var b bytes.Buffer
	logAll(NewLog(&b, "sslserver", Cipher, true))
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	want := []struct {
		msg, event string
		fields     map[string]any
	}{
		{"status: 3/40", "status", map[string]any{"active": 3.0, "max": 40.0}},
		{"pid 4711 from 192.0.2.7", "pid", map[string]any{"pid": 4711.0, "remote_ip": "192.0.2.7"}},
		{strings.TrimPrefix(lineOK, "sslserver: "), "ok", map[string]any{"pid": 4711.0, "local": "mx.example.org:192.0.2.1:25", "remote": "client.example.net:192.0.2.7::50123"}},
		{strings.TrimPrefix(lineDeny, "sslserver: "), "deny", map[string]any{"pid": 4711.0, "remote": ":192.0.2.7::50123"}},
		{"tls 4711 accept TLSv1.3:TLS_AES_128_GCM_SHA256", "tls", map[string]any{"protocol": "TLSv1.3", "cipher": "TLS_AES_128_GCM_SHA256"}},
		{"end 4711 status 0", "end", map[string]any{"pid": 4711.0, "status": 0.0}},
		{"end 4712 signal 15", "end", map[string]any{"pid": 4712.0, "signal": 15.0}},
		{"keyholder pid 42", "info", nil},
		{strings.TrimPrefix(lineWarning, "sslserver: "), "warning", nil},
		{strings.TrimPrefix(lineFatal, "sslserver: "), "fatal", nil},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d JSON lines, want %d:\n%s", len(lines), len(want), b.String())
	}
	for i, line := range lines {
		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d is not JSON: %v: %q", i, err, line)
		}
		w := want[i]
		if got["@message"] != w.msg || got["event"] != w.event {
			t.Errorf("line %d: message %q event %q, want %q %q", i, got["@message"], got["event"], w.msg, w.event)
		}
		for k, v := range w.fields {
			if got[k] != v {
				t.Errorf("line %d: %s = %#v, want %#v", i, k, got[k], v)
			}
		}
	}
}

func TestLogJSONVerbosity(t *testing.T) {
	var b bytes.Buffer
	logAll(NewLog(&b, "sslserver", Errors, true))
	var events []string
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		events = append(events, fmt.Sprint(got["event"]))
	}
	if strings.Join(events, ",") != "warning,fatal" {
		t.Fatalf("at -Q the JSON log has events %q, want warning and fatal", events)
	}
}

// TestLogConcurrentLinesStayWhole: sessions log from their own
// goroutines; lines must not interleave.
func TestLogConcurrentLinesStayWhole(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		var b lockedBuffer
		l := NewLog(&b, "sslserver", Verbose, asJSON)
		var wg sync.WaitGroup
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go logMany(l, g, &wg)
		}
		wg.Wait()
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if len(lines) != 16*50 {
			t.Fatalf("json %v: %d lines, want %d", asJSON, len(lines), 16*50)
		}
		for _, line := range lines {
			if asJSON && !json.Valid([]byte(line)) || !asJSON && !strings.HasPrefix(line, "sslserver: pid ") {
				t.Fatalf("json %v: mangled line %q", asJSON, line)
			}
		}
	}
}

func logMany(l *Log, g int, wg *sync.WaitGroup) {
	defer wg.Done()
	for i := 0; i < 50; i++ {
		l.Pid(g*1000+i, "198.51.100.1")
	}
}

// lockedBuffer is a bytes.Buffer safe for the writers and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A worker's or the key holder's stderr line is a warning of the
// supervisor's, named by role and pid; so is the count of lost lines.
func TestLogChildLines(t *testing.T) {
	cases := []struct {
		v    Verbosity
		json bool
		want string
	}{
		{Quiet, false, ""},
		{Errors, false, "sslserver: worker 4711: fatal: x\\x1b\nsslserver: warning: 3 log lines lost: stderr was full or failed\n"},
		{Errors, true, `"@message":"worker 4711: fatal: x\\x1b","@module":"sslserver","@timestamp":`},
	}
	for _, c := range cases {
		var b bytes.Buffer
		l := NewLog(&b, "sslserver", c.v, c.json)
		l.Child("worker")(4711, `fatal: x\x1b`)
		l.lost(3)
		if c.json {
			var got map[string]any
			line, _, _ := strings.Cut(b.String(), "\n")
			if err := json.Unmarshal([]byte(line), &got); err != nil || got["event"] != "child" || got["role"] != "worker" ||
				got["pid"] != 4711.0 || got["text"] != `fatal: x\x1b` || !strings.Contains(line, c.want) {
				t.Errorf("JSON child line %q (%v)", line, err)
			}
			continue
		}
		if b.String() != c.want {
			t.Errorf("verbosity %d: got %q, want %q", c.v, b.String(), c.want)
		}
	}
}
