package bench

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ucspi-tls/sslserver/bench/load"
)

// measure is what a cell measures.
type measure int

const (
	mRate measure = iota
	mFirstByte
	mBulkUp
	mBulkEcho
	mMemory
)

// program is what every server of a cell runs per connection.
type program int

const (
	progTrue      program = iota // /bin/true
	progSMTP                     // ucspitls-smtpd over STARTTLS
	progFirstByte                // /bin/echo: one byte at once
	progDiscard                  // cat >/dev/null
	progEcho                     // cat
	// The front cells: no program, but a backend in the driver (see
	// backend.go) that the TLS front connects to for each session.
	progBackendClose   // closes at once
	progBackendDiscard // reads to the end
	progBackendEcho    // echoes
)

// backend says whether p is served by a backend behind a TLS front.
func (p program) backend() bool { return p >= progBackendClose }

// cell is one row group of the table: one measurement of every server.
type cell struct {
	name     string
	measure  measure
	prog     program
	key      keyType
	x25519   bool // pin the client's key share to X25519
	resume   bool // the clients share a session cache: resumed handshakes
	clients  int  // mRate: concurrent clients
	sessions int  // mMemory: idle sessions held
	rounds   int  // 0: the run's -rounds
	extra    int  // rounds beyond the run's -rounds, except in a quick run
	fixed    bool // mMemory: also report the idle server's own memory
	cpu      bool // mRate: also report the server's CPU time per session
	quick    bool // part of the quick (smoke) run
}

// bulkExtra is how many more rounds the bulk cells get than the others.
const bulkExtra = 2

// cells is the full run. Its cost is about rounds × variants × duration
// per rate, first-byte and bulk cell, plus the memory cells' opening and
// closing of sessions; keep "make bench" under ten minutes on two cores.
var cells = []cell{
	{name: "rate /bin/true, 1 client", measure: mRate, prog: progTrue, clients: 1},
	{name: "rate /bin/true, 8 clients", measure: mRate, prog: progTrue, clients: 8, cpu: true, quick: true},
	{name: "rate /bin/true, 64 clients", measure: mRate, prog: progTrue, clients: 64},
	{name: "rate /bin/true, 8 clients, X25519", measure: mRate, prog: progTrue, clients: 8, x25519: true, cpu: true},
	{name: "rate /bin/true, 8 clients, RSA-2048", measure: mRate, prog: progTrue, clients: 8, key: rsa2048, cpu: true},
	// Against the 8-client row above, in the same run: what resumption
	// (a ticket opened and one sealed by sslserver's key holder, no
	// signature) saves.
	{name: "rate /bin/true, 8 clients, resumed", measure: mRate, prog: progTrue, clients: 8, resume: true, cpu: true, quick: true},
	{name: "rate SMTP STARTTLS, 1 client", measure: mRate, prog: progSMTP, clients: 1},
	{name: "rate SMTP STARTTLS, 8 clients", measure: mRate, prog: progSMTP, clients: 8, cpu: true, quick: true},
	{name: "rate SMTP STARTTLS, 64 clients", measure: mRate, prog: progSMTP, clients: 64},
	{name: "first byte, 1 client", measure: mFirstByte, prog: progFirstByte, quick: true},
	// Throughput varies the most on a shared machine (in one run the
	// plaintext floor went from 1355 to 2473 MiB/s within 30 s): two more
	// rounds for a steadier median.
	{name: "bulk up (cat >/dev/null)", measure: mBulkUp, prog: progDiscard, quick: true, extra: bulkExtra},
	{name: "bulk echo (cat)", measure: mBulkEcho, prog: progEcho, quick: true, extra: bulkExtra},
	{name: "memory, 100 idle sessions", measure: mMemory, prog: progEcho, sessions: 100, fixed: true, quick: true},
	{name: "memory, 1000 idle sessions", measure: mMemory, prog: progEcho, sessions: 1000, rounds: 1},
	// A TLS front for a TCP service: the same through to a backend.
	{name: "front: rate to a backend that closes, 8 clients", measure: mRate, prog: progBackendClose, clients: 8, cpu: true, quick: true},
	{name: "front: bulk up to a backend", measure: mBulkUp, prog: progBackendDiscard, quick: true, extra: bulkExtra},
	{name: "front: bulk echo through a backend", measure: mBulkEcho, prog: progBackendEcho, quick: true, extra: bulkExtra},
}

