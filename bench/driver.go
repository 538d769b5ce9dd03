package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ucspi-tls/sslserver/bench/load"
)

// config is a run's settings, from the command line.
type config struct {
	quick    bool
	rounds   int
	duration time.Duration
	servers  []string
	cells    string
	bin      string
	deps     string // the install script, "" to install nothing
	appendTo string
	keep     bool
	command  string
}

// driver runs the cells against the variants and keeps the report.
type driver struct {
	cfg      *config
	tools    tools
	variants []*variant
	certs    map[keyType]*certFiles
	dir      string
	tm       timing
	rep      *report
	log      io.Writer
	backend  string // host:port of the running cell's backend, in the front cells

	mu   sync.Mutex
	live map[*server]bool // started and not yet stopped
}

// run is the whole load test; it returns the report's text.
func run(ctx context.Context, cfg *config, log io.Writer) (string, error) {
	d := &driver{cfg: cfg, log: log, live: map[*server]bool{},
		tm: timing{duration: cfg.duration, hold: 30 * time.Second}}
	defer d.cleanup()
	if err := d.prepare(); err != nil {
		return "", err
	}
	cs, err := selectCells(cfg.quick, cfg.cells)
	if err != nil {
		return "", err
	}
	for i := range cs {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		d.runCell(ctx, &cs[i], i+1, len(cs))
	}
	return d.rep.markdown(), nil
}

// prepare installs what is missing, finds the tools, makes the
// certificates and the scripts.
func (d *driver) prepare() error {
	var all []*variant
	for _, s := range d.cfg.servers {
		v, err := parseVariant(s)
		if err != nil {
			return err
		}
		all = append(all, v)
	}
	d.installDeps(all)
	if err := d.findTools(); err != nil {
		return err
	}
	d.rep = &report{rounds: d.cfg.rounds, duration: d.cfg.duration, command: d.cfg.command, started: time.Now()}
	if !d.cfg.quick {
		d.rep.bulkExtra = bulkExtra
	}
	for _, v := range all {
		if err := v.available(&d.tools); err != nil {
			d.rep.note(fmt.Sprintf("%s left out: %v", v.name, err))
			fmt.Fprintf(d.log, "sslbench: %s left out: %v\n", v.name, err)
			continue
		}
		d.variants = append(d.variants, v)
		d.rep.variants = append(d.rep.variants, v.name)
	}
	if len(d.variants) == 0 {
		return fmt.Errorf("no server to measure")
	}
	return d.makeFiles()
}

// installDeps runs the project's installer for the peers' packages; it
// warns and goes on when that fails (the variant is then left out).
func (d *driver) installDeps(vs []*variant) {
	pkgs := packages(vs)
	if d.cfg.deps == "" || len(pkgs) == 0 {
		return
	}
	cmd := exec.Command(d.cfg.deps, pkgs...)
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(d.log, "sslbench: warning: %s %s: %v\n", d.cfg.deps, strings.Join(pkgs, " "), err)
	}
}

func (d *driver) findTools() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	d.tools = tools{bin: d.cfg.bin, self: self, uid: 65534, gid: 65534}
	if u, err := user.Lookup("nobody"); err == nil {
		d.tools.uid, _ = strconv.Atoi(u.Uid)
		d.tools.gid, _ = strconv.Atoi(u.Gid)
	}
	return nil
}

func (d *driver) makeFiles() error {
	dir, err := os.MkdirTemp("", "sslbench-")
	if err != nil {
		return err
	}
	d.dir = dir
	// The servers read these as root; the programs never see them.
	d.certs = map[keyType]*certFiles{}
	for _, k := range []keyType{ecdsaP256, rsa2048} {
		if d.certs[k], err = makeCert(dir, k); err != nil {
			return err
		}
	}
	return writeScripts(dir)
}

// runCell measures every variant that can run c, alternating: round 1
// of each, then round 2 of each, so that a machine whose speed drifts
// still gives comparable figures.
func (d *driver) runCell(ctx context.Context, c *cell, n, of int) {
	rows := d.addRows(c)
	if c.prog.backend() {
		b, err := startBackend(c.prog)
		if err != nil {
			d.rep.note(fmt.Sprintf("%s: no backend: %v", c.name, err))
			return
		}
		defer b.stop()
		d.backend = b.addr()
	}
	servers := d.startServers(ctx, c, rows)
	defer d.stopServers(servers)
	if c.measure == mRate || c.measure == mFirstByte {
		d.warmUp(ctx, c, servers)
	}
	rounds := c.rounds
	if rounds == 0 {
		rounds = d.cfg.rounds
		if !d.cfg.quick {
			rounds += c.extra
		}
	}
	for r := 1; r <= rounds && ctx.Err() == nil; r++ {
		for _, s := range servers {
			if !s.failed && ctx.Err() == nil {
				d.round(ctx, c, s, rows, r == 1)
				fmt.Fprintf(d.log, "sslbench: %4.0fs [%d/%d] %s, round %d/%d, %s: %s\n",
					time.Since(d.rep.started).Seconds(), n, of, c.name, r, rounds, s.v.name, lastValues(rows, s))
			}
		}
	}
}

func (d *driver) addRows(c *cell) []*row {
	var rows []*row
	for _, m := range c.metrics() {
		r := newRow(c, m)
		d.rep.rows = append(d.rep.rows, r)
		rows = append(rows, r)
	}
	return rows
}

