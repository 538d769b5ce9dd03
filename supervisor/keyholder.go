package supervisor

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
)

// keyHolderWait bounds the key holder's start: reading and decrypting
// the keys.
const keyHolderWait = 30 * time.Second

// grantWait is how long the key holder holds a worker's sign request
// beyond its allowance, waiting for the Grant that lets it through. The
// supervisor sends each Grant before the session it is for, so a worker
// that plays by the rules never waits; one that asks twice in a session
// is refused after this.
const grantWait = 5 * time.Second

// restartWait is how long a worker being started waits for the key
// holder while it is down: a restart takes about 0.1 s, and a session
// that arrives meanwhile waits for it rather than being dropped.
const restartWait = 2 * time.Second

// keyHolder is the supervisor's handle on the one process that holds the
// private keys. If it dies, it is started again; workers started
// meanwhile wait for the new one (restartWait).
type keyHolder struct {
	srv  *Server
	mu   sync.Mutex
	ch   *protocol.Channel // nil while down
	up   chan struct{}     // closed while a key holder runs; see upLocked
	proc Process
	gone chan struct{} // closed when proc is reaped
	stop chan struct{}
	gen  int      // which key holder this is: 1, 2 after a restart, ...
	last uint32   // the last worker ID given out
	set  *certSet // the certificates of the running key holder's keys; nil: the tlsSetup's

	retired []retiredHolder // replaced by a reload, still serving their workers
}

// retiredHolder is a key holder a reload replaced: it exits by itself
// once the last worker attached to it has gone.
type retiredHolder struct {
	proc Process
	gone chan struct{}
}

// upLocked returns the channel that is closed once a key holder runs,
// with k.mu held.
func (k *keyHolder) upLocked() chan struct{} {
	if k.up == nil {
		k.up = make(chan struct{})
	}
	return k.up
}

// start runs the key holder and waits until it has loaded every key and
// the public keys match the certificates.
func (k *keyHolder) start() error {
	set := k.currentSet()
	proc, ch, err := k.spawn(set)
	if err != nil {
		return err
	}
	k.install(proc, ch, set)
	return nil
}

// replace starts a key holder for set beside the running one and, once
// its keys are loaded and match set's certificates, makes it the one new
// workers attach to. The old one is told to go: it serves the workers
// still attached to it and exits after the last. On error nothing has
// changed.
func (k *keyHolder) replace(set *certSet) error {
	proc, ch, err := k.spawn(set)
	if err != nil {
		return err
	}
	if old := k.install(proc, ch, set); old != nil {
		old.Close()
	}
	return nil
}

// currentSet is the certificate set of the running key holder, or the
// one to start it with.
func (k *keyHolder) currentSet() *certSet {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.set != nil {
		return k.set
	}
	return k.srv.tls.certSet
}

// spawn starts a key holder for set's keys and waits until it has loaded
// them and its public keys match set's certificates.
func (k *keyHolder) spawn(set *certSet) (Process, *protocol.Channel, error) {
	files, err := openKeys(set)
	if err != nil {
		return nil, nil, err
	}
	defer closeFiles(files)
	ours, theirs, err := protocol.Pair("keyholder")
	if err != nil {
		return nil, nil, err
	}
	proc, err := k.srv.spawn.Start(&ProcSpec{Path: k.srv.exe, Args: []string{protocol.KeyHolderArgv0}, Env: confinedEnv,
		Extra: []*os.File{theirs, k.srv.tls.rootDir}, Sys: k.srv.tls.startAttr(), Bare: true, Said: k.srv.log.Child("keyholder")})
	theirs.Close()
	if err != nil {
		ours.Close()
		return nil, nil, fmt.Errorf("unable to start key holder: %w", err)
	}
	ch, err := protocol.NewChannel(ours, protocol.KeyHolderReports)
	if err == nil {
		err = k.load(ch, set, files)
	}
	if err != nil {
		if ch != nil {
			ch.Close()
		}
		proc.Signal(os.Kill)
		proc.Wait()
		return nil, nil, err
	}
	return proc, ch, nil
}

