package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// A worker or the key holder never holds the supervisor's stderr: its
// fd 2 is a pipe of its own, and relayStderr turns what comes out of it
// into log lines of the supervisor's, so a compromised child can at most
// garble its own lines. It cannot shut down, truncate or seize the
// supervisor's stderr, or make the supervisor wait: the relay reads
// whatever the child writes and drops what is over its budget.
const (
	maxChildLine  = 512         // bytes of one line kept; the rest is cut
	childBurst    = 100         // lines a child may write at once...
	childRate     = 10          // ...and then per second
	stderrLinger  = time.Second // how long the relay outlives the child
	cutMarker     = "[cut]"
	droppedFormat = "[%d lines dropped]"
)

// relayStderr reads a child's stderr pipe line by line until every copy
// of its write end is closed, or stderrLinger after the child was reaped,
// and hands each line to said, escaped and bounded. Lines over the
// child's budget are counted, not logged; the count is said at the end.
func relayStderr(r *os.File, pid int, said func(pid int, line string)) {
	defer r.Close()
	b := lineBudget{tokens: childBurst, last: time.Now()}
	br := bufio.NewReaderSize(r, maxChildLine)
	cutting := false // the rest of a line already said is being skipped
	for {
		chunk, err := br.ReadSlice('\n')
		full := errors.Is(err, bufio.ErrBufferFull)
		if len(chunk) > 0 && !cutting {
			line := escapeLine(strings.TrimSuffix(string(chunk), "\n"))
			if full {
				line += cutMarker
			}
			if b.take(time.Now()) {
				said(pid, line)
			}
		}
		cutting = full
		if err != nil && !full {
			break
		}
	}
	if b.dropped > 0 {
		said(pid, fmt.Sprintf(droppedFormat, b.dropped))
	}
}

// lineBudget is a token bucket: childBurst lines at once, childRate a
// second after that. A child that floods its pipe costs the relay the
// reading, and nothing else.
type lineBudget struct {
	tokens  float64
	last    time.Time
	dropped int
}

func (b *lineBudget) take(now time.Time) bool {
	b.tokens = min(childBurst, b.tokens+now.Sub(b.last).Seconds()*childRate)
	b.last = now
	if b.tokens < 1 {
		b.dropped++
		return false
	}
	b.tokens--
	return true
}

// escapeLine writes every byte outside printable ASCII, and the
// backslash, as \xNN: a child's line cannot end the log line early,
// move a terminal's cursor or pass for text it is not.
func escapeLine(s string) string {
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '\\' {
			fmt.Fprintf(&out, `\x%02x`, c)
			continue
		}
		out.WriteByte(c)
	}
	return out.String()
}
