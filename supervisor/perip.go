package supervisor

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/ucspi-tls/sslserver/env"
)

// perIP counts live sessions per remote address, for MAXCONIP. A session
// is counted from admission until it is reaped, so the count is exact
// however sessions end.
type perIP struct {
	limit int // from $MAXCONIP at start; 0: none
	count map[netip.Addr]int
}

// parseMaxConIP reads a MAXCONIP value; empty means no limit.
func parseMaxConIP(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("MAXCONIP=%q is not a number", v)
	}
	return n, nil
}

// limitFor is the client's limit: a rule's MAXCONIP overrides the
// server's. A rule with a malformed value is the server's default.
func (p *perIP) limitFor(ruleEnv []env.Var) int {
	limit := p.limit
	for _, v := range ruleEnv {
		if v.Name == "MAXCONIP" {
			if n, err := parseMaxConIP(v.Value); err == nil {
				limit = n
			}
		}
	}
	return limit
}

// admit counts a session for ip unless that would exceed limit (0: no
// limit). The caller holds the server's lock.
func (p *perIP) admit(ip netip.Addr, limit int) bool {
	if limit > 0 && p.count[ip] >= limit {
		return false
	}
	p.count[ip]++
	return true
}

// release uncounts one session of ip. The caller holds the server's lock.
func (p *perIP) release(ip netip.Addr) {
	if p.count[ip]--; p.count[ip] <= 0 {
		delete(p.count, ip)
	}
}

// admitIP and releaseIP take the server's lock around admit and release.
func (s *Server) admitIP(ip netip.Addr, limit int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perIP.admit(ip, limit)
}

func (s *Server) releaseIP(ip netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.perIP.release(ip)
}
