package main

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"

	"github.com/pires/go-proxyproto"
	"github.com/pires/go-proxyproto/tlvparse"

	"github.com/ucspi-tls/sslserver/sslhandle"
)

// served numbers this handler's sessions, for PP2_TYPE_UNIQUE_ID.
var served atomic.Uint64

// writeProxyHeader starts a backend connection with a PROXY protocol v2
// header: the client's address, the address it reached, and the TLS
// facts from the session's SSL_* variables (see docs/sslhandle.md).
func writeProxyHeader(c net.Conn, s *sslhandle.Session) error {
	src, dst := s.RemoteAddr(), s.LocalAddr()
	if src == nil || dst == nil {
		return fmt.Errorf("PROXY header: no client address in the environment")
	}
	h := proxyproto.HeaderProxyFromAddrs(2, src, dst)
	tlvs, err := proxyTLVs(s.Getenv)
	if err != nil {
		return fmt.Errorf("PROXY header: %w", err)
	}
	if err := h.SetTLVs(tlvs); err != nil {
		return fmt.Errorf("PROXY header: %w", err)
	}
	if _, err := h.WriteTo(c); err != nil {
		return fmt.Errorf("writing the PROXY header: %w", err)
	}
	return nil
}

// proxyTLVs are PP2_TYPE_SSL with the version, cipher and client CN,
// PP2_TYPE_AUTHORITY with the SNI name, and PP2_TYPE_UNIQUE_ID.
func proxyTLVs(getenv func(string) string) ([]proxyproto.TLV, error) {
	// verify is 0 only for a client certificate that was verified.
	ssl := tlvparse.PP2SSL{Client: tlvparse.PP2_BITFIELD_CLIENT_SSL, Verify: 1}
	if getenv("SSL_CLIENT_VERIFY") == "SUCCESS" {
		ssl.Verify = 0
	}
	ssl.TLV = appendTLV(ssl.TLV, proxyproto.PP2_SUBTYPE_SSL_VERSION, getenv("SSL_PROTOCOL"))
	ssl.TLV = appendTLV(ssl.TLV, proxyproto.PP2_SUBTYPE_SSL_CIPHER, getenv("SSL_CIPHER"))
	if cn := getenv("SSL_CLIENT_S_DN_CN"); cn != "" {
		ssl.Client |= tlvparse.PP2_BITFIELD_CLIENT_CERT_CONN
		ssl.TLV = appendTLV(ssl.TLV, proxyproto.PP2_SUBTYPE_SSL_CN, cn)
	}
	t, err := ssl.Marshal()
	if err != nil {
		return nil, err
	}
	tlvs := appendTLV([]proxyproto.TLV{t}, proxyproto.PP2_TYPE_AUTHORITY, getenv("SSL_TLS_SNI"))
	id := fmt.Sprintf("%d.%d", os.Getpid(), served.Add(1))
	return appendTLV(tlvs, proxyproto.PP2_TYPE_UNIQUE_ID, id), nil
}

// appendTLV adds a TLV with a value; an empty value is left out.
func appendTLV(tlvs []proxyproto.TLV, typ proxyproto.PP2Type, value string) []proxyproto.TLV {
	if value == "" {
		return tlvs
	}
	return append(tlvs, proxyproto.TLV{Type: typ, Value: []byte(value)})
}
