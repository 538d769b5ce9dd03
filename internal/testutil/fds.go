package testutil

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// FdCount is how many descriptors process pid has open, from /proc.
func FdCount(t testing.TB, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("descriptors of %d: %v", pid, err)
	}
	return len(entries)
}

// OwnFdCount is how many descriptors the test's own process has open.
func OwnFdCount(t testing.TB) int {
	t.Helper()
	return FdCount(t, os.Getpid())
}

// FdsDownTo waits, for up to limit, until pid has no more than want
// descriptors open (those of children or sessions just ended may take a
// moment to close), and returns the last count.
func FdsDownTo(t testing.TB, pid, want int, limit time.Duration) int {
	t.Helper()
	n := FdCount(t, pid)
	for deadline := time.Now().Add(limit); n > want && time.Now().Before(deadline); n = FdCount(t, pid) {
		time.Sleep(5 * time.Millisecond)
	}
	return n
}
