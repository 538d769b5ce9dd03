package protocol

import (
	"errors"
	"testing"
)

// TestKeyReason: the index the key holder puts in a KeysFailed reason
// reads back, and reasons not about one key file are told apart.
func TestKeyReason(t *testing.T) {
	i, failure, ok := ParseKeyReason(KeyError(3, errors.New("keys: no private key: x")).Error())
	if !ok || i != 3 || failure != "keys: no private key: x" {
		t.Errorf("round trip: %d %q %v", i, failure, ok)
	}
	for _, r := range []string{"", "key", "key x: y", "key -1: y", "key 2", "confine: chroot: denied"} {
		if _, _, ok := ParseKeyReason(r); ok {
			t.Errorf("%q parsed as a key reason", r)
		}
	}
}
