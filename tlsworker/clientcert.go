package tlsworker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
)

// clientVerifier checks client certificates for -z and -m with nothing
// but the public data the supervisor sent: the trusted CAs and the
// depth. The name check of -z is the supervisor's, which knows the
// remote host.
type clientVerifier struct {
	roots     *x509.CertPool
	advertise *x509.CertPool // named in the CertificateRequest; nil: none
	depth     int
}

// newClientVerifier parses the configuration's CAs; nil under -Z.
func newClientVerifier(cfg *protocol.WorkerConfig) (*clientVerifier, error) {
	if cfg.ClientCert == protocol.ClientCertNone {
		return nil, nil
	}
	v := &clientVerifier{roots: x509.NewCertPool(), depth: int(cfg.VerifyDepth)}
	if err := addDERs(v.roots, cfg.ClientCAs); err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	if len(cfg.AdvertiseCAs) > 0 {
		v.advertise = x509.NewCertPool()
		if err := addDERs(v.advertise, cfg.AdvertiseCAs); err != nil {
			return nil, fmt.Errorf("advertised CA: %w", err)
		}
	}
	return v, nil
}

func addDERs(pool *x509.CertPool, ders [][]byte) error {
	for _, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		pool.AddCert(c)
	}
	return nil
}

// configure asks for a client certificate and verifies it in the
// handshake. Go's RequestClientCert lets a handshake without one reach
// verify, so that "no certificate" is our reason like any other. The
// check is VerifyConnection's, which runs on resumed handshakes too: a
// ticket (perhaps sealed by another server sharing TICKETKEYFILE, or
// before a reload changed the CAs) gets no client in without a
// certificate that verifies now.
func (v *clientVerifier) configure(c *tls.Config, failed *error) {
	c.ClientAuth = tls.RequestClientCert
	c.ClientCAs = v.advertise
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		raw := make([][]byte, len(cs.PeerCertificates))
		for i, pc := range cs.PeerCertificates {
			raw[i] = pc.Raw
		}
		err := v.verify(raw, time.Now())
		*failed = err
		return err
	}
}

// errNoClientCert: the client sent no certificate.
var errNoClientCert = errors.New("no client certificate")

// verify checks a client's chain (leaf first) against the trusted CAs,
// for client authentication, with at most depth CA certificates above
// the leaf.
func (v *clientVerifier) verify(raw [][]byte, now time.Time) error {
	if len(raw) == 0 {
		return errNoClientCert
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, der := range raw {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("malformed certificate: %v", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	chains, err := certs[0].Verify(x509.VerifyOptions{Roots: v.roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return err
	}
	for _, ch := range chains {
		if len(ch)-1 <= v.depth {
			return nil
		}
	}
	return fmt.Errorf("chain longer than VERIFYDEPTH %d", v.depth)
}
