package supervisor

import (
	"bytes"
	"io"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

// The supervisor's stderr is shared with every program (UCSPI's
// convention), so a program can break it: shut a socket's write side,
// fill a pipe nobody reads, set O_NONBLOCK on it. None of that may stop
// the supervisor. Log lines therefore go through logQueue: the caller
// only queues the line, one goroutine writes, and a line that finds the
// queue full or whose write fails is counted as lost, never waited for.
// Once a write succeeds again, the count is logged.
const (
	logQueueLines = 4096            // lines queued for a slow stderr
	logFlushWait  = 2 * time.Second // at exit, for the queued lines
)

// logQueue is an io.Writer for the Log that never blocks and never fails.
type logQueue struct {
	lines   chan []byte
	lost    atomic.Int64 // lines not written since the last report
	stop    chan struct{}
	done    chan struct{}
	resumed func(lost int64) // on the writer goroutine, after lines were lost
}

func newLogQueue() *logQueue {
	return &logQueue{lines: make(chan []byte, logQueueLines), stop: make(chan struct{}), done: make(chan struct{})}
}

// Write queues one log line (the Log writes each line in one call).
func (q *logQueue) Write(p []byte) (int, error) {
	select {
	case q.lines <- bytes.Clone(p):
	default:
		q.lost.Add(1)
	}
	return len(p), nil
}

// start runs the writer; resumed must be set before.
func (q *logQueue) start(w io.Writer) { go q.writeLines(w) }

func (q *logQueue) writeLines(w io.Writer) {
	defer close(q.done)
	for {
		select {
		case line := <-q.lines:
			q.writeLine(w, line)
		case <-q.stop:
			q.drain(w)
			return
		}
	}
}

func (q *logQueue) drain(w io.Writer) {
	for {
		select {
		case line := <-q.lines:
			q.writeLine(w, line)
		default:
			return
		}
	}
}

func (q *logQueue) writeLine(w io.Writer, line []byte) {
	if _, err := w.Write(line); err != nil {
		q.lost.Add(1)
		return
	}
	if n := q.lost.Swap(0); n > 0 && q.resumed != nil {
		q.resumed(n)
	}
}

// close writes what is queued, waiting at most d: a stderr that takes
// no more does not keep sslserver from exiting.
func (q *logQueue) close(d time.Duration) {
	close(q.stop)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-q.done:
	case <-t.C:
	}
}

// surviveBrokenPipe keeps a write to a broken stderr or stdout from
// killing the supervisor: Go's runtime raises SIGPIPE for an EPIPE on fd
// 1 or 2 unless the program asked for SIGPIPE. The signal is taken with
// Notify (into a channel nobody reads) rather than ignored, because an
// ignored signal stays ignored across exec, in every program.
func surviveBrokenPipe() (undo func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGPIPE)
	return func() { signal.Stop(c) }
}
