package supervisor

import (
	"os"
	"slices"
	"syscall"
	"time"

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
	// Said takes what the child writes on its fd 2, which is then a pipe
	// of its own (see relayStderr). Nil only for the program, whose fd 2
	// is the supervisor's stderr, as UCSPI has it.
	Said func(pid int, line string)
	// Bare forks it from a thread with an all but empty capability
	// bounding set (tlsworker.OnBareThread).
	Bare bool
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

// Start runs p in a session of its own: no child shares the
// supervisor's controlling terminal (it could push input into the shell
// that started sslserver with TIOCSTI) or its process group.
func (e ExecSpawner) Start(p *ProcSpec) (Process, error) {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	stderr, said := e.Stderr, (*os.File)(nil)
	if p.Said != nil {
		if said, stderr, err = os.Pipe(); err != nil {
			return nil, err
		}
		defer stderr.Close()
	}
	files := []*os.File{orNull(p.Stdin, null), orNull(p.Stdout, null), stderr}
	files = append(files, p.Extra...)
	sys := syscall.SysProcAttr{Credential: p.Cred}
	if p.Sys != nil {
		sys = *p.Sys
	}
	sys.Setsid = true
	attr := &os.ProcAttr{Env: p.Env, Files: files, Sys: &sys}
	var proc *os.Process
	start := func() { proc, err = os.StartProcess(p.Path, p.Args, attr) }
	if !p.Bare {
		start()
	} else if berr := tlsworker.OnBareThread(start); berr != nil {
		err = berr
	}
	if err != nil {
		if said != nil {
			said.Close()
		}
		return nil, err
	}
	if said != nil {
		go relayStderr(said, proc.Pid, p.Said)
	}
	return execProcess{proc, said}, nil
}

func orNull(f, null *os.File) *os.File {
	if f == nil {
		return null
	}
	return f
}

// execProcess is a started child; said is the supervisor's end of its
// stderr pipe, nil for the program.
type execProcess struct {
	p    *os.Process
	said *os.File
}

func (e execProcess) Pid() int                 { return e.p.Pid }
func (e execProcess) Signal(s os.Signal) error { return e.p.Signal(s) }

func (e execProcess) Wait() ExitState {
	st, err := e.p.Wait()
	if e.said != nil {
		// The child is gone; a copy of its stderr's write end that it
		// passed on must not keep the relay, and its descriptor, alive.
		e.said.SetReadDeadline(time.Now().Add(stderrLinger))
	}
	if err != nil {
		return ExitState{Code: 111}
	}
	ws := st.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return ExitState{Signal: int(ws.Signal())}
	}
	return ExitState{Code: ws.ExitStatus()}
}