// install makes proc the running key holder, with set's certificates,
// and returns the channel of the one it replaces, if one ran.
func (k *keyHolder) install(proc Process, ch *protocol.Channel, set *certSet) (old *protocol.Channel) {
	gone := make(chan struct{})
	k.mu.Lock()
	select {
	case <-k.stop: // shutdown has begun: it would not see this one
		k.mu.Unlock()
		ch.Close()
		proc.Signal(os.Kill)
		proc.Wait()
		return nil
	default:
	}
	old = k.ch
	if old != nil {
		k.retired = append(k.retired, retiredHolder{k.proc, k.gone})
	}
	k.ch, k.proc, k.gone, k.set = ch, proc, gone, set
	k.gen++
	if old == nil {
		close(k.upLocked())
	}
	k.mu.Unlock()
	k.srv.log.Info("keyholder pid %d", proc.Pid())
	go k.watch(proc, ch, gone)
	return old
}

// openKeys opens set's key files and, last, its TICKETKEYFILE.
func openKeys(set *certSet) ([]*os.File, error) {
	var files []*os.File
	for _, p := range set.keyPaths {
		f, err := os.Open(p)
		if err != nil {
			closeFiles(files)
			return nil, fmt.Errorf("unable to read private key: %w", err)
		}
		files = append(files, f)
	}
	if set.tickets != "" {
		f, err := os.Open(set.tickets)
		if err != nil {
			closeFiles(files)
			return nil, fmt.Errorf("unable to read TICKETKEYFILE: %w", err)
		}
		files = append(files, f)
	}
	return files, nil
}

func (k *keyHolder) load(ch *protocol.Channel, set *certSet, files []*os.File) error {
	t := k.srv.tls
	m := &protocol.Keys{Count: uint16(len(set.keyPaths)), Passphrase: t.passphrase, UID: t.uid, GID: t.gid,
		Root: t.root, MaxFiles: uint32(2*k.srv.opt.MaxConn + 64), Tickets: set.tickets != ""}
	if err := ch.Send(m, files...); err != nil {
		return fmt.Errorf("key holder: %w", err)
	}
	ch.SetReadDeadline(time.Now().Add(keyHolderWait))
	defer ch.SetReadDeadline(time.Time{})
	reply, _, err := ch.Recv()
	if err != nil {
		return fmt.Errorf("key holder: %w", err)
	}
	switch r := reply.(type) {
	case *protocol.KeysLoaded:
		return set.checkPublic(r.Public)
	case *protocol.KeysFailed:
		return set.keyFailure(r.Reason)
	}
	return fmt.Errorf("key holder: unexpected message type %d", reply.Type())
}

// watch reaps the key holder and starts a new one unless we are stopping
// or a reload has replaced it.
func (k *keyHolder) watch(proc Process, ch *protocol.Channel, gone chan struct{}) {
	st := proc.Wait()
	close(gone)
	k.mu.Lock()
	replaced := k.proc != proc
	if replaced {
		k.retired = slices.DeleteFunc(k.retired, func(r retiredHolder) bool { return r.proc == proc })
	} else {
		k.ch, k.up = nil, make(chan struct{})
	}
	k.mu.Unlock()
	ch.Close()
	if replaced {
		k.srv.log.Info("replaced key holder %d ended (%s)", proc.Pid(), describe(st))
		return
	}
	select {
	case <-k.stop:
		return
	default:
	}
	k.srv.log.Warning("key holder %d ended (%s), starting another", proc.Pid(), describe(st))
	for {
		err := k.start()
		if err == nil {
			return
		}
		k.srv.log.Warning("unable to restart key holder: %v", err)
		select {
		case <-k.stop:
			return
		case <-time.After(time.Second):
		}
	}
}

