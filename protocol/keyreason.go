package protocol

import (
	"fmt"
	"strconv"
	"strings"
)

// KeyError is the key holder's error for the key file at index i of the
// Keys message's descriptors; its text is the KeysFailed reason. The key
// holder sees only descriptors: the index lets the supervisor name the
// file and the variable that gave it.
func KeyError(i int, err error) error {
	return fmt.Errorf("key %d: %w", i, err)
}

// ParseKeyReason reads back KeyError's index and the failure; ok is false
// for a reason that is not about one key file.
func ParseKeyReason(reason string) (i int, failure string, ok bool) {
	rest, found := strings.CutPrefix(reason, "key ")
	if !found {
		return 0, "", false
	}
	num, failure, found := strings.Cut(rest, ": ")
	i, err := strconv.Atoi(num)
	if !found || err != nil || i < 0 {
		return 0, "", false
	}
	return i, failure, true
}