// quickSessions replaces the memory cells' session count in a quick run.
const quickSessions = 20

// selectCells returns the cells of this run: the quick ones only with
// quick, and those whose name matches pattern.
func selectCells(quick bool, pattern string) ([]cell, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("-cells %q: %w", pattern, err)
	}
	var out []cell
	for _, c := range cells {
		if (quick && !c.quick) || !re.MatchString(c.name) {
			continue
		}
		if quick && c.measure == mMemory {
			c.sessions = quickSessions
			c.name = fmt.Sprintf("memory, %d idle sessions", quickSessions)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no cell matches %q", pattern)
	}
	return out, nil
}

// metric is one figure a cell produces per server and round.
type metric struct {
	name   string // "" for the cell's only figure
	unit   string
	higher bool // higher is better
}

func (c *cell) metrics() []metric {
	switch c.measure {
	case mRate:
		if c.cpu {
			return []metric{{"", "sessions/s", true}, {"server CPU per session", "ms", false}}
		}
		return []metric{{"", "sessions/s", true}}
	case mFirstByte:
		return []metric{{"p50", "ms", false}, {"p99", "ms", false}}
	case mBulkUp, mBulkEcho:
		return []metric{{"", "MiB/s", true}}
	}
	m := []metric{{"per session", "KiB", false}}
	if c.fixed {
		m = append(m, metric{"server alone", "MiB", false})
	}
	return m
}

// argv is the program's command line; dir holds the helper scripts.
// The front cells have none.
func (p program) argv(bin, dir string) []string {
	if p.backend() {
		return nil
	}
	switch p {
	case progSMTP:
		return []string{filepath.Join(bin, "ucspitls-smtpd"), "bench.example"}
	case progFirstByte:
		return []string{"/bin/echo"}
	case progDiscard:
		return []string{filepath.Join(dir, "discard")}
	case progEcho:
		return []string{"/bin/cat"}
	}
	return []string{"/bin/true"}
}

// writeScripts makes the programs that need a shell.
func writeScripts(dir string) error {
	return os.WriteFile(filepath.Join(dir, "discard"), []byte("#!/bin/sh\nexec cat >/dev/null\n"), 0o755)
}

func (c *cell) kind() load.Kind {
	switch c.prog {
	case progSMTP:
		return load.SMTP
	case progFirstByte:
		return load.FirstByte
	}
	return load.Close
}

// sample is one round's figures for one server, in metrics() order.
type sample struct {
	values []float64
	curve  string // the key exchange agreed, for TLS sessions
	note   string // what else the round showed: failures, memory by process
}

// timing bounds each kind of round.
type timing struct {
	duration time.Duration // rate, first byte and bulk rounds
	hold     time.Duration // opening one idle session
}

// measureOnce runs one round of c against s.
func measureOnce(ctx context.Context, c *cell, s *server, tm timing) (*sample, error) {
	switch c.measure {
	case mRate, mFirstByte:
		return sessions(ctx, c, s, tm)
	case mBulkUp:
		return bulk(ctx, s, load.Upload, tm)
	case mBulkEcho:
		return bulk(ctx, s, load.Echo, tm)
	}
	return idleMemory(ctx, c, s, tm)
}

