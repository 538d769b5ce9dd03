package supervisor

import "crypto/x509"

// Served is one certificate sslserver would serve.
type Served struct {
	Label string              // as the log names it: "default", "mx.example.org/2"
	Name  string              // its SNI name; "" for the default
	Chain []*x509.Certificate // leaf first, then the rest of the chain sent
}

// ServedCertificates reads the certificates that CERTFILE, CERTCHAINFILE,
// CERTFILE2 and the CERTFILE:name and CERTFILE2:name variables name, with
// the checks sslserver makes at start, for ssltlsa. Private key files are
// not read.
func ServedCertificates(get func(string) string, environ []string) ([]Served, error) {
	set, err := loadCerts(get, environ, false)
	if err != nil {
		return nil, err
	}
	out := make([]Served, 0, len(set.certs))
	for _, c := range set.certs {
		s := Served{Label: set.labels[c.Key], Name: c.Name}
		for _, der := range c.Chain {
			cert, err := x509.ParseCertificate(der)
			if err != nil { // ParseChain parsed each one already
				return nil, err
			}
			s.Chain = append(s.Chain, cert)
		}
		out = append(out, s)
	}
	return out, nil
}
