package env

import (
	"net/netip"
	"strconv"
	"strings"
)

// Endpoints is what the supervisor knows of a connection.
//
// An address's zone (fe80::1%eth0) names the interface of a link-local
// peer; it becomes TCP6INTERFACE and is left out of the printed address.
type Endpoints struct {
	LocalIP    netip.Addr
	LocalPort  uint16
	LocalHost  string // "" = unknown (variable left unset, never empty)
	RemoteIP   netip.Addr
	RemotePort uint16
	RemoteHost string // "" = unknown
	RemoteInfo string // "" = unknown
	// ProxyIP is the PROXY protocol sender the connection came through,
	// when the remote values are the client it named; else invalid.
	ProxyIP netip.Addr
}

// Options select the optional variable families.
type Options struct {
	TCPVars bool // -e: also set TCP* (and TCP6* for IPv6 peers) variables
}

// Program returns the program's environment as NAME=value strings: base
// (the server's own environment) without secrets (IsSecret) and without
// stale connection variables, then PROTO=SSL and the SSL* endpoint
// variables (with opt.TCPVars also TCP*, and TCP6* for an IPv6 peer), then
// tlsVars, then ruleVars. A later variable replaces an earlier one of the
// same name in place, so each name appears once and the order depends only
// on the input. Unknown endpoint values are unset, never empty; a rule's
// empty value does set the variable to the empty string. Secret names are
// dropped wherever they come from, and so are invalid ones (empty, or
// containing '=' or NUL).
func Program(base []string, e Endpoints, opt Options, tlsVars, ruleVars []Var) []string {
	var b builder
	for _, kv := range base {
		b.inherit(kv)
	}
	b.set(standard(e, opt)...)
	b.set(tlsVars...)
	b.set(ruleVars...)
	return b.environ()
}

// Set returns environ with vars set: each replaces the entry of the same
// name in place or is appended. The supervisor uses it for what it knows
// only after Program, such as SSLCTLFD. Secret and invalid names are
// dropped, as in Program; duplicate names in environ are merged, the last
// value winning (as os/exec does).
func Set(environ []string, vars ...Var) []string {
	var b builder
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if ok {
			b.set(Var{name, value})
		}
	}
	b.set(vars...)
	return b.environ()
}

// builder keeps variables in first-seen order with one entry per name.
type builder struct {
	vars  []Var
	index map[string]int
}

// inherit takes one NAME=value from the server's environment unless it
// describes a (previous) connection; such a value would be a lie here.
func (b *builder) inherit(kv string) {
	name, value, ok := strings.Cut(kv, "=")
	if ok && !isConnection(name) {
		b.set(Var{name, value})
	}
}

func (b *builder) set(vars ...Var) {
	for _, v := range vars {
		b.setOne(v)
	}
}

func (b *builder) setOne(v Var) {
	if !validName(v.Name) || IsSecret(v.Name) {
		return
	}
	v.Value = cleanValue(v.Value)
	if i, ok := b.index[v.Name]; ok {
		b.vars[i].Value = v.Value
		return
	}
	if b.index == nil {
		b.index = make(map[string]int)
	}
	b.index[v.Name] = len(b.vars)
	b.vars = append(b.vars, v)
}

func (b *builder) environ() []string {
	out := make([]string, len(b.vars))
	for i, v := range b.vars {
		out[i] = v.Name + "=" + v.Value
	}
	return out
}

// field is one endpoint value, named without its SSL/TCP/TCP6 prefix.
type field struct{ suffix, value string }

// fields lists the endpoint values in the order ucspi-ssl sets them. Names
// come from DNS and IDENT answers, which the peer controls: control
// characters in them are written as \xHH, so that a program that copies
// them into a header or a log line cannot be made to start a new line.
func fields(e Endpoints) []field {
	return []field{
		{"LOCALIP", addrString(e.LocalIP)},
		{"LOCALPORT", portString(e.LocalPort)},
		{"LOCALHOST", textValue(e.LocalHost)},
		{"REMOTEIP", addrString(e.RemoteIP)},
		{"REMOTEPORT", portString(e.RemotePort)},
		{"REMOTEHOST", textValue(e.RemoteHost)},
		{"REMOTEINFO", textValue(e.RemoteInfo)},
	}
}

// standard returns PROTO and the endpoint variables. The TCP6 family
// exists only for IPv6 peers and has no REMOTEINFO, as in fehcom's
// ucspi-tcp6 and ucspi-ssl; it adds TCP6INTERFACE for a zoned address.
func standard(e Endpoints, opt Options) []Var {
	f := fields(e)
	vars := []Var{{"PROTO", "SSL"}}
	vars = appendKnown(vars, "SSL", f)
	vars = appendKnown(vars, "", []field{{"PROXYREMOTEIP", addrString(e.ProxyIP)}})
	if !opt.TCPVars {
		return vars
	}
	vars = appendKnown(vars, "TCP", f)
	if !isIPv6Peer(e) {
		return vars
	}
	vars = appendKnown(vars, "TCP6", withoutInfo(f))
	return appendKnown(vars, "", []field{{"TCP6INTERFACE", zone(e)}})
}

func withoutInfo(f []field) []field {
	var out []field
	for _, x := range f {
		if x.suffix != "REMOTEINFO" {
			out = append(out, x)
		}
	}
	return out
}

// appendKnown adds prefix+suffix for every known value: unknown is unset.
func appendKnown(vars []Var, prefix string, f []field) []Var {
	for _, x := range f {
		if x.value != "" {
			vars = append(vars, Var{prefix + x.suffix, x.value})
		}
	}
	return vars
}

// isIPv6Peer is false for an IPv4 peer on a dual-stack socket (::ffff:a.b.c.d).
func isIPv6Peer(e Endpoints) bool {
	return e.RemoteIP.IsValid() && e.RemoteIP.Unmap().Is6()
}

func zone(e Endpoints) string {
	if z := e.RemoteIP.Zone(); z != "" {
		return z
	}
	return e.LocalIP.Zone()
}

// addrString prints IPv4 (also IPv4-mapped) as a dotted quad and IPv6 in
// RFC 5952 form, without a zone; "" for an unknown address.
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().WithZone("").String()
}

// portString treats port 0, which no TCP connection has, as unknown.
func portString(p uint16) string {
	if p == 0 {
		return ""
	}
	return strconv.Itoa(int(p))
}
