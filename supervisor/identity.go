package supervisor

import (
	"context"
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
// their sum: DNS by dnsTimeout, IDENT by -t, and everything by ctx.
func (s *Server) identify(ctx context.Context, ep *env.Endpoints) {
	id := processIdentity()
	if id.resErr != nil && (s.opt.LocalName == "" || s.opt.RemoteLookup) {
		id.reported.Do(func() { s.log.Warning("no DNS lookups: %v", id.resErr) })
	}
	id.fill(ctx, s.opt, ep)
}

// lookups is one connection's questions and answers. Each goroutine
// writes its own field; wg orders the writes before the reads.
type lookups struct {
	id                  *identity
	opt                 *Options
	ep                  env.Endpoints
	wg                  sync.WaitGroup
	local, remote, info string
}

func (id *identity) fill(ctx context.Context, opt *Options, ep *env.Endpoints) {
	l := &lookups{id: id, opt: opt, ep: *ep}
	if l.ep.LocalIP.IsValid() && opt.LocalName == "" {
		l.wg.Add(1)
		go l.lookupLocal(ctx)
	}
	if l.ep.RemoteIP.IsValid() && opt.RemoteLookup {
		l.wg.Add(1)
		go l.lookupRemote(ctx)
	}
	if l.ep.RemoteIP.IsValid() && l.ep.LocalIP.IsValid() && opt.Ident {
		l.wg.Add(1)
		go l.lookupIdent(ctx)
	}
	l.wg.Wait()
	ep.LocalHost = localHost(opt.LocalName, l.local)
	ep.RemoteHost, ep.RemoteInfo = l.remote, l.info
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
	l.local = l.id.localName(ctx, plainAddr(l.ep.LocalIP))
}

func (l *lookups) lookupRemote(ctx context.Context) {
	defer l.wg.Done()
	ctx, cancel := context.WithTimeout(ctx, l.id.dnsTimeout)
	defer cancel()
	l.remote = remoteName(ctx, l.id.res, l.ep.RemoteIP, l.opt.Paranoid)
}

func (l *lookups) lookupIdent(ctx context.Context) {
	defer l.wg.Done()
	ctx, cancel := context.WithTimeout(ctx, l.opt.IdentTimeout)
	defer cancel()
	local := netip.AddrPortFrom(l.ep.LocalIP, l.ep.LocalPort)
	remote := netip.AddrPortFrom(l.ep.RemoteIP, l.ep.RemotePort)
	l.info = identQuery(ctx, local, remote)
}

// localName is ip's name, from the cache or DNS. Answers are cached
// whether found or not, so a dead DNS costs one timeout a minute rather
// than one a connection. A lookup cut short by the session's end is not
// an answer and is not cached.
func (id *identity) localName(session context.Context, ip netip.Addr) string {
	if name, ok := id.local.get(ip, time.Now()); ok {
		return name
	}
	ctx, cancel := context.WithTimeout(session, id.dnsTimeout)
	defer cancel()
	name := ptrName(ctx, id.res, ip)
	if session.Err() == nil {
		id.local.put(ip, name, time.Now())
	}
	return name
}
