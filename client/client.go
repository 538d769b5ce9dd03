// Package client is sslclient: it connects to a TLS server and runs a
// program that reads what the server sends on fd 6 and writes to it on
// fd 7, as under tcpclient. TLS is done by a separate process (the
// sslclient binary re-executed as protocol.ClientWorkerArgv0, see
// tlsworker.ClientWorkerMain), confined before it reads a byte from the
// server, so the program never shares an address space with the TLS
// state or the client key. With -y the program starts in plaintext on
// fds 6 and 7 and turns TLS on itself through $SSLCTLFD: the client side
// of UCSPI-TLS.
//
//	os.Exit(client.Main(os.Args[1:], os.Stdout, os.Stderr))
//
// See docs/sslclient.md.
package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/env"
	"github.com/ucspi-tls/sslserver/internal/getopt"
	"github.com/ucspi-tls/sslserver/protocol"
	"github.com/ucspi-tls/sslserver/tlsworker"
)

// invocation is one sslclient run.
type invocation struct {
	opt    *Options
	log    *logger
	stderr *os.File
}

// Main runs sslclient with args (without the program name) and returns
// the exit code: the program's, 100 for a usage error, 111 for a
// temporary failure (no connection, a failed handshake or verification).
func Main(args []string, stdout, stderr *os.File) int {
	opt, err := ParseArgs(args)
	if errors.Is(err, getopt.ErrHelp) {
		fmt.Fprint(stdout, Help)
		return protocol.ExitOK
	}
	if err != nil {
		getopt.PrintUsage(stderr, "sslclient", err)
		return protocol.ExitUsage
	}
	c := &invocation{opt: opt, log: newLogger(stderr, opt.Verbosity), stderr: stderr}
	// Descriptors inherited from the caller must not reach the TLS
	// process; the program gets 0, 1, 2 and its own map.
	if err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return c.fatal(fmt.Errorf("unable to mark inherited descriptors close-on-exec: %w", err))
	}
	if err := tlsworker.CanConfine(); err != nil {
		return c.fatal(err)
	}
	return c.run()
}

func (c *invocation) fatal(err error) int {
	c.log.Fatal("%v", err)
	return protocol.ExitTemp
}

func (c *invocation) run() int {
	s, err := loadSettings(c.opt, os.Getenv, c.log)
	if err != nil {
		return c.fatal(err)
	}
	defer s.cleanup()
	if c.opt.Passphrase {
		if err := s.readPassphrase(); err != nil {
			return c.fatal(err)
		}
	}
	c.warnUnverified()
	conn, ep, err := c.connect()
	if err != nil {
		return c.fatal(err)
	}
	ss := &session{c: c, s: s, ep: ep}
	return ss.run(conn)
}

// warnUnverified says, on every run, what -X and -N give up.
func (c *invocation) warnUnverified() {
	switch {
	case !c.opt.Verify:
		c.log.Warning("-X: the server's certificate is not verified")
	case !c.opt.NameCheck:
		c.log.Warning("-N: the server's certificate is not checked against the name %q", c.opt.Host)
	}
}

// connect resolves the host, connects with -T x+y and returns the socket
// as a blocking file with the connection's endpoints.
func (c *invocation) connect() (*os.File, env.Endpoints, error) {
	ctx := context.Background()
	port, err := parsePort(c.opt.Port)
	if err != nil {
		return nil, env.Endpoints{}, err
	}
	addrs, err := resolveHost(ctx, c.opt.Host, c.opt.Family)
	if err != nil {
		return nil, env.Endpoints{}, err
	}
	local, err := localAddr(c.opt.LocalIP, c.opt.LocalPort)
	if err != nil {
		return nil, env.Endpoints{}, err
	}
	tc, err := connectAll(addrs, port, c.opt.Connect, netDialer{local: local}.dial, c.log)
	if err != nil {
		return nil, env.Endpoints{}, err
	}
	ep := endpoints(tc)
	f, err := connFile(tc, c.opt.NoDelay)
	if err != nil {
		return nil, env.Endpoints{}, fmt.Errorf("unable to take over the connection: %w", err)
	}
	c.log.Info("connected to %s port %d from %s port %d", ep.RemoteIP, ep.RemotePort, ep.LocalIP, ep.LocalPort)
	c.identify(ctx, &ep)
	return f, ep, nil
}

func endpoints(c *net.TCPConn) env.Endpoints {
	l := c.LocalAddr().(*net.TCPAddr).AddrPort()
	r := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	return env.Endpoints{LocalIP: l.Addr().Unmap(), LocalPort: l.Port(), RemoteIP: r.Addr().Unmap(), RemotePort: r.Port()}
}

// identify fills in the host names: -l (or the local address's PTR) and,
// with -h, the server's PTR. sslclient makes no IDENT lookup, so
// SSLREMOTEINFO stays unset.
func (c *invocation) identify(ctx context.Context, ep *env.Endpoints) {
	ep.LocalHost = localHost(ctx, c.opt.LocalName, ep.LocalIP)
	if c.opt.RemoteLookup {
		ep.RemoteHost = ptrName(ctx, ep.RemoteIP)
	}
}

// errFailed marks a session the TLS process reported as failed; the
// reason is already logged.
var errFailed = errors.New("TLS process failed")
