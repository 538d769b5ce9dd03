// Package env builds the environment of the program that sslserver (and
// sslclient) runs: the inherited environment cleaned of every secret, key
// path and stale connection variable, then the connection's description
// (PROTO=SSL, SSLREMOTEIP, …), the TLS session's SSL_* variables, and last
// the assignments of a matching tcprules rule.
//
// Typical use in the supervisor, once the handshake is done:
//
//	tlsVars := env.TLS(&state, leaf, true, "NONE")
//	environ := env.Program(os.Environ(), env.Endpoints{
//		LocalIP: local.Addr(), LocalPort: local.Port(),
//		RemoteIP: remote.Addr(), RemotePort: remote.Port(),
//		RemoteHost: "client.example.net",
//	}, env.Options{TCPVars: true}, tlsVars, rule.Vars)
//	environ = env.Set(environ, env.Var{Name: "SSLCTLFD", Value: "3"})
//
// Every value the package emits is safe for a NUL-separated block: a NUL
// byte inside a value is written as the four characters \x00. Text the
// peer controls (host names, IDENT answers, certificate fields, SNI) also
// has its control characters written as \xHH. docs/environment.md lists
// every variable.
package env

import (
	"slices"
	"strings"
)

// Var is one environment variable.
type Var struct{ Name, Value string }

// secretNames are the server's own settings (section 3 of the spec): paths
// to keys and certificates, TLS tuning, the TLS worker's ids and root, and
// the per-IP limit. None of them is the program's business, and a key path
// in the program's environment is one step from the key.
var secretNames = map[string]bool{
	"CERTFILE":      true,
	"KEYFILE":       true,
	"CERTFILE2":     true,
	"KEYFILE2":      true,
	"CERTCHAINFILE": true,
	"CAFILE":        true,
	"CADIR":         true,
	"CCAFILE":       true,
	"VERIFYDEPTH":   true,
	"CIPHERS":       true,
	"DHFILE":        true,
	"SSL_UID":       true,
	"SSL_GID":       true,
	"SSL_CHROOT":    true,
	"MAXCONIP":      true,
	"TICKETKEYFILE": true,
	// Programs that honour it write their TLS session keys to this file.
	"SSLKEYLOGFILE": true,
}

// IsSecret reports whether a variable name must never reach the program.
func IsSecret(name string) bool {
	if secretNames[name] {
		return true
	}
	// s6's convention for SNI: one CERTFILE:host / KEYFILE:host pair per name.
	// CERTFILE2 and KEYFILE2 (and :name) are a second certificate for a name.
	for _, p := range []string{"CERTFILE:", "KEYFILE:", "CERTFILE2:", "KEYFILE2:"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// endpointFields follow the SSL, TCP and TCP6 prefixes.
var endpointFields = []string{
	"LOCALIP", "LOCALPORT", "LOCALHOST",
	"REMOTEIP", "REMOTEPORT", "REMOTEHOST", "REMOTEINFO",
}

// otherConnectionNames describe one connection but are not endpoint fields.
// SSLCTLFD, SSLREADFD and SSLWRITEFD are inherited fd numbers that would
// point at the wrong descriptors; SSLCTL is what ucspi-ssl leaves behind.
var otherConnectionNames = map[string]bool{
	"PROTO":         true,
	"TCP6INTERFACE": true,
	"SSLCTL":        true,
	"SSLCTLFD":      true,
	"SSLREADFD":     true,
	"SSLWRITEFD":    true,
	"PROXYREMOTEIP": true,
}

// keptSSLNames start with SSL_ but name the trust store the program's own
// outgoing TLS uses (OpenSSL and Go read them), not the connection.
var keptSSLNames = map[string]bool{
	"SSL_CERT_FILE": true,
	"SSL_CERT_DIR":  true,
}

// isConnection reports whether name describes a connection, so that a value
// inherited from the server's own environment is stale and must go.
func isConnection(name string) bool {
	if otherConnectionNames[name] || isEndpoint(name) {
		return true
	}
	return strings.HasPrefix(name, "SSL_") && !keptSSLNames[name]
}

func isEndpoint(name string) bool {
	for _, prefix := range []string{"SSL", "TCP6", "TCP"} {
		rest, ok := strings.CutPrefix(name, prefix)
		if ok && slices.Contains(endpointFields, rest) {
			return true
		}
	}
	return false
}

// validName refuses names that cannot be set: empty, or with '=' or NUL,
// which would make the NAME=value string ambiguous or cut it short.
func validName(name string) bool {
	return name != "" && !strings.ContainsAny(name, "=\x00")
}

// cleanValue writes a NUL byte as \x00: the value goes into a NUL-separated
// block and into execve's environment, where a NUL would cut it short.
func cleanValue(s string) string {
	return strings.ReplaceAll(s, "\x00", `\x00`)
}
