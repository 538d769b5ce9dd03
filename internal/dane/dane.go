// Package dane computes the DANE TLSA record data (RFC 6698, RFC 7671)
// that pins a certificate's public key: selector 1 (the
// SubjectPublicKeyInfo), matching type 1 (SHA-256). sslserver logs these
// records and ssltlsa prints them, from this one definition:
//
//	dane.Record(dane.EE, leaf) // "3 1 1 <64 hex digits>"
package dane

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"strconv"
)

// Usage is a TLSA record's certificate usage field.
type Usage uint8

const (
	// TA (DANE-TA, 2) pins a trust anchor: an issuer in the chain
	// the server sends.
	TA Usage = 2
	// EE (DANE-EE, 3) pins the server's own key, as RFC 7672
	// recommends for SMTP.
	EE Usage = 3
)

// Record is the TLSA record data "usage 1 1 hex" for cert: the SHA-256
// of its SubjectPublicKeyInfo, so a new certificate for the same key
// keeps the record.
func Record(usage Usage, cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return strconv.Itoa(int(usage)) + " 1 1 " + hex.EncodeToString(sum[:])
}
