package env

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// certVars adds mod_ssl's variables for one certificate; prefix is
// "SSL_SERVER_" or "SSL_CLIENT_". A nil certificate adds nothing.
func certVars(l *varList, prefix string, c *x509.Certificate) {
	if c == nil {
		return
	}
	l.add(prefix+"M_VERSION", strconv.Itoa(c.Version))
	l.add(prefix+"M_SERIAL", serialHex(c.SerialNumber))
	l.add(prefix+"V_START", opensslTime(c.NotBefore))
	l.add(prefix+"V_END", opensslTime(c.NotAfter))
	nameVars(l, prefix+"S_DN", c.RawSubject, c.Subject)
	nameVars(l, prefix+"I_DN", c.RawIssuer, c.Issuer)
	sanVars(l, prefix+"SAN_DNS_", c.DNSNames)
	sanVars(l, prefix+"SAN_Email_", c.EmailAddresses)
	l.add(prefix+"A_SIG", signatureAlgorithm(c.Raw))
	l.add(prefix+"A_KEY", publicKeyAlgorithm(c.RawSubjectPublicKeyInfo))
	l.add(prefix+"CERT", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
}

// serialHex prints a serial as OpenSSL's i2a_ASN1_INTEGER does: upper-case
// hex of the magnitude, two digits a byte, "00" for zero, "-" if negative.
func serialHex(n *big.Int) string {
	if n == nil {
		return ""
	}
	sign := ""
	if n.Sign() < 0 {
		sign = "-"
	}
	mag := new(big.Int).Abs(n).Bytes()
	if len(mag) == 0 {
		mag = []byte{0}
	}
	return sign + strings.ToUpper(hex.EncodeToString(mag))
}

// opensslTime is ASN1_TIME_print's format, always in UTC: the program may
// run where no time zone files exist.
func opensslTime(t time.Time) string {
	return t.UTC().Format("Jan _2 15:04:05 2006 GMT")
}

// sanVars numbers subject alternative names from 0, as mod_ssl does,
// the first maxIndex of each kind.
func sanVars(l *varList, prefix string, names []string) {
	for i, n := range names[:min(len(names), maxIndex)] {
		l.add(prefix+strconv.Itoa(i), textValue(n))
	}
}

// signatureAlgorithm names the certificate's signature algorithm as
// OpenSSL's long name, read from the certificate itself so that every
// algorithm, known to Go or not, gets its own name.
func signatureAlgorithm(raw []byte) string {
	var c struct {
		TBS       asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}
	if rest, err := asn1.Unmarshal(raw, &c); err != nil || len(rest) > 0 {
		return ""
	}
	return algorithmName(c.Algorithm.Algorithm)
}

func publicKeyAlgorithm(rawSPKI []byte) string {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		Key       asn1.BitString
	}
	if rest, err := asn1.Unmarshal(rawSPKI, &spki); err != nil || len(rest) > 0 {
		return ""
	}
	return algorithmName(spki.Algorithm.Algorithm)
}

// algorithmNames are OpenSSL's long names (OBJ_nid2ln), which mod_ssl uses
// for SSL_*_A_SIG and SSL_*_A_KEY and `openssl x509 -text` prints.
var algorithmNames = map[string]string{
	"1.2.840.113549.1.1.1":   "rsaEncryption",
	"1.2.840.113549.1.1.2":   "md2WithRSAEncryption",
	"1.2.840.113549.1.1.4":   "md5WithRSAEncryption",
	"1.2.840.113549.1.1.5":   "sha1WithRSAEncryption",
	"1.2.840.113549.1.1.10":  "rsassaPss",
	"1.2.840.113549.1.1.11":  "sha256WithRSAEncryption",
	"1.2.840.113549.1.1.12":  "sha384WithRSAEncryption",
	"1.2.840.113549.1.1.13":  "sha512WithRSAEncryption",
	"1.2.840.113549.1.1.14":  "sha224WithRSAEncryption",
	"1.2.840.10040.4.1":      "dsaEncryption",
	"1.2.840.10040.4.3":      "dsaWithSHA1",
	"2.16.840.1.101.3.4.3.1": "dsa_with_SHA224",
	"2.16.840.1.101.3.4.3.2": "dsa_with_SHA256",
	"1.2.840.10045.2.1":      "id-ecPublicKey",
	"1.2.840.10045.4.1":      "ecdsa-with-SHA1",
	"1.2.840.10045.4.3.1":    "ecdsa-with-SHA224",
	"1.2.840.10045.4.3.2":    "ecdsa-with-SHA256",
	"1.2.840.10045.4.3.3":    "ecdsa-with-SHA384",
	"1.2.840.10045.4.3.4":    "ecdsa-with-SHA512",
	"1.3.101.110":            "X25519",
	"1.3.101.111":            "X448",
	"1.3.101.112":            "ED25519",
	"1.3.101.113":            "ED448",
}

// algorithmName falls back to the dotted OID, as OpenSSL prints an
// algorithm it has no name for.
func algorithmName(oid asn1.ObjectIdentifier) string {
	if n, ok := algorithmNames[oid.String()]; ok {
		return n
	}
	return oid.String()
}
