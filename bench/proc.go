package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// procInfo is what /proc/PID/stat says of a process.
type procInfo struct {
	ppid int
	own  int64 // clock ticks of user and system time
	dead int64 // the same, of its children that it has reaped
}

// procTable is every process on the machine.
type procTable map[int]procInfo

// readProcs scans /proc. Processes that end while it reads are skipped.
func readProcs() (procTable, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	t := procTable{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if info, err := readStat(pid); err == nil {
			t[pid] = info
		}
	}
	return t, nil
}

// readStat reads /proc/PID/stat, whose second field (the command name)
// may hold spaces and parentheses: the fields after it start after its
// last ')'. They are state, ppid, ..., utime (12th), stime, cutime,
// cstime.
func readStat(pid int) (procInfo, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procInfo{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procInfo{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return procInfo{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var n [5]int64
	for j, k := range []int{1, 11, 12, 13, 14} {
		if n[j], err = strconv.ParseInt(f[k], 10, 64); err != nil {
			return procInfo{}, fmt.Errorf("/proc/%d/stat field %d: %w", pid, k+3, err)
		}
	}
	return procInfo{ppid: int(n[0]), own: n[1] + n[2], dead: n[3] + n[4]}, nil
}

// tree returns root and all its descendants.
func (t procTable) tree(root int) []int {
	children := map[int][]int{}
	for pid, info := range t {
		children[info.ppid] = append(children[info.ppid], pid)
	}
	var out []int
	todo := []int{root}
	for len(todo) > 0 {
		pid := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if _, ok := t[pid]; !ok {
			continue
		}
		out = append(out, pid)
		todo = append(todo, children[pid]...)
	}
	return out
}

// treeOf lists root's process tree now.
func treeOf(root int) ([]int, error) {
	t, err := readProcs()
	if err != nil {
		return nil, err
	}
	return t.tree(root), nil
}

// pssKiB reads a process's proportional set size: its private pages and
// its share of the pages it shares, so that summing it over processes
// counts shared text once.
func pssKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Pss:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/smaps_rollup has no Pss line", pid)
}

// memory is the PSS of a process tree, in all and by program name.
type memory struct {
	KiB    int64
	Procs  int
	ByName map[string]int64
}

// treePSS sums PSS over root's tree. A process that ends meanwhile is
// left out; an unreadable one is an error (PSS needs root for processes
// of other users, and for non-dumpable ones such as sslserver's workers).
func treePSS(root int) (*memory, error) {
	pids, err := treeOf(root)
	if err != nil {
		return nil, err
	}
	m := &memory{ByName: map[string]int64{}}
	for _, pid := range pids {
		kib, err := pssKiB(pid)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("PSS of pid %d: %w", pid, err)
		}
		m.KiB += kib
		m.Procs++
		m.ByName[argv0(pid)] += kib
	}
	return m, nil
}

// argv0 is the base name of a process's argv[0], which tells sslserver's
// roles apart (they share one binary).
func argv0(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return "?"
	}
	name, _, _ := bytes.Cut(b, []byte{0})
	return filepath.Base(string(name))
}

// clockTick is the unit of the times in /proc/PID/stat: USER_HZ, which
// Linux fixes at 100 on every architecture Go supports.
const clockTick = 10 * time.Millisecond

// cpuUse is the processor time a process tree has used: every live
// process's own, and that of the processes each has reaped (which
// includes what those had reaped). Over a round whose sessions have all
// been reaped, the difference is what the server spent on them.
type cpuUse struct {
	Total  time.Duration
	ByName map[string]time.Duration // argv[0]; "NAME children" for the reaped
}

func treeCPU(root int) (*cpuUse, error) {
	t, err := readProcs()
	if err != nil {
		return nil, err
	}
	u := &cpuUse{ByName: map[string]time.Duration{}}
	for _, pid := range t.tree(root) {
		name, info := argv0(pid), t[pid]
		u.ByName[name] += time.Duration(info.own) * clockTick
		u.ByName[name+" children"] += time.Duration(info.dead) * clockTick
		u.Total += time.Duration(info.own+info.dead) * clockTick
	}
	return u, nil
}

// settle waits, at most limit, until root's tree is down to want
// processes, or, when prog is not empty, until no process in it runs
// prog (argv[0]'s base name): the sessions of the last round have ended.
// The second test is for servers whose idle size grows with the load: a
// reused sslserver worker stays, idle, after its session.
//
// It returns how many processes are left, and whether the wait ran out.
func settle(root, want int, prog string, limit time.Duration) (int, bool, error) {
	deadline := time.Now().Add(limit)
	for {
		pids, err := treeOf(root)
		if err != nil {
			return 0, false, err
		}
		if len(pids) <= want || (prog != "" && !slices.ContainsFunc(pids, func(p int) bool { return argv0(p) == prog })) {
			return len(pids), false, nil
		}
		if time.Now().After(deadline) {
			return len(pids), true, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}
