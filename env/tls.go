package env

import (
	"crypto/tls"
	"crypto/x509"
	"runtime"
	"slices"
	"strconv"
	"sync"
)

// Version is the project's version, reported in SSL_VERSION_INTERFACE.
var Version = "0.1.0"

// TLS returns the SSL_* variables, named as Apache mod_ssl names them, for
// a finished handshake.
//
// server=true (sslserver): SSL_SERVER_* describe own, our leaf certificate,
// and SSL_CLIENT_* the peer's leaf when it sent one; verify is reported as
// SSL_CLIENT_VERIFY. server=false (sslclient): SSL_SERVER_* describe the
// peer, SSL_CLIENT_* own (nil if we sent none), and verify is reported as
// SSL_SERVER_VERIFY. Either way the verify variable is about the peer's
// certificate; verify "" leaves it unset. Usual values: "SUCCESS", "NONE",
// "FAILED:reason".
//
// SSL_SESSION_ID is never set: crypto/tls does not expose the session id,
// and TLS 1.3 has none; an invented value would be a lie. The order of the
// result is fixed; each name appears once.
func TLS(cs *tls.ConnectionState, own *x509.Certificate, server bool, verify string) []Var {
	if cs == nil {
		return nil
	}
	var l varList
	sessionVars(&l, cs, server)
	serverCert, clientCert := own, peerLeaf(cs)
	verifyName := "SSL_CLIENT_VERIFY"
	if !server {
		serverCert, clientCert = clientCert, serverCert
		verifyName = "SSL_SERVER_VERIFY"
	}
	if server {
		l = append(l, ownVars("SSL_SERVER_", serverCert)...)
		certVars(&l, "SSL_CLIENT_", clientCert)
	} else {
		certVars(&l, "SSL_SERVER_", serverCert)
		l = append(l, ownVars("SSL_CLIENT_", clientCert)...)
	}
	l.add(verifyName, verify)
	return l
}

// ownCerts caches the variables of our own certificates, which a
// process presents again in every handshake (a reused worker, up to
// SSL_WORKER_SESSIONS times): their PEM and names cost about 0.06 ms to
// make. It holds at most maxOwnCerts, as many as a configuration has.
var ownCerts struct {
	sync.Mutex
	vars map[ownKey][]Var
}

type ownKey struct {
	prefix string
	cert   *x509.Certificate
}

const maxOwnCerts = 64

func ownVars(prefix string, c *x509.Certificate) []Var {
	if c == nil {
		return nil
	}
	k := ownKey{prefix, c}
	ownCerts.Lock()
	defer ownCerts.Unlock()
	if v, ok := ownCerts.vars[k]; ok {
		return v
	}
	var l varList
	certVars(&l, prefix, c)
	if ownCerts.vars == nil {
		ownCerts.vars = map[ownKey][]Var{}
	}
	if len(ownCerts.vars) < maxOwnCerts {
		ownCerts.vars[k] = slices.Clip(l)
	}
	return l
}

// Names returns SSL_PROTOCOL's and SSL_CIPHER's values for cs without
// the rest of TLS's work: what the log line of a handshake needs.
func Names(cs *tls.ConnectionState) (protocol, cipher string) {
	return protocols[cs.Version], cleanValue(cipherOf(cs.CipherSuite).name)
}

// sessionVars describes the protocol, the cipher and the software.
func sessionVars(l *varList, cs *tls.ConnectionState, server bool) {
	c := cipherOf(cs.CipherSuite)
	l.add("SSL_PROTOCOL", protocols[cs.Version])
	l.add("SSL_CIPHER", c.name)
	l.add("SSL_CIPHER_EXPORT", "false") // Go has no export-grade suites
	l.add("SSL_CIPHER_USEKEYSIZE", bits(c.use))
	l.add("SSL_CIPHER_ALGKEYSIZE", bits(c.alg))
	l.add("SSL_SESSION_RESUMED", resumed(cs.DidResume))
	l.add("SSL_VERSION_INTERFACE", interfaceName(server)+"/"+Version)
	l.add("SSL_VERSION_LIBRARY", "Go-crypto/tls/"+runtime.Version())
	l.add("SSL_TLS_SNI", textValue(cs.ServerName)) // the client's choice
}

func interfaceName(server bool) string {
	if server {
		return "sslserver"
	}
	return "sslclient"
}

// resumed uses mod_ssl's two words.
func resumed(did bool) string {
	if did {
		return "Resumed"
	}
	return "Initial"
}

// bits prints a key size; 0 means unknown and leaves the variable unset.
func bits(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func peerLeaf(cs *tls.ConnectionState) *x509.Certificate {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	return cs.PeerCertificates[0]
}

// varList collects variables; empty values stay unset and NUL bytes are
// escaped, so whatever it holds can go into a NUL-separated block.
type varList []Var

// A value beyond its bound (maxValue) is left unset too: CheckTLS would
// refuse the whole report.
func (l *varList) add(name, value string) {
	if value == "" {
		return
	}
	if value = cleanValue(value); len(value) <= maxValue(name) {
		*l = append(*l, Var{name, value})
	}
}
