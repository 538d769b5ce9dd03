package supervisor

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/internal/testutil"
	"github.com/ucspi-tls/sslserver/protocol"
)

// TestKeyHolderStart: the key holder is started in its role, gets the
// key files as descriptors (never their paths), who to become, and a
// descriptor budget; the supervisor then checks its public keys.
func TestKeyHolderStart(t *testing.T) {
	sp := spawnerWith(goodWorker, programUntilTold)
	h := newServer(t, sp, "-c", "10").start()
	kh := h.next(sp.keyHolders, "key holder")
	if kh.spec.Path != h.srv.exe || !reflect.DeepEqual(kh.spec.Args, []string{protocol.KeyHolderArgv0}) || len(kh.spec.Extra) != 2 {
		t.Errorf("key holder started as %q %q with %d files", kh.spec.Path, kh.spec.Args, len(kh.spec.Extra))
	}
	for _, kv := range kh.spec.Env {
		if slices.Contains(h.srv.environ, kv) || strings.Contains(kv, h.srv.tls.keyPaths[0]) {
			t.Errorf("the key holder's environment has %q", kv)
		}
	}
	h.kh.mu.Lock()
	defer h.kh.mu.Unlock()
	want := &protocol.Keys{Count: 1, UID: 65534, GID: 65533, Root: h.srv.tls.root, MaxFiles: 2*10 + 64, Passphrase: []byte{}}
	if !reflect.DeepEqual(h.kh.keys, want) {
		t.Errorf("key holder got %+v, want %+v", h.kh.keys, want)
	}
	if !reflect.DeepEqual(h.kh.keyData, []string{keyFileText}) {
		t.Errorf("the key file read through the passed descriptor is %q", h.kh.keyData)
	}
}

// keyHolderOnly is a harness whose key holder is started by the test.
func keyHolderOnly(t *testing.T, keyHolder behaviour) *harness {
	sp := spawnerWith(goodWorker, programUntilTold)
	sp.keyHolder = keyHolder
	return newServer(t, sp)
}

func TestKeyHolderWrongPublicKey(t *testing.T) {
	h := keyHolderOnly(t, fakeKeyHolder([][]byte{[]byte("some other key")}, &keyHolderRecord{}))
	err := h.srv.kh.start()
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("start with a mismatched key: %v", err)
	}
	kh := h.next(h.sp.keyHolders, "key holder")
	waitFor(t, "the refused key holder to be reaped", kh.wasWaited)
}

func TestKeyHolderWrongKeyCount(t *testing.T) {
	h := keyHolderOnly(t, fakeKeyHolder(nil, &keyHolderRecord{}))
	if err := h.srv.kh.start(); err == nil {
		t.Fatal("start accepted a key holder that loaded no keys")
	}
}

func keysFailed(p *fakeProc) ExitState {
	ch, err := p.channel()
	if err != nil || !loadFakeKeys(ch, &keyHolderRecord{}) {
		return ExitState{Code: 111}
	}
	ch.Send(&protocol.KeysFailed{Reason: "bad passphrase"})
	return ExitState{Code: 111}
}

// TestKeyHolderFailureLeavesNothingOpen: a key holder that cannot load
// its keys is reaped, its reason reported, and every descriptor of the
// attempt closed; the supervisor retries every second while it is down,
// so a leak here would grow without bound.
func TestKeyHolderFailureLeavesNothingOpen(t *testing.T) {
	h := keyHolderOnly(t, keysFailed)
	if err := h.srv.kh.start(); err == nil || !strings.Contains(err.Error(), "bad passphrase") {
		t.Fatalf("start: %v, want the key holder's reason", err)
	}
	noFinalizers(t)
	before := testutil.OwnFdCount(t)
	for i := 0; i < 10; i++ {
		h.srv.kh.start()
	}
	waitFds(t, before)
}

// TestKeyHolderRestart: a key holder that dies is replaced; the idle
// workers whose key channels led to it are let go, and the next session
// goes to a worker attached to the new one.
func TestKeyHolderRestart(t *testing.T) {
	sp := spawnerWith(goodWorker, programExits(ExitState{}))
	h := newServer(t, sp, "-v").start()
	first := h.next(sp.keyHolders, "key holder")
	old := h.worker()
	waitFor(t, "the first worker attached to the first key holder", func() bool { return h.kh.attachedTo(first.pid) >= 1 })
	first.Signal(syscall.SIGKILL)
	h.waitLinePrefix("sslserver: warning: key holder ")
	second := h.next(sp.keyHolders, "second key holder")
	waitFor(t, "the first key holder to be reaped", first.wasWaited)
	h.waitLineCount("sslserver: keyholder pid "+strconv.Itoa(second.pid), 1)
	h.dial()
	fs := h.session()
	if fs.proc == old {
		t.Error("the session went to a worker of the dead key holder")
	}
	h.waitLine("sslserver: end " + strconv.Itoa(fs.proc.pid) + " status 0")
	if h.kh.attachedTo(second.pid) < 1 {
		t.Error("no worker attached to the new key holder")
	}
	waitFor(t, "the old worker to be let go", old.wasWaited)
	h.none(sp.keyHolders, "third key holder", 100*time.Millisecond)
}
