package supervisor

import (
	"errors"
	"io/fs"

	"github.com/ucspi-tls/sslserver/acl"
	"github.com/ucspi-tls/sslserver/env"
)

// verdict is what the rules say of one client.
type verdict struct {
	deny bool
	env  []env.Var
}

// checkIPRules applies -y, with the IP alone, before any lookup. decided
// is true when a rule matched: it decides, and -x is skipped.
func (s *Server) checkIPRules(ep env.Endpoints) (v verdict, decided bool, err error) {
	if s.opt.IPRules == "" {
		return verdict{}, false, nil
	}
	av, err := acl.Check(s.opt.IPRules, acl.Query{IP: ep.RemoteIP})
	if err != nil || !av.Matched {
		return verdict{}, false, err
	}
	return toVerdict(av), true, nil
}

// namesMatter says a lookup may give -x a host or info to match, so its
// verdict can depend on them (ucspi-tcp6's order puts info@ip and =host
// before the address's own keys).
func (s *Server) namesMatter() bool {
	return s.opt.RemoteLookup || s.opt.Ident
}

// checkRules applies -x with the IP, host and info. Each cdb is opened
// for this connection, so replacing it with rename takes effect at once.
// An unreadable or malformed cdb is an error: the connection is dropped,
// except that -X lets a missing -x cdb allow.
func (s *Server) checkRules(ep env.Endpoints) (verdict, error) {
	if s.opt.Rules == "" {
		return verdict{}, nil
	}
	v, err := acl.Check(s.opt.Rules, acl.Query{IP: ep.RemoteIP, Host: ep.RemoteHost, Info: ep.RemoteInfo})
	if errors.Is(err, fs.ErrNotExist) && s.opt.RulesMissing {
		return verdict{}, nil
	}
	if err != nil {
		return verdict{}, err
	}
	return toVerdict(v), nil
}

func toVerdict(v acl.Verdict) verdict {
	out := verdict{deny: v.Deny}
	for _, e := range v.Env {
		out.env = append(out.env, env.Var{Name: e.Name, Value: e.Value})
	}
	return out
}
