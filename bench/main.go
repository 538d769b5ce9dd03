package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ucspi-tls/sslserver/bench/ceiling"
	"github.com/ucspi-tls/sslserver/bench/load"
	"github.com/ucspi-tls/sslserver/internal/getopt"
	"github.com/ucspi-tls/sslserver/protocol"
)

const usage = `usage:
  sslbench run [-quick] [-rounds n] [-duration d] [-servers "a;b -x;..."] [-cells re] [-append file]
  sslbench ceiling [-n] -cert file -key file -addr host:port [--] program [args]
  sslbench load [-kind close|firstbyte|smtp] [-c n] [-d duration] [-x25519] (-cert file | -plain) host:port
  sslbench -h | --help

Environment: BENCH_QUICK=1 is -quick for run. See docs/performance.md.`

// Main runs sslbench with args (without the program name) and returns
// the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		getopt.PrintUsage(stderr, "sslbench", "usage: sslbench run|ceiling|load ...")
		return protocol.ExitUsage
	}
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(stdout, usage)
		return protocol.ExitOK
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "run":
		err = runMain(ctx, args[1:], stdout, stderr)
	case "ceiling":
		err = ceilingMain(ctx, args[1:], stderr)
	case "load":
		err = loadMain(ctx, args[1:], stdout)
	default:
		err = usageError{fmt.Errorf("unknown command %q", args[0])}
	}
	return exitCode(err, stderr)
}

// usageError marks errors of the command line.
type usageError struct{ error }

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return protocol.ExitOK
	}
	var u usageError
	if errors.As(err, &u) || errors.Is(err, flag.ErrHelp) {
		getopt.PrintUsage(stderr, "sslbench", "usage: "+err.Error())
		return protocol.ExitUsage
	}
	fmt.Fprintf(stderr, "sslbench: fatal: %v\n", err)
	return protocol.ExitTemp
}

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	return nil
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := runFlags(args)
	if err != nil {
		return err
	}
	text, err := run(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, "\n"+text)
	if cfg.appendTo != "" {
		return appendFile(cfg.appendTo, text)
	}
	return nil
}

func runFlags(args []string) (*config, error) {
	fs := newFlags("run")
	quick := os.Getenv("BENCH_QUICK") == "1"
	cfg := &config{}
	fs.BoolVar(&cfg.quick, "quick", quick, "a smoke run: few cells, one short round (also BENCH_QUICK=1)")
	fs.IntVar(&cfg.rounds, "rounds", 0, "rounds per cell (default 3, quick 1)")
	fs.DurationVar(&cfg.duration, "duration", 0, "one rate, first-byte or bulk round (default 1.5s, quick 500ms)")
	servers := fs.String("servers", strings.Join(Variants, ";"), "the variants, separated by ';'")
	fs.StringVar(&cfg.cells, "cells", "", "only the cells whose name matches this regular expression")
	fs.StringVar(&cfg.bin, "bin", "bin", "where sslserver and ucspitls-smtpd are")
	fs.StringVar(&cfg.deps, "deps", "scripts/install-test-deps", "installer for the peers' Debian packages (empty: none)")
	fs.StringVar(&cfg.appendTo, "append", "", "also append the report to this file")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the configuration files and server logs")
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	cfg.servers = splitVariants(*servers)
	defaults(cfg)
	cfg.command = commandLine(args)
	return cfg, nil
}

func splitVariants(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ";") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func defaults(cfg *config) {
	rounds, duration := 3, 1500*time.Millisecond
	if cfg.quick {
		rounds, duration = 1, 500*time.Millisecond
	}
	if cfg.rounds <= 0 {
		cfg.rounds = rounds
	}
	if cfg.duration <= 0 {
		cfg.duration = duration
	}
}

// commandLine is how the run was started, for the report.
func commandLine(args []string) string {
	s := strings.TrimSpace("sslbench run " + strings.Join(args, " "))
	if os.Getenv("MAKELEVEL") != "" {
		s = "make bench: " + s
	}
	if os.Getenv("BENCH_QUICK") == "1" {
		s = "BENCH_QUICK=1 " + s
	}
	return s
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString("\n" + text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ceilingMain serves until SIGINT or SIGTERM, then gives running
// sessions a moment.
func ceilingMain(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("ceiling")
	certFile := fs.String("cert", "", "certificate (PEM)")
	keyFile := fs.String("key", "", "private key (PEM)")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	delayed := fs.Bool("n", false, "UCSPI-TLS, as sslserver -n")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 || *certFile == "" {
		return usageError{errors.New("ceiling needs -cert and a program")}
	}
	cfg, err := serverTLS(*certFile, *keyFile)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	s := &ceiling.Server{TLS: cfg, Program: fs.Args(), Delayed: *delayed,
		Log: func(f string, a ...any) { fmt.Fprintf(stderr, "ceiling: "+f+"\n", a...) }}
	return serveUntil(ctx, s, ln)
}

func serveUntil(ctx context.Context, s *ceiling.Server, ln net.Listener) error {
	done := make(chan error, 1)
	go serveInto(s, ln, done)
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	ln.Close()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	return nil
}

func serveInto(s *ceiling.Server, ln net.Listener, done chan<- error) {
	done <- s.Serve(ln)
}

// serverTLS is the ceiling's configuration: what sslserver's worker
// does, in one process.
func serverTLS(certFile, keyFile string) (*tls.Config, error) {
	if keyFile == "" {
		keyFile = certFile
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading %q and %q: %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, SessionTicketsDisabled: true}, nil
}

// loadMain runs one load by hand against any server.
func loadMain(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("load")
	kindName := fs.String("kind", "close", "close, firstbyte or smtp")
	clients := fs.Int("c", 8, "concurrent clients")
	limit := fs.Duration("d", 5*time.Second, "how long")
	x25519 := fs.Bool("x25519", false, "pin the key share to X25519")
	certFile := fs.String("cert", "", "the server's certificate (PEM), which is pinned")
	plain := fs.Bool("plain", false, "no TLS")
	if err := parse(fs, args); err != nil {
		return err
	}
	kind, err := load.ParseKind(*kindName)
	if err != nil || fs.NArg() != 1 || (*certFile == "") == !*plain {
		return usageError{fmt.Errorf("load needs one address, a known -kind, and -cert or -plain: %v", err)}
	}
	t := load.Target{Addr: fs.Arg(0)}
	if !*plain {
		pemText, err := os.ReadFile(*certFile)
		if err != nil {
			return err
		}
		leaf, err := load.LeafDER(pemText)
		if err != nil {
			return fmt.Errorf("%s: %w", *certFile, err)
		}
		t.TLS = load.ClientConfig(leaf, *x25519)
	}
	r, err := load.Sessions(ctx, t, load.Options{Kind: kind, Clients: *clients, Limit: *limit})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d sessions in %v: %.1f/s, p50 %v, p99 %v, %d failed (first: %v)\n",
		r.Sessions, r.Elapsed.Round(time.Millisecond), r.Rate(), r.Percentile(50), r.Percentile(99), r.Errors, r.FirstErr)
	return nil
}
