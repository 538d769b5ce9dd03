package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// row is one figure of one cell for every variant.
type row struct {
	label   string
	unit    string
	higher  bool
	samples map[string][]float64 // per variant, one per round
	failed  map[string]string    // variant: why it has no figure
	na      map[string]bool      // variant cannot run this cell
}

func newRow(c *cell, m metric) *row {
	label := c.name
	if m.name != "" {
		label += ", " + m.name
	}
	return &row{label: label, unit: m.unit, higher: m.higher,
		samples: map[string][]float64{}, failed: map[string]string{}, na: map[string]bool{}}
}

// median of the rounds; ok is false without any.
func (r *row) median(variant string) (float64, bool) {
	return median(r.samples[variant])
}

func median(v []float64) (float64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2], true
	} else {
		return (s[n/2-1] + s[n/2]) / 2, true
	}
}

// report is the whole run's outcome.
type report struct {
	variants  []string
	rows      []*row
	notes     []string
	seen      map[string]bool        // notes already listed
	curves    [2]map[string][]string // per variant, with Go's default key shares / X25519 pinned
	rounds    int
	bulkExtra int // the bulk cells' extra rounds in this run
	duration  time.Duration
	command   string
	started   time.Time
}

// note adds a line to the notes once.
func (r *report) note(s string) {
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	if !r.seen[s] {
		r.seen[s] = true
		r.notes = append(r.notes, s)
	}
}

// curve records a key exchange a variant agreed on.
func (r *report) curve(pinned bool, variant, name string) {
	i := 0
	if pinned {
		i = 1
	}
	if r.curves[i] == nil {
		r.curves[i] = map[string][]string{}
	}
	if !slices.Contains(r.curves[i][variant], name) {
		r.curves[i][variant] = append(r.curves[i][variant], name)
	}
}

func (r *report) curveNotes() []string {
	var out []string
	for i, what := range []string{"with Go's default client key shares", "with the client's key share pinned to X25519"} {
		var parts []string
		for _, v := range r.variants {
			if names := r.curves[i][v]; len(names) > 0 {
				parts = append(parts, v+" "+strings.Join(names, "/"))
			}
		}
		if len(parts) > 0 {
			out = append(out, "key exchange "+what+": "+strings.Join(parts, ", "))
		}
	}
	return out
}

// noisy marks a median whose rounds spread by more than half of it.
const noisy = 0.5

// cellText is how a median appears in the table.
func (r *row) cellText(v string) string {
	switch {
	case r.na[v]:
		return "n/a"
	case r.failed[v] != "":
		return "failed"
	}
	m, ok := r.median(v)
	if !ok {
		return "-"
	}
	if lo, hi := slices.Min(r.samples[v]), slices.Max(r.samples[v]); m > 0 && (hi-lo)/m > noisy {
		return formatValue(m) + "~"
	}
	return formatValue(m)
}

func formatValue(v float64) string {
	switch a := max(v, -v); {
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// ratio is v's median over ref's, or "" when either is missing.
func (r *row) ratio(v, ref string) string {
	a, ok1 := r.median(v)
	b, ok2 := r.median(ref)
	if !ok1 || !ok2 || b == 0 || r.failed[v] != "" || r.failed[ref] != "" {
		return "-"
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64)
}

// markdown renders the report: machine, medians, ratios, notes.
func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Run of %s\n\n", r.started.UTC().Format("2006-01-02 15:04 MST"))
	b.WriteString(machineInfo(r.variants))
	fmt.Fprintf(&b, "- command: `%s`\n", r.command)
	fmt.Fprintf(&b, "- each figure: median of %d alternating rounds (%d for bulk; %v each for rate, first byte and bulk); "+
		"~ marks one whose rounds spread by more than half of it\n\n", r.rounds, r.rounds+r.bulkExtra, r.duration)
	r.mediansTable(&b)
	r.ratiosTable(&b)
	notes := append(r.curveNotes(), r.notes...)
	if len(notes) > 0 {
		b.WriteString("Notes:\n\n")
		for _, n := range notes {
			b.WriteString("- " + n + "\n")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (r *report) mediansTable(b *strings.Builder) {
	b.WriteString("| measurement | unit | " + strings.Join(r.variants, " | ") + " |\n")
	b.WriteString("|---|---|" + strings.Repeat("---:|", len(r.variants)) + "\n")
	for _, row := range r.rows {
		cells := []string{row.label, row.unit}
		for _, v := range r.variants {
			cells = append(cells, row.cellText(v))
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	b.WriteString("\n")
}

// ratiosTable: each variant's median over stunnel4's and over the
// ceiling's, for the same row. Above 1 is better for rates and
// throughput, worse for times and memory.
func (r *report) ratiosTable(b *strings.Builder) {
	fmt.Fprintf(b, "Ratios, each figure over %s's / over the %s's:\n\n", refPeer, refCeiling)
	b.WriteString("| measurement | " + strings.Join(r.variants, " | ") + " |\n")
	b.WriteString("|---|" + strings.Repeat("---:|", len(r.variants)) + "\n")
	for _, row := range r.rows {
		cells := []string{row.label}
		for _, v := range r.variants {
			cells = append(cells, row.ratio(v, refPeer)+" / "+row.ratio(v, refCeiling))
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	b.WriteString("\n")
}

// machineInfo: what the figures were measured on.
func machineInfo(variants []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "- machine: %s, nproc %d, %s\n", cpuModel(), runtime.NumCPU(), memTotal())
	fmt.Fprintf(&b, "- kernel: %s; Go: %s\n", kernel(), runtime.Version())
	if v := peerVersions(variants); v != "" {
		fmt.Fprintf(&b, "- peers: %s\n", v)
	}
	return b.String()
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return fmt.Sprintf("%.0f GiB memory", float64(kib)/(1<<20))
		}
	}
	return "unknown memory"
}

func kernel() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
}

// peerVersions asks dpkg for the versions of the peers' packages and
// OpenSSL's library, which stunnel and socat use.
func peerVersions(variants []string) string {
	var out []string
	pkgs := []string{"libssl3"}
	for _, name := range variants {
		if v, err := parseVariant(name); err == nil && v.kind.pkg != "" && !slices.Contains(pkgs, v.kind.pkg) {
			pkgs = append(pkgs, v.kind.pkg)
		}
	}
	for _, p := range pkgs {
		ver, err := exec.Command("dpkg-query", "-W", "-f=${Version}", p).Output()
		if err == nil && len(bytes.TrimSpace(ver)) > 0 {
			out = append(out, p+" "+string(bytes.TrimSpace(ver)))
		}
	}
	return strings.Join(out, ", ")
}
