package supervisor

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
)

func TestPoolSettings(t *testing.T) {
	cases := []struct {
		env              map[string]string
		maxConn          int
		target, sessions int
	}{
		{nil, 40, 4, 1},
		{nil, 2, 2, 1},
		{map[string]string{"SSL_PREFORK": "0"}, 40, 0, 1},
		{map[string]string{"SSL_PREFORK": "1024", "SSL_WORKER_SESSIONS": "65535"}, 2000, 1024, 65535},
		{map[string]string{"SSL_PREFORK": "50"}, 40, 40, 1},
	}
	for _, c := range cases {
		target, sessions, err := poolSettings(func(k string) string { return c.env[k] }, c.maxConn)
		if err != nil || target != c.target || sessions != c.sessions {
			t.Errorf("%v with -c %d: %d, %d, %v; want %d, %d", c.env, c.maxConn, target, sessions, err, c.target, c.sessions)
		}
	}
	for _, bad := range []map[string]string{
		{"SSL_PREFORK": "-1"}, {"SSL_PREFORK": "x"}, {"SSL_PREFORK": "1025"}, {"SSL_PREFORK": " 1"},
		{"SSL_WORKER_SESSIONS": "0"}, {"SSL_WORKER_SESSIONS": "65536"}, {"SSL_WORKER_SESSIONS": "many"},
	} {
		if _, _, err := poolSettings(func(k string) string { return bad[k] }, 40); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestPoolKeepsWorkersReady: SSL_PREFORK workers are started ahead of
// demand, never more than -c.
func TestPoolKeepsWorkersReady(t *testing.T) {
	cases := []struct {
		prefork, maxConn string
		want             int
	}{{"3", "40", 3}, {"5", "2", 2}, {"0", "40", 1}}
	for _, c := range cases {
		sp := spawnerWith(goodWorker, programUntilTold)
		h := newServerEnv(t, sp, map[string]string{"SSL_PREFORK": c.prefork}, "-c", c.maxConn).start()
		for i := 0; i < c.want; i++ {
			w := h.worker()
			configOf(t, w)
		}
		h.none(sp.workers, fmt.Sprintf("worker beyond SSL_PREFORK=%s -c %s", c.prefork, c.maxConn), 300*time.Millisecond)
	}
}

// TestPoolReusesWorkers: with SSL_WORKER_SESSIONS=3 a worker serves
// three sessions one after another, and is then let go. Each time it
// goes back to idle the key holder is granted its next signature.
func TestPoolReusesWorkers(t *testing.T) {
	sp := spawnerWith(goodWorker, programExits(ExitState{}))
	env := map[string]string{"SSL_PREFORK": "0", "SSL_WORKER_SESSIONS": "3"}
	h := newServerEnv(t, sp, env, "-v").start()
	var pids []int
	for i := 0; i < 4; i++ {
		h.dial()
		fs := h.session()
		pids = append(pids, fs.proc.pid)
		h.waitLine(fmt.Sprintf("sslserver: end %d status 0", fs.proc.pid))
		h.waitLineCount("sslserver: status: 0/40", i+2)
	}
	if pids[0] != pids[1] || pids[1] != pids[2] || pids[3] == pids[0] {
		t.Fatalf("sessions served by workers %v, want three by one worker and the fourth by another", pids)
	}
	first := h.startedWorkers()[0]
	if cfg := configOf(t, first); cfg.Sessions != 3 {
		t.Errorf("the worker was told to serve %d sessions", cfg.Sessions)
	}
	waitDone(t, first, "worker after its last session")
	waitFor(t, "the worker to be reaped", first.wasWaited)
	waitFor(t, "three grants", func() bool { return h.kh.grantCount() == 3 })
	h.kh.mu.Lock()
	defer h.kh.mu.Unlock()
	if len(h.kh.workers) != 2 {
		t.Fatalf("%d workers attached to the key holder, want 2", len(h.kh.workers))
	}
	one, two := h.kh.workers[0].ID, h.kh.workers[1].ID
	g := h.kh.grants
	if one == two || g[0].ID != one || g[1].ID != one || g[2].ID != two || g[0].Signs != 1 {
		t.Errorf("workers %d and %d; grants %+v %+v %+v, want two for the first (not after its last session) and one for the second",
			one, two, g[0], g[1], g[2])
	}
}

// TestPoolRetiresAFailedWorker: a worker whose session failed serves no
// other, whatever SSL_WORKER_SESSIONS says.
func TestPoolRetiresAFailedWorker(t *testing.T) {
	sp := spawnerWith(failingWorker(protocol.ExitTemp, "unable to accept TLS: EOF"), programUntilTold)
	env := map[string]string{"SSL_PREFORK": "0", "SSL_WORKER_SESSIONS": "5"}
	h := newServerEnv(t, sp, env, "-v").start()
	var pids []int
	for i := 0; i < 2; i++ {
		h.dial()
		fs := h.session()
		pids = append(pids, fs.proc.pid)
		h.waitLine(fmt.Sprintf("sslserver: end %d status 111", fs.proc.pid))
		h.waitLineCount("sslserver: status: 0/40", i+2)
	}
	if pids[0] == pids[1] {
		t.Fatalf("worker %d served again after a failed session", pids[0])
	}
}

// TestPoolSkipsDeadWorkers: a ready worker that died while idle is
// reaped and never given a session.
func TestPoolSkipsDeadWorkers(t *testing.T) {
	sp := spawnerWith(goodWorker, programUntilTold)
	h := newServer(t, sp, "-v").start()
	w := h.worker()
	configOf(t, w)
	w.Signal(syscall.SIGKILL)
	waitFor(t, "the dead worker to be reaped", w.wasWaited)
	h.dial()
	fs, p := h.session(), h.program()
	defer func() { p.exit <- ExitState{} }()
	if fs.proc == w {
		t.Fatal("a dead worker was given a session")
	}
	h.waitLine(fmt.Sprintf("sslserver: tls %d accept", fs.proc.pid))
}
