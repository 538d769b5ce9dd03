package supervisor

import (
	"sync"
	"syscall"
	"testing"
	"time"
)

// gate is a stderr that blocks until opened, or fails while broken.
type gate struct {
	mu     sync.Mutex
	open   chan struct{}
	broken bool
	lines  []string
}

func (g *gate) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.broken {
		return 0, syscall.EPIPE
	}
	g.lines = append(g.lines, string(p))
	return len(p), nil
}

func (g *gate) written() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.lines...)
}

func startQueue(g *gate) (*logQueue, chan int64) {
	q := newLogQueue()
	reports := make(chan int64, 10)
	q.resumed = func(n int64) { reports <- n }
	q.start(g)
	return q, reports
}

// A stderr nobody reads does not hold the caller: lines beyond the queue
// are counted, and the count is reported once stderr takes lines again.
func TestLogQueueNeverBlocks(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	q, reports := startQueue(g)
	const n = logQueueLines + 500
	start := time.Now()
	for i := 0; i < n; i++ {
		q.Write([]byte("line\n"))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("%d writes to a blocked stderr took %v", n, d)
	}
	close(g.open)
	select {
	case lost := <-reports:
		// One line may have been taken by the writer before it blocked.
		if lost < 499 || lost > 500 {
			t.Errorf("reported %d lines lost, want about 500", lost)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no report of the lost lines after stderr opened")
	}
	q.close(time.Second)
	if got := len(g.written()); got+500 < n {
		t.Errorf("%d lines written of %d, at most 500 should be lost", got, n)
	}
}

// A failing write (EPIPE) is counted, and the queue goes on.
func TestLogQueueSurvivesFailingWrites(t *testing.T) {
	g := &gate{open: make(chan struct{}), broken: true}
	close(g.open)
	q, reports := startQueue(g)
	for i := 0; i < 3; i++ {
		if n, err := q.Write([]byte("lost\n")); n != 5 || err != nil {
			t.Fatalf("Write = %d, %v; the log must never fail its caller", n, err)
		}
	}
	waitFor(t, "the failed writes to be counted", func() bool { return q.lost.Load() == 3 })
	g.mu.Lock()
	g.broken = false
	g.mu.Unlock()
	q.Write([]byte("back\n"))
	if lost := <-reports; lost != 3 {
		t.Errorf("reported %d lost, want 3", lost)
	}
	q.close(time.Second)
	if got := g.written(); len(got) != 1 || got[0] != "back\n" {
		t.Errorf("written %q, want only the line after stderr came back", got)
	}
}

// close gives up on a stderr that takes nothing.
func TestLogQueueCloseIsBounded(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	defer close(g.open)
	q, _ := startQueue(g)
	q.Write([]byte("stuck\n"))
	start := time.Now()
	q.close(100 * time.Millisecond)
	if d := time.Since(start); d > time.Second {
		t.Errorf("close took %v with a blocked stderr", d)
	}
}
