package supervisor

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ucspi-tls/sslserver/env"
)

// matchClientName is -z's check, once the handshake and the lookups are
// done: the client's certificate must name the remote host found by the
// PTR lookup (-h), in a DNS subject alternative name or, failing any, in
// its common name. The worker verified the chain; the names come from
// its report, which the supervisor accepted only as env.TLS makes it.
func (ss *session) matchClientName(vars []env.Var) error {
	if ss.srv.opt.ClientCert != 'z' {
		return nil
	}
	host := normalName(ss.ep.RemoteHost)
	if host == "" {
		return errors.New("no remote host name to match (-z needs -h and a PTR name)")
	}
	names := clientNames(vars)
	for _, n := range names {
		if normalName(n) == host {
			return nil
		}
	}
	return fmt.Errorf("names %q, none is the remote host %q", names, ss.ep.RemoteHost)
}

// clientNames are the DNS names of the client's certificate, else its
// common name, as RFC 6125 has it for a DNS-ID.
func clientNames(vars []env.Var) []string {
	var sans []string
	cn := ""
	for _, v := range vars {
		switch {
		case strings.HasPrefix(v.Name, "SSL_CLIENT_SAN_DNS_"):
			sans = append(sans, v.Value)
		case v.Name == "SSL_CLIENT_S_DN_CN":
			cn = v.Value
		}
	}
	if len(sans) > 0 || cn == "" {
		return sans
	}
	return []string{cn}
}

func normalName(n string) string {
	return strings.ToLower(strings.TrimSuffix(n, "."))
}

// rejectClient ends a session whose client certificate -z refused: the
// worker is killed, which closes the connection, the program never runs
// and the end line's status is 110.
func (ss *session) rejectClient(err error) {
	ss.srv.log.Warning("dropping connection from %s, client certificate refused: %v", ss.ep.RemoteIP, err)
	ss.mu.Lock()
	ss.rejected = true
	ss.mu.Unlock()
	ss.w.kill()
}