func sessions(ctx context.Context, c *cell, s *server, tm timing) (*sample, error) {
	before, err := treeCPU(s.pid())
	if err != nil {
		return nil, err
	}
	r, err := load.Sessions(ctx, s.target, load.Options{Kind: c.kind(), Clients: max(c.clients, 1), Limit: tm.duration})
	if err != nil {
		return nil, err
	}
	if r.Sessions == 0 && r.FirstErr != nil {
		return nil, fmt.Errorf("no session completed; %d failed, the first with: %w", r.Errors, r.FirstErr)
	}
	if r.Sessions == 0 {
		return nil, fmt.Errorf("no session completed within %v", tm.duration)
	}
	sm := &sample{}
	if r.Curve != 0 {
		sm.curve = r.Curve.String()
	}
	if r.Errors > 0 {
		sm.note = fmt.Sprintf("%d sessions failed, the first with: %v", r.Errors, r.FirstErr)
	}
	if c.resume {
		sm.note = strings.TrimPrefix(sm.note+fmt.Sprintf("; %d of %d sessions resumed", r.Resumed, r.Sessions), "; ")
	}
	if c.measure == mFirstByte {
		sm.values = []float64{ms(r.Percentile(50)), ms(r.Percentile(99))}
		return sm, nil
	}
	sm.values = []float64{r.Rate()}
	if c.cpu {
		return sm, addCPU(sm, s, before, r.Sessions)
	}
	return sm, nil
}

// addCPU waits for the round's processes to be reaped, so that their
// time is counted, and adds the server's CPU time per session.
func addCPU(sm *sample, s *server, before *cpuUse, sessions int) error {
	if _, _, err := s.settle(); err != nil {
		return err
	}
	after, err := treeCPU(s.pid())
	if err != nil {
		return err
	}
	per := func(d time.Duration) float64 { return ms(d) / float64(sessions) }
	sm.values = append(sm.values, per(after.Total-before.Total))
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(after.ByName)) {
		if d := after.ByName[name] - before.ByName[name]; d > 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f ms", name, per(d)))
		}
	}
	sm.note = strings.TrimPrefix(sm.note+"; CPU per session by process: "+strings.Join(parts, ", "), "; ")
	return nil
}

func ms(d time.Duration) float64 { return d.Seconds() * 1000 }

func bulk(ctx context.Context, s *server, dir load.Direction, tm timing) (*sample, error) {
	r, err := load.Bulk(ctx, s.target, dir, tm.duration, 0)
	if err != nil {
		return nil, err
	}
	return &sample{values: []float64{r.MiBps()}}, nil
}

// memSettle lets freshly started processes finish starting (a Go
// runtime's background work, a relay's first buffers) before PSS is read.
const memSettle = 300 * time.Millisecond

// idleMemory holds c.sessions idle sessions and reads the PSS of the
// server's whole process tree with them and without: the difference per
// session is what a session costs, whichever process pays it (a worker
// and a program for sslserver; threads in one process for stunnel). The
// server alone is its tree as it was just after it started, before the
// rounds' sessions left their traces in its heap.
func idleMemory(ctx context.Context, c *cell, s *server, tm timing) (*sample, error) {
	before, err := treePSS(s.pid())
	if err != nil {
		return nil, err
	}
	h, err := load.Hold(ctx, s.target, c.sessions, tm.hold)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	time.Sleep(memSettle)
	after, err := treePSS(s.pid())
	if err != nil {
		return nil, err
	}
	n := float64(c.sessions)
	sm := &sample{values: []float64{float64(after.KiB-before.KiB) / n}, note: perName(before, after, c.sessions)}
	if c.fixed {
		sm.values = append(sm.values, float64(s.idleKiB)/1024)
	}
	return sm, nil
}

// perName says which processes the memory of a session is in.
func perName(before, after *memory, n int) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(after.ByName)) {
		if d := after.ByName[name] - before.ByName[name]; d != 0 {
			parts = append(parts, fmt.Sprintf("%s %+d KiB", name, d/int64(n)))
		}
	}
	return fmt.Sprintf("%d more processes for %d sessions; PSS per session by process: %s",
		after.Procs-before.Procs, n, strings.Join(parts, ", "))
}
