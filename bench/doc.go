// Package bench is sslserver's load-test driver: it measures sslserver
// against its peers in one run, on loopback, and prints a table of
// medians and ratios. "make bench" runs it through cmd/sslbench:
//
//	os.Exit(bench.Main([]string{"run", "-append", "docs/performance.md"}, os.Stdout, os.Stderr))
//
// A run is a list of cells (cells.go): session rate with /bin/true or an
// SMTP program over STARTTLS at 1, 8 and 64 clients, time to the
// program's first byte, bulk throughput, and memory per idle session.
// Every cell starts each server variant (servers.go) on its own port and
// then alternates rounds, one per variant in turn, so that a machine
// whose speed drifts still gives comparable figures; each figure is the
// median of its rounds. The clients are package load; the in-process
// ceiling server is package ceiling, run by "sslbench ceiling" as a
// process of its own so that its memory can be measured like the
// others'.
//
// Every server runs in a process group of its own, and the driver kills
// each group when its cell ends, when the run fails, and on SIGINT or
// SIGTERM; the servers also die with the driver (Pdeathsig).
package bench
