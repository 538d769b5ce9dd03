package supervisor

import (
	"os"
	"slices"
	"syscall"

	"github.com/ucspi-tls/sslserver/tlsworker"
)

// Spawner starts the supervisor's children. The real one execs; tests of
// the supervisor's bookkeeping substitute one that runs in-process.
type Spawner interface {
	Start(p *ProcSpec) (Process, error)
}

// ProcSpec is one child to start.
type ProcSpec struct {
	Path   string
	Args   []string // Args[0] is argv[0]
	Env    []string
	Stdin  *os.File // nil: /dev/null
	Stdout *os.File // nil: /dev/null
	Extra  []*os.File
	Cred   *syscall.Credential  // nil: the supervisor's own ids
	Sys    *syscall.SysProcAttr // if set, all of how to start it (Cred is ignored)
	Bare   bool                 // fork it from a thread with an all but empty capability bounding set (tlsworker.OnBareThread)
}

// Process is a started child.
type Process interface {
	Pid() int
	Wait() ExitState
	Signal(os.Signal) error
}

// ExitState is how a child ended: Signal is 0 when it exited with Code.
type ExitState struct {
	Code, Signal int
}

// confinedEnv is the whole environment of the key holder. The Go runtime
// would otherwise keep the cgroup CPU files open for the life of the
// process to track GOMAXPROCS, and a confined process opens nothing.
var confinedEnv = []string{"GODEBUG=containermaxprocs=0,updatemaxprocs=0"}

// workerEnv is the whole environment of a TLS worker: confinedEnv, and
// one P. A worker serves one connection at a time, and with more Ps the
// runtime wakes spare threads to look for work each time a goroutine
// becomes ready; those wakeups were 45% of a reused worker's CPU per
// session (0.94 against 0.52 ms, 8 clients, 2 cores), and cost bulk
// throughput too. The key holder keeps its Ps: it signs for every worker
// at once.
var workerEnv = append(slices.Clip(confinedEnv), "GOMAXPROCS=1")

// ExecSpawner starts real processes.
type ExecSpawner struct {
	Stderr *os.File
}

func (e ExecSpawner) Start(p *ProcSpec) (Process, error) {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	files := []*os.File{orNull(p.Stdin, null), orNull(p.Stdout, null), e.Stderr}
	files = append(files, p.Extra...)
	sys := p.Sys
	if sys == nil {
		sys = &syscall.SysProcAttr{Credential: p.Cred}
	}
	attr := &os.ProcAttr{Env: p.Env, Files: files, Sys: sys}
	var proc *os.Process
	start := func() { proc, err = os.StartProcess(p.Path, p.Args, attr) }
	if !p.Bare {
		start()
	} else if berr := tlsworker.OnBareThread(start); berr != nil {
		return nil, berr
	}
	if err != nil {
		return nil, err
	}
	return execProcess{proc}, nil
}

func orNull(f, null *os.File) *os.File {
	if f == nil {
		return null
	}
	return f
}

type execProcess struct{ p *os.Process }

func (e execProcess) Pid() int                 { return e.p.Pid }
func (e execProcess) Signal(s os.Signal) error { return e.p.Signal(s) }

func (e execProcess) Wait() ExitState {
	st, err := e.p.Wait()
	if err != nil {
		return ExitState{Code: 111}
	}
	ws := st.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return ExitState{Signal: int(ws.Signal())}
	}
	return ExitState{Code: ws.ExitStatus()}
}