// round measures s once and waits for its sessions to end. Notes are
// kept from the first round only.
func (d *driver) round(ctx context.Context, c *cell, s *server, rows []*row, first bool) {
	sm, err := measureOnce(ctx, c, s, d.tm)
	if err != nil {
		s.failed = true
		for _, r := range rows {
			r.failed[s.v.name] = err.Error()
		}
		d.rep.note(fmt.Sprintf("%s, %s: failed: %v", c.name, s.v.name, err))
	} else {
		for i, r := range rows {
			r.samples[s.v.name] = append(r.samples[s.v.name], sm.values[i])
		}
		if sm.note != "" && first {
			d.rep.note(fmt.Sprintf("%s, %s: %s", c.name, s.v.name, sm.note))
		}
		if sm.curve != "" {
			d.rep.curve(c.x25519, s.v.name, sm.curve)
		}
	}
	if left, late, err := s.settle(); err == nil && late {
		fmt.Fprintf(d.log, "sslbench: warning: %s still has %d processes (idle: %d)\n", s.v.name, left, s.base)
	}
}

func lastValues(rows []*row, s *server) string {
	var out []string
	for _, r := range rows {
		if msg := r.failed[s.v.name]; msg != "" {
			return "failed: " + msg
		}
		v := r.samples[s.v.name]
		out = append(out, formatValue(v[len(v)-1])+" "+r.unit)
	}
	return strings.Join(out, ", ")
}

// warmUp runs each server briefly, unrecorded: page cache, first
// allocations, the key holder's first signature.
func (d *driver) warmUp(ctx context.Context, c *cell, servers []*server) {
	tm := d.tm
	tm.duration = min(d.tm.duration/4, 300*time.Millisecond)
	for _, s := range servers {
		measureOnce(ctx, c, s, tm)
		s.settle()
	}
}

// startServers starts every variant for c, each on its own port, all at
// once; one that cannot start is marked failed in c's rows.
func (d *driver) startServers(ctx context.Context, c *cell, rows []*row) []*server {
	started := make([]*server, len(d.variants))
	errs := make([]error, len(d.variants))
	var wg sync.WaitGroup
	for i, v := range d.variants {
		if !v.serves(c) {
			markRows(rows, v.name, "")
			continue
		}
		wg.Add(1)
		go d.startInto(ctx, v, c, &started[i], &errs[i], &wg)
	}
	wg.Wait()
	var out []*server
	for i, v := range d.variants {
		if errs[i] != nil {
			markRows(rows, v.name, errs[i].Error())
			d.rep.note(fmt.Sprintf("%s, %s: %v", c.name, v.name, errs[i]))
			fmt.Fprintf(d.log, "sslbench: %s: %v\n", v.name, errs[i])
		}
		if started[i] != nil {
			out = append(out, started[i])
		}
	}
	return out
}

func (d *driver) startInto(ctx context.Context, v *variant, c *cell, s **server, err *error, wg *sync.WaitGroup) {
	defer wg.Done()
	*s, *err = d.startOne(ctx, v, d.setupFor(c), c)
}

// markRows: an empty reason means the variant cannot do this at all.
func markRows(rows []*row, variant, reason string) {
	for _, r := range rows {
		if reason == "" {
			r.na[variant] = true
		} else {
			r.failed[variant] = reason
		}
	}
}

func (d *driver) setupFor(c *cell) *setup {
	st := &setup{dir: d.dir, cert: d.certs[c.key], program: c.prog.argv(d.tools.bin, d.dir),
		starttls: c.prog == progSMTP, maxConn: 2000}
	if c.prog.backend() {
		st.backend, st.closes = d.backend, c.prog == progBackendClose
	}
	return st
}

func (d *driver) startOne(ctx context.Context, v *variant, st *setup, c *cell) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	st.port, st.addr = port, fmt.Sprintf("127.0.0.1:%d", port)
	t := load.Target{Addr: st.addr}
	if v.kind.tls {
		t.TLS = load.ClientConfig(st.cert.Leaf, c.x25519)
		if c.resume {
			t.TLS.ClientSessionCache = tls.NewLRUClientSessionCache(64)
		}
	}
	s, err := startServer(ctx, v, &d.tools, st, c, t)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.live[s] = true
	d.mu.Unlock()
	return s, nil
}

// stopServers stops them all at once.
func (d *driver) stopServers(servers []*server) {
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go d.stopInto(s, &wg)
	}
	wg.Wait()
}

func (d *driver) stopInto(s *server, wg *sync.WaitGroup) {
	defer wg.Done()
	d.stopOne(s)
}

func (d *driver) stopOne(s *server) {
	d.mu.Lock()
	live := d.live[s]
	delete(d.live, s)
	d.mu.Unlock()
	if live {
		s.stop()
	}
}

// cleanup stops the servers, then removes their files unless -keep.
func (d *driver) cleanup() {
	d.stopAll()
	if d.dir == "" {
		return
	}
	if d.cfg.keep {
		fmt.Fprintf(d.log, "sslbench: configuration and server logs kept in %s\n", d.dir)
		return
	}
	os.RemoveAll(d.dir)
}

// stopAll ends whatever is still running: after a failure, or a signal.
func (d *driver) stopAll() {
	d.mu.Lock()
	var left []*server
	for s := range d.live {
		left = append(left, s)
	}
	d.mu.Unlock()
	d.stopServers(left)
}
