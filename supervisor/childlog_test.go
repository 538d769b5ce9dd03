package supervisor

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// relayed runs relayStderr on a pipe that write fills, and returns the
// lines said, each with the pid it came with.
func relayed(t *testing.T, write func(w *os.File)) []string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		relayStderr(r, 4711, func(pid int, line string) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, fmt.Sprintf("%d %s", pid, line))
		})
	}()
	write(w)
	w.Close()
	<-done
	return got
}

func TestRelayStderrEscapesAndCuts(t *testing.T) {
	long := strings.Repeat("a", maxChildLine+100)
	cases := []struct {
		name, in string
		want     []string
	}{
		{"plain", "fatal: no\n", []string{"4711 fatal: no"}},
		{"no newline at the end", "one\ntwo", []string{"4711 one", "4711 two"}},
		{"controls", "a\rb\x1b[2Jc\\d\xff\n", []string{`4711 a\x0db\x1b[2Jc\x5cd\xff`}},
		{"too long", long + "\nnext\n", []string{"4711 " + long[:maxChildLine] + cutMarker, "4711 next"}},
		{"empty line", "\n", []string{"4711 "}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := relayed(t, func(w *os.File) { w.WriteString(c.in) })
			if strings.Join(got, "|") != strings.Join(c.want, "|") {
				t.Errorf("said %q, want %q", got, c.want)
			}
		})
	}
}

// A child that floods its pipe gets childBurst lines logged and the rest
// counted; the relay keeps reading, so the child is never blocked by it.
func TestRelayStderrDropsAFlood(t *testing.T) {
	const n = 5000
	got := relayed(t, func(w *os.File) {
		for i := 0; i < n; i++ {
			fmt.Fprintf(w, "line %d\n", i)
		}
	})
	if len(got) < childBurst || len(got) > childBurst+20 {
		t.Fatalf("%d lines said of a flood of %d, want about %d", len(got), n, childBurst)
	}
	var dropped int
	if _, err := fmt.Sscanf(got[len(got)-1], "4711 "+droppedFormat, &dropped); err != nil {
		t.Fatalf("last line %q is not the dropped count: %v", got[len(got)-1], err)
	}
	if logged := len(got) - 1; logged+dropped != n {
		t.Errorf("%d said and %d dropped, want %d in all", logged, dropped, n)
	}
}
