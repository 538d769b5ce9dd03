package supervisor

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ucspi-tls/sslserver/env"
	"github.com/ucspi-tls/sslserver/protocol"
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

// rejectClient ends a -N session whose client certificate -z refused:
// the worker is killed, which closes the connection, the program never
// runs and the end line's status is 110.
func (ss *session) rejectClient(err error) {
	ss.logRefusal(err)
	ss.mu.Lock()
	ss.rejected = true
	ss.mu.Unlock()
	ss.w.kill()
}

func (ss *session) logRefusal(err error) {
	ss.srv.log.Warning("dropping connection from %s, client certificate refused: %v", ss.ep.RemoteIP, err)
}

// judgeClient answers, under -n -z, the worker's handshake report with
// the verdict on the client's names. The program already runs, in
// plaintext; the worker waits for the verdict before it answers the
// program's command or relays a byte, and on a refusal ends the session
// with status 110 (the program then gets SIGTERM). Once the program's
// exit is sent the worker is ending the session: no verdict follows.
func (ss *session) judgeClient() {
	var vars []env.Var
	select {
	case vars = <-ss.hsVars:
	case <-ss.ended:
		return
	}
	err := ss.matchClientName(vars)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.exitSent {
		return
	}
	ss.judged = true
	if err != nil {
		ss.rejected = true
		ss.logRefusal(err)
	}
	ss.w.ch.Send(&protocol.ClientVerdict{Seq: ss.seq, OK: err == nil})
}

// judging says the session's worker must wait for judgeClient.
func (ss *session) judging() bool {
	return ss.srv.opt.Delayed && ss.srv.opt.ClientCert == 'z'
}
