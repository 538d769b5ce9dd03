package load

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is what one session does.
type Kind int

const (
	// Close: handshake, then read until the server closes (a program
	// such as /bin/true that exits at once).
	Close Kind = iota
	// FirstByte: like Close, and the session's latency is from the start
	// of the dial to the first decrypted byte (a program that writes a
	// byte at once).
	FirstByte
	// SMTP: greeting, EHLO, STARTTLS, handshake, EHLO, QUIT, then read
	// until the server closes. In plaintext (Target.TLS nil) STARTTLS and
	// the second EHLO are left out.
	SMTP
)

var kindNames = []string{"close", "firstbyte", "smtp"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, error) {
	if i := slices.Index(kindNames, s); i >= 0 {
		return Kind(i), nil
	}
	return 0, fmt.Errorf("unknown session kind %q (want one of %q)", s, kindNames)
}

// Options bound a run of sessions.
type Options struct {
	Kind    Kind
	Clients int           // concurrent clients, each running sessions back to back
	Limit   time.Duration // the run stops starting sessions after this
	Max     int           // and after this many sessions in all (0: 1e6)
	// Timeout bounds one session (0: 10 s); the run's end cuts it short
	// too.
	Timeout time.Duration
}

const (
	defaultMax     = 1_000_000
	defaultTimeout = 10 * time.Second
)

// Result is what a run of sessions did.
type Result struct {
	Sessions  int             // completed before the run's end
	Errors    int             // failed before the run's end
	FirstErr  error           // the first failure, for the report
	Elapsed   time.Duration   // from the start to the run's end
	Latencies []time.Duration // per completed session: dial to end, or to first byte
	Curve     tls.CurveID     // the key exchange of the last TLS session
	Resumed   int             // completed sessions whose TLS was resumed (a session ticket)
}

// tlsInfo is what a session reports of its handshake.
type tlsInfo struct {
	curve   tls.CurveID
	resumed bool
}

func infoOf(tc *tls.Conn) tlsInfo {
	cs := tc.ConnectionState()
	return tlsInfo{curve: cs.CurveID, resumed: cs.DidResume}
}

// Rate is completed sessions per second.
func (r *Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sessions) / r.Elapsed.Seconds()
}

// Percentile returns the p-th percentile (0 < p <= 100) of the
// latencies, by the nearest-rank method; 0 without any.
func (r *Result) Percentile(p float64) time.Duration {
	return Percentile(r.Latencies, p)
}

// Percentile is the nearest-rank p-th percentile of d; it sorts d.
func Percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	rank := int(p/100*float64(len(d))+0.999999) - 1
	return d[min(max(rank, 0), len(d)-1)]
}

// run is the state shared by a run's clients.
type run struct {
	t       Target
	o       Options
	end     time.Time
	started atomic.Int64
	mu      sync.Mutex
	res     Result
}

// Sessions runs o.Clients clients against t until o.Limit has passed,
// o.Max sessions have started, or ctx is done. Sessions still running at
// the end are cut off and counted neither as done nor as failed.
func Sessions(ctx context.Context, t Target, o Options) (*Result, error) {
	if o.Clients < 1 || o.Limit <= 0 {
		return nil, fmt.Errorf("need at least one client and a time limit, have %d and %v", o.Clients, o.Limit)
	}
	if o.Max <= 0 {
		o.Max = defaultMax
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	start := time.Now()
	r := &run{t: t, o: o, end: start.Add(o.Limit)}
	ctx, cancel := context.WithDeadline(ctx, r.end)
	defer cancel()
	var wg sync.WaitGroup
	for range o.Clients {
		wg.Add(1)
		go r.client(ctx, &wg)
	}
	wg.Wait()
	r.res.Elapsed = min(time.Since(start), o.Limit)
	return &r.res, nil
}

// client runs sessions back to back until the run ends.
func (r *run) client(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	for ctx.Err() == nil && r.started.Add(1) <= int64(r.o.Max) {
		start := time.Now()
		lat, info, err := r.session(ctx, start)
		r.record(start, lat, info, err)
	}
}

func (r *run) record(start time.Time, lat time.Duration, info tlsInfo, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case time.Now().After(r.end):
		// Cut off by the run's end, or finished just after it.
	case err != nil:
		r.res.Errors++
		if r.res.FirstErr == nil {
			r.res.FirstErr = err
		}
	default:
		r.res.Sessions++
		r.res.Latencies = append(r.res.Latencies, lat)
		if info.curve != 0 {
			r.res.Curve = info.curve
		}
		if info.resumed {
			r.res.Resumed++
		}
	}
}

// session runs one session and returns its latency.
func (r *run) session(ctx context.Context, start time.Time) (time.Duration, tlsInfo, error) {
	deadline := start.Add(r.o.Timeout)
	if deadline.After(r.end) {
		deadline = r.end
	}
	c, err := dial(r.t.Addr, deadline)
	if err != nil {
		return 0, tlsInfo{}, err
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	defer c.Close()
	if r.o.Kind == SMTP {
		return smtpSession(c, r.t.TLS, start)
	}
	return closeSession(c, r.t.TLS, start, r.o.Kind == FirstByte)
}

// closeSession: handshake (unless plaintext), then read to the end; with
// firstByte the latency ends at the first byte, which must come.
func closeSession(c *net.TCPConn, cfg *tls.Config, start time.Time, firstByte bool) (time.Duration, tlsInfo, error) {
	var conn io.ReadWriteCloser = c
	var info tlsInfo
	if cfg != nil {
		tc, err := handshake(c, cfg)
		if err != nil {
			return 0, info, err
		}
		defer tc.Close()
		conn, info = tc, infoOf(tc)
	}
	var lat time.Duration
	if firstByte {
		var b [1]byte
		if _, err := io.ReadFull(conn, b[:]); err != nil {
			return 0, info, fmt.Errorf("waiting for the program's first byte: %w", err)
		}
		lat = time.Since(start)
	}
	if err := drain(conn); err != nil {
		return 0, info, err
	}
	if !firstByte {
		lat = time.Since(start)
	}
	return lat, info, nil
}

func handshake(c net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	tc := tls.Client(c, cfg)
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	return tc, nil
}

// drain reads until the server ends the session. A TCP FIN without
// close_notify counts as an end too: the program is gone either way.
func drain(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	if err == nil || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("server did not end the session: %w", err)
	}
	return fmt.Errorf("reading to the end: %w", err)
}

// smtpSession talks SMTP, through STARTTLS unless cfg is nil.
func smtpSession(c *net.TCPConn, cfg *tls.Config, start time.Time) (time.Duration, tlsInfo, error) {
	s := &smtpConn{rw: c, r: bufio.NewReader(c)}
	var info tlsInfo
	err := s.steps([]smtpStep{{"", "220"}, {"EHLO bench.example", "250"}})
	if err != nil {
		return 0, info, err
	}
	if cfg != nil {
		tc, err := s.startTLS(c, cfg)
		if err != nil {
			return 0, info, err
		}
		defer tc.Close()
		info = infoOf(tc)
	}
	if err := s.steps([]smtpStep{{"QUIT", "221"}}); err != nil {
		return 0, info, err
	}
	if err := drain(s.r); err != nil {
		return 0, info, err
	}
	return time.Since(start), info, nil
}
