package supervisor

import (
	"errors"
	"fmt"
	"os"
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
	gen  int    // which key holder this is: 1, 2 after a restart, ...
	last uint32 // the last worker ID given out
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
	files, err := k.openKeys()
	if err != nil {
		return err
	}
	defer closeFiles(files)
	ours, theirs, err := protocol.Pair("keyholder")
	if err != nil {
		return err
	}
	proc, err := k.srv.spawn.Start(&ProcSpec{Path: k.srv.exe, Args: []string{protocol.KeyHolderArgv0}, Env: confinedEnv,
		Extra: []*os.File{theirs, k.srv.tls.rootDir}, Sys: k.srv.tls.startAttr(), Bare: true, Said: k.srv.log.Child("keyholder")})
	theirs.Close()
	if err != nil {
		ours.Close()
		return fmt.Errorf("unable to start key holder: %w", err)
	}
	ch, err := protocol.NewChannel(ours, protocol.KeyHolderReports)
	if err == nil {
		err = k.load(ch, files)
	}
	if err != nil {
		if ch != nil {
			ch.Close()
		}
		proc.Signal(os.Kill)
		proc.Wait()
		return err
	}
	gone := make(chan struct{})
	k.mu.Lock()
	k.ch, k.proc, k.gone = ch, proc, gone
	k.gen++
	close(k.upLocked())
	k.mu.Unlock()
	k.srv.log.Info("keyholder pid %d", proc.Pid())
	go k.watch(proc, ch, gone)
	return nil
}

func (k *keyHolder) openKeys() ([]*os.File, error) {
	var files []*os.File
	for _, p := range k.srv.tls.keyPaths {
		f, err := os.Open(p)
		if err != nil {
			closeFiles(files)
			return nil, fmt.Errorf("unable to read private key: %w", err)
		}
		files = append(files, f)
	}
	return files, nil
}

func (k *keyHolder) load(ch *protocol.Channel, files []*os.File) error {
	t := k.srv.tls
	m := &protocol.Keys{Count: uint16(len(files)), Passphrase: t.passphrase, UID: t.uid, GID: t.gid,
		Root: t.root, MaxFiles: uint32(2*k.srv.opt.MaxConn + 64)}
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
		return t.checkPublic(r.Public)
	case *protocol.KeysFailed:
		return t.keyFailure(r.Reason)
	}
	return fmt.Errorf("key holder: unexpected message type %d", reply.Type())
}

// watch reaps the key holder and starts a new one unless we are stopping.
func (k *keyHolder) watch(proc Process, ch *protocol.Channel, gone chan struct{}) {
	st := proc.Wait()
	close(gone)
	k.mu.Lock()
	k.ch, k.up = nil, make(chan struct{})
	k.mu.Unlock()
	ch.Close()
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
func (k *keyHolder) attach(f *os.File) (id uint32, gen int, err error) {
	deadline := time.Now().Add(restartWait)
	for {
		id, gen, up, err := k.tryAttach(f)
		if err == nil {
			return id, gen, nil
		}
		if up == nil && !k.waitGone(gen, time.Until(deadline)) {
			return 0, 0, err
		}
		if up != nil && !k.waitUp(up, deadline) {
			return 0, 0, errKeyHolderDown
		}
	}
}

// tryAttach sends NewWorker to the running key holder. When none runs
// it returns the channel that closes when one does; when the send
// fails, the key holder's generation.
func (k *keyHolder) tryAttach(f *os.File) (id uint32, gen int, up chan struct{}, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ch == nil {
		return 0, 0, k.upLocked(), errKeyHolderDown
	}
	k.last++
	m := &protocol.NewWorker{ID: k.last, Signs: 1, WaitMsec: uint32(grantWait / time.Millisecond)}
	return k.last, k.gen, nil, k.ch.Send(m, f)
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
// end, with the ID and key holder it is known by.
func (k *keyHolder) newChannel() (worker *os.File, id uint32, gen int, err error) {
	worker, ours, err := protocol.Pair("keyholder")
	if err != nil {
		return nil, 0, 0, err
	}
	id, gen, err = k.attach(ours)
	ours.Close()
	if err != nil {
		worker.Close()
		return nil, 0, 0, err
	}
	return worker, id, gen, nil
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
	ch, proc, gone := k.ch, k.proc, k.gone
	k.mu.Unlock()
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
