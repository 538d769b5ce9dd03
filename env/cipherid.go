package env

import "crypto/tls"

// CipherSuiteID returns the TLS 1.2 suite OpenSSL calls name, among the
// suites Go considers secure; sslserver's CIPHERS is read with it.
func CipherSuiteID(name string) (uint16, bool) {
	for _, s := range tls.CipherSuites() {
		if c, ok := cipherSuites[s.ID]; ok && c.name == name && supportsTLS12(s) {
			return s.ID, true
		}
	}
	return 0, false
}

func supportsTLS12(s *tls.CipherSuite) bool {
	for _, v := range s.SupportedVersions {
		if v == tls.VersionTLS12 {
			return true
		}
	}
	return false
}