// attach hands the key holder a worker's channel for the worker's life,
// good for one signature; grant allows one more before each further
// session. It returns the ID that grants name the worker by and which
// key holder has it: after a restart the worker's channel leads nowhere.
// While the key holder is down it waits up to restartWait for the next.
// A send that fails means the key holder has died and the supervisor
// does not know it yet: that counts as down too.
func (k *keyHolder) attach(f *os.File) (khRef, error) {
	deadline := time.Now().Add(restartWait)
	for {
		ref, up, err := k.tryAttach(f)
		if err == nil {
			return ref, nil
		}
		if up == nil && !k.waitGone(ref.gen, time.Until(deadline)) {
			return khRef{}, err
		}
		if up != nil && !k.waitUp(up, deadline) {
			return khRef{}, errKeyHolderDown
		}
	}
}

// khRef is how a worker is known to the key holder it is attached to:
// the ID grants name it by, which key holder that is, and the
// certificates whose keys that key holder has.
type khRef struct {
	id  uint32
	gen int
	set *certSet
}

// tryAttach sends NewWorker to the running key holder. When none runs
// it returns the channel that closes when one does; when the send
// fails, the key holder's generation.
func (k *keyHolder) tryAttach(f *os.File) (ref khRef, up chan struct{}, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ch == nil {
		return khRef{}, k.upLocked(), errKeyHolderDown
	}
	k.last++
	m := &protocol.NewWorker{ID: k.last, Signs: 1, WaitMsec: uint32(grantWait / time.Millisecond)}
	set := k.set
	if set == nil {
		set = k.srv.tls.certSet
	}
	return khRef{k.last, k.gen, set}, nil, k.ch.Send(m, f)
}

// waitUp waits for up to close, until deadline or shutdown.
func (k *keyHolder) waitUp(up chan struct{}, deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-up:
		return true
	case <-t.C:
	case <-k.stop:
	}
	return false
}

// newChannel makes a worker's key channel and attaches it: the worker's
// end, with how the worker is known at the key holder.
func (k *keyHolder) newChannel() (worker *os.File, ref khRef, err error) {
	worker, ours, err := protocol.Pair("keyholder")
	if err != nil {
		return nil, khRef{}, err
	}
	ref, err = k.attach(ours)
	ours.Close()
	if err != nil {
		worker.Close()
		return nil, khRef{}, err
	}
	return worker, ref, nil
}

// waitGone waits up to d until key holder gen is no longer the running
// one; false if it still is.
func (k *keyHolder) waitGone(gen int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for k.current(gen) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// errKeyHolderDown: no key holder ran within restartWait.
var errKeyHolderDown = errors.New("key holder is not running")

// grant lets worker id of key holder gen sign once more, for its next
// session; an error means the worker's key holder is gone.
func (k *keyHolder) grant(id uint32, gen int) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.runs(gen) {
		return errors.New("the worker's key holder is gone")
	}
	return k.ch.Send(&protocol.Grant{ID: id, Signs: 1})
}

// current says whether gen is the running key holder.
func (k *keyHolder) current(gen int) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.runs(gen)
}

// runs is current with k.mu held.
func (k *keyHolder) runs(gen int) bool { return k.ch != nil && gen == k.gen }

// shutdown ends the key holder: closing its channel makes it exit.
func (k *keyHolder) shutdown() {
	close(k.stop)
	k.mu.Lock()
	ch, proc, gone, retired := k.ch, k.proc, k.gone, k.retired
	k.mu.Unlock()
	for _, r := range retired {
		reapWithin(r.proc, r.gone, retireGrace)
	}
	if ch == nil {
		return
	}
	ch.Close()
	reapWithin(proc, gone, retireGrace)
}

// reapWithin waits for a child that was asked to exit, killing it after
// grace, so none is left for init to reap when sslserver exits.
func reapWithin(p Process, gone <-chan struct{}, grace time.Duration) {
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-gone:
		return
	case <-t.C:
	}
	p.Signal(os.Kill)
	<-gone
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

func describe(st ExitState) string {
	if st.Signal != 0 {
		return fmt.Sprintf("signal %d", st.Signal)
	}
	return fmt.Sprintf("exit status %d", st.Code)
}
