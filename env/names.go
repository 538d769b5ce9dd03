package env

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Bounds on the SSL_* variables of one handshake. TLS stays within them
// (a value beyond its bound is left unset, an index beyond maxIndex is
// not numbered), and CheckTLS holds a report from another process to
// them: the supervisor and sslclient take a TLS worker's variables only
// when every one passes.
const (
	MaxTLSVars   = 1024     // variables in one report; TLS makes at most 924
	MaxCertValue = 64 << 10 // SSL_SERVER_CERT, SSL_CLIENT_CERT: a PEM certificate
	MaxTLSValue  = 16 << 10 // every other value
	maxIndex     = 16       // SAN_DNS_n, SAN_Email_n and S_DN_CN_n count from 0 to maxIndex-1
)

// sessionNames are the variables about the session as a whole.
var sessionNames = []string{
	"SSL_PROTOCOL", "SSL_CIPHER", "SSL_CIPHER_EXPORT", "SSL_CIPHER_USEKEYSIZE",
	"SSL_CIPHER_ALGKEYSIZE", "SSL_SESSION_RESUMED", "SSL_VERSION_INTERFACE",
	"SSL_VERSION_LIBRARY", "SSL_TLS_SNI",
}

// certFields follow SSL_SERVER_ or SSL_CLIENT_ for one certificate.
var certFields = []string{"M_VERSION", "M_SERIAL", "V_START", "V_END", "S_DN", "I_DN", "A_SIG", "A_KEY", "CERT"}

// verifyName is the variable that says how the peer's certificate was
// verified: the client's under sslserver, the server's under sslclient.
func verifyName(server bool) string {
	if server {
		return "SSL_CLIENT_VERIFY"
	}
	return "SSL_SERVER_VERIFY"
}

// IsTLSName reports whether TLS(…, server, …) can make a variable of
// this name.
func IsTLSName(name string, server bool) bool {
	if slices.Contains(sessionNames, name) || name == verifyName(server) {
		return true
	}
	for _, prefix := range []string{"SSL_SERVER_", "SSL_CLIENT_"} {
		if field, ok := strings.CutPrefix(name, prefix); ok {
			return isCertField(field)
		}
	}
	return false
}

// isCertField: a fixed field, an attribute of the subject's or issuer's
// name (CN, CN_1, …), or a numbered alternative name.
func isCertField(field string) bool {
	if slices.Contains(certFields, field) {
		return true
	}
	for _, dn := range []string{"S_DN_", "I_DN_"} {
		if attr, ok := strings.CutPrefix(field, dn); ok {
			return isAttribute(attr)
		}
	}
	for _, san := range []string{"SAN_DNS_", "SAN_Email_"} {
		if n, ok := strings.CutPrefix(field, san); ok {
			return isIndex(n)
		}
	}
	return false
}

// isAttribute: CN, or CN_1 … CN_15, and so on for every kind attrVars
// knows.
func isAttribute(attr string) bool {
	kind, n, numbered := strings.Cut(attr, "_")
	if !isAttributeKind(kind) {
		return false
	}
	return !numbered || n != "0" && isIndex(n)
}

func isAttributeKind(kind string) bool {
	for _, k := range modsslAttributes {
		if k == kind {
			return true
		}
	}
	return false
}

// isIndex: a decimal from 0 to maxIndex-1 as strconv writes it.
func isIndex(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n < maxIndex && strconv.Itoa(n) == s
}

// maxValue is the longest value a variable may have.
func maxValue(name string) int {
	if strings.HasSuffix(name, "_CERT") {
		return MaxCertValue
	}
	return MaxTLSValue
}

// CheckTLS holds variables that another process reports as a handshake's
// to what TLS makes: at most MaxTLSVars, each name one that TLS can make
// (for server or client) and at most once, each value within its bound
// and free of NUL and (but for the PEM lines of a certificate) newline.
// The error names the first offender,
// quoted and cut short.
func CheckTLS(vars []Var, server bool) error {
	if len(vars) > MaxTLSVars {
		return fmt.Errorf("%d variables, more than %d", len(vars), MaxTLSVars)
	}
	seen := make(map[string]bool, len(vars))
	for _, v := range vars {
		if err := checkTLSVar(v, server, seen); err != nil {
			return fmt.Errorf("variable %q: %w", clip(v.Name), err)
		}
	}
	return nil
}

func checkTLSVar(v Var, server bool, seen map[string]bool) error {
	switch {
	case !IsTLSName(v.Name, server):
		return fmt.Errorf("not a name TLS makes")
	case seen[v.Name]:
		return fmt.Errorf("given twice")
	case len(v.Value) > maxValue(v.Name):
		return fmt.Errorf("value of %d bytes, more than %d", len(v.Value), maxValue(v.Name))
	case strings.Contains(v.Value, "\x00"):
		return fmt.Errorf("value with a NUL byte")
	case strings.HasSuffix(v.Name, "_CERT"):
		if !isPEMCert(v.Value) {
			return fmt.Errorf("value not one PEM certificate")
		}
	case strings.Contains(v.Value, "\n"):
		return fmt.Errorf("value with a newline")
	}
	seen[v.Name] = true
	return nil
}

// isPEMCert: one PEM certificate, as encoding/pem writes it; its lines
// are the only newlines a value may hold.
func isPEMCert(s string) bool {
	const begin, end = "-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n"
	body, ok := strings.CutPrefix(s, begin)
	if body, ok = strings.CutSuffix(body, end); !ok {
		return false
	}
	return !strings.ContainsAny(body, "-\x00") && strings.HasSuffix(body, "\n")
}

// clip cuts a name from a hostile peer to a length fit for a log line.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
