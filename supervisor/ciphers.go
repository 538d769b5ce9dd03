package supervisor

import (
	"strings"

	"github.com/ucspi-tls/sslserver/env"
)

// cipherSuites reads CIPHERS, an OpenSSL cipher list. Go's TLS has no
// cipher-string language, so only the names of secure TLS 1.2 suites are
// honoured (Go orders them itself); every other word (HIGH, !aNULL, a TLS
// 1.3 suite, a weak suite) is returned as ignored. When nothing is
// left, Go's own defaults apply (nil).
func cipherSuites(spec string) (ids []uint16, ignored []string, err error) {
	seen := map[uint16]bool{}
	for _, w := range strings.FieldsFunc(spec, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
		id, ok := env.CipherSuiteID(w)
		if !ok {
			ignored = append(ignored, w)
			continue
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, ignored, nil
}
