package supervisor

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ucspi-tls/sslserver/env"
)

// identity does the remote-identity lookups of one process: there is one
// environment, so one resolver and one cache of local names.
type identity struct {
	res        resolver
	resErr     error // a malformed DNSCACHEIP, reported once
	reported   sync.Once
	dnsTimeout time.Duration
	local      nameCache
}

func newIdentity(getenv func(string) string) *identity {
	id := &identity{res: newResolver(getenv), dnsTimeout: dnsTimeout}
	if v := getenv(dnsCacheVar); v != "" {
		_, id.resErr = parseDNSCache(v)
	}
	return id
}

// identities holds the process's identity, made from os.Getenv on first
// use; tests store their own.
var identities atomic.Pointer[identity]

func processIdentity() *identity {
	if id := identities.Load(); id != nil {
		return id
	}
	identities.CompareAndSwap(nil, newIdentity(os.Getenv))
	return identities.Load()
}

// identify fills ep.LocalHost (from -l when given: "0" is none; else a
// PTR lookup of the local IP), ep.RemoteHost and ep.RemoteInfo as
// -h/-H, -p/-P, -r/-R and -t say; what is not found is left "" (unset).
// It is called from the session goroutine, never from the accept loop.
// The questions are asked at once, so the slowest bounds the wait, not
// their sum: DNS by dnsTimeout, IDENT by -t, and everything by ctx. A
// question that ran out of its own time is logged at -v, once.
func (s *Server) identify(ctx context.Context, ep *env.Endpoints) {
	id := processIdentity()
	if id.resErr != nil && (s.opt.LocalName == "" || s.opt.RemoteLookup) {
		id.reported.Do(func() { s.log.Warning("no DNS lookups: %v", id.resErr) })
	}
	for _, slow := range id.fill(ctx, s.opt, ep) {
		s.log.Info("%s", slow)
	}
}

// lookups is one connection's questions and answers. Each goroutine
// writes its own fields; wg orders the writes before the reads. The
// ...Slow fields say a question ran out of its own time (not ctx's).
type lookups struct {
	id                              *identity
	opt                             *Options
	ep                              env.Endpoints
	wg                              sync.WaitGroup
	local, remote, info             string
	localSlow, remoteSlow, infoSlow bool
}

// fill asks the questions and returns a line for each that timed out.
func (id *identity) fill(ctx context.Context, opt *Options, ep *env.Endpoints) []string {
	l := &lookups{id: id, opt: opt, ep: *ep}
	if l.ep.LocalIP.IsValid() && opt.LocalName == "" {
		l.wg.Add(1)
		go l.lookupLocal(ctx)
	}
	if l.ep.RemoteIP.IsValid() && opt.RemoteLookup {
		l.wg.Add(1)
		go l.lookupRemote(ctx)
	}
	// Behind a PROXY sender the client's connection ends at the proxy,
	// not here: its identd knows no connection between its address and
	// ours, so a query could only fail, after up to -t of the session's
	// slot. It is not made.
	if l.ep.RemoteIP.IsValid() && l.ep.LocalIP.IsValid() && opt.Ident && !l.ep.ProxyIP.IsValid() {
		l.wg.Add(1)
		go l.lookupIdent(ctx)
	}
	l.wg.Wait()
	ep.LocalHost = localHost(opt.LocalName, l.local)
	ep.RemoteHost, ep.RemoteInfo = l.remote, l.info
	return l.timeouts()
}

// timeouts words the questions that timed out, for the log.
func (l *lookups) timeouts() []string {
	var out []string
	if l.localSlow {
		out = append(out, fmt.Sprintf("DNS lookup for local address %s timed out after %v", plainAddr(l.ep.LocalIP), l.id.dnsTimeout))
	}
	if l.remoteSlow {
		out = append(out, fmt.Sprintf("DNS lookup for %s timed out after %v", plainAddr(l.ep.RemoteIP), l.id.dnsTimeout))
	}
	if l.infoSlow {
		out = append(out, fmt.Sprintf("IDENT lookup for %s timed out after %v", plainAddr(l.ep.RemoteIP), l.opt.IdentTimeout))
	}
	return out
}

// timedOut: a question that found nothing ran out of its own time, while
// the session (parent) was still waiting for it.
func timedOut(parent, own context.Context, found bool) bool {
	return !found && !expired(parent) && expired(own)
}

// expired: ctx is done, or its deadline has passed (a socket's deadline
// may fire just before the context's timer does).
func expired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// localHost applies -l: "0" is no name, "" the looked-up one.
func localHost(flag, looked string) string {
	switch flag {
	case "0":
		return ""
	case "":
		return looked
	}
	return flag
}

func (l *lookups) lookupLocal(ctx context.Context) {
	defer l.wg.Done()
	l.local, l.localSlow = l.id.localName(ctx, plainAddr(l.ep.LocalIP))
}

func (l *lookups) lookupRemote(session context.Context) {
	defer l.wg.Done()
	ctx, cancel := context.WithTimeout(session, l.id.dnsTimeout)
	defer cancel()
	l.remote = remoteName(ctx, l.id.res, l.ep.RemoteIP, l.opt.Paranoid)
	l.remoteSlow = timedOut(session, ctx, l.remote != "")
}

func (l *lookups) lookupIdent(session context.Context) {
	defer l.wg.Done()
	ctx, cancel := context.WithTimeout(session, l.opt.IdentTimeout)
	defer cancel()
	local := netip.AddrPortFrom(l.ep.LocalIP, l.ep.LocalPort)
	remote := netip.AddrPortFrom(l.ep.RemoteIP, l.ep.RemotePort)
	l.info = identQuery(ctx, local, remote)
	l.infoSlow = timedOut(session, ctx, l.info != "")
}

// localName is ip's name, from the cache or DNS. Answers are cached
// whether found or not, so a dead DNS costs one timeout a minute rather
// than one a connection. A lookup cut short by the session's end is not
// an answer and is not cached. slow says the lookup timed out.
func (id *identity) localName(session context.Context, ip netip.Addr) (name string, slow bool) {
	if name, ok := id.local.get(ip, time.Now()); ok {
		return name, false
	}
	ctx, cancel := context.WithTimeout(session, id.dnsTimeout)
	defer cancel()
	name = ptrName(ctx, id.res, ip)
	if session.Err() == nil {
		id.local.put(ip, name, time.Now())
	}
	return name, timedOut(session, ctx, name != "")
}
