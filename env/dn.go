package env

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"strings"
	"unicode/utf8"
)

// nameVars adds a distinguished name in OpenSSL's one-line form as dnName
// (e.g. SSL_CLIENT_S_DN) and its attributes as dnName_CN, dnName_Email, ….
func nameVars(l *varList, dnName string, raw []byte, name pkix.Name) {
	l.add(dnName, oneline(raw, name))
	attrVars(l, dnName+"_", name.Names)
}

// attributeSET is one relative distinguished name; encoding/asn1 reads a
// slice type whose name ends in SET as a SET OF.
type attributeSET []rawAttribute

type rawAttribute struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

// oneline renders a name as OpenSSL's X509_NAME_oneline (and `openssl x509
// -subject -nameopt compat`) does: /type=value per attribute, '+' between
// the attributes of a multi-valued RDN, in the certificate's own order,
// with the value's raw bytes: '/' and '+' are written as \/ and \+, and
// every byte outside printable ASCII as \xHH (OpenSSL 3's rules). Working from the DER keeps a BMPString or T61String
// byte for byte what OpenSSL shows. Should encoding/asn1 refuse a name
// crypto/x509 took, the decoded attributes are rendered the same way.
func oneline(raw []byte, name pkix.Name) string {
	var rdns []attributeSET
	if rest, err := asn1.Unmarshal(raw, &rdns); err != nil || len(rest) > 0 {
		return onelineDecoded(name.Names)
	}
	var sb strings.Builder
	for _, rdn := range rdns {
		for i, a := range rdn {
			writeAttribute(&sb, i > 0, a.Type, a.Value.Bytes)
		}
	}
	return sb.String()
}

func onelineDecoded(names []pkix.AttributeTypeAndValue) string {
	var sb strings.Builder
	for _, a := range names {
		writeAttribute(&sb, false, a.Type, []byte(fmt.Sprint(a.Value)))
	}
	return sb.String()
}

func writeAttribute(sb *strings.Builder, sameRDN bool, oid asn1.ObjectIdentifier, value []byte) {
	if sameRDN {
		sb.WriteByte('+')
	} else {
		sb.WriteByte('/')
	}
	sb.WriteString(shortName(oid))
	sb.WriteByte('=')
	for _, b := range value {
		writeByte(sb, b)
	}
}

// writeByte keeps printable ASCII, escapes the separators '/' and '+' with
// a backslash, and writes every other byte as \xHH.
func writeByte(sb *strings.Builder, b byte) {
	switch {
	case b < ' ' || b > '~':
		fmt.Fprintf(sb, `\x%02X`, b)
	case b == '/' || b == '+':
		sb.WriteByte('\\')
		sb.WriteByte(b)
	default:
		sb.WriteByte(b)
	}
}

// textValue renders a decoded attribute value or name for its own
// variable: UTF-8 text stays as it is, while control characters (NUL and
// newline among them), DEL and bytes that are not UTF-8 are written as
// \xHH. A backslash is not escaped, as in OpenSSL's one-line form.
func textValue(s string) string {
	var sb strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && size == 1 || r < ' ' || r == 0x7f {
			fmt.Fprintf(&sb, `\x%02X`, s[0])
		} else {
			sb.WriteString(s[:size])
		}
		s = s[size:]
	}
	return sb.String()
}

// attrVars adds mod_ssl's per-attribute variables: the first attribute of
// a kind as dnName_CN, later ones as dnName_CN_1, dnName_CN_2, … up to
// maxIndex of each kind.
func attrVars(l *varList, prefix string, names []pkix.AttributeTypeAndValue) {
	seen := make(map[string]int)
	for _, a := range names {
		kind, ok := modsslAttributes[a.Type.String()]
		s, isString := a.Value.(string)
		if !ok || !isString {
			continue
		}
		n := seen[kind]
		seen[kind]++
		if n >= maxIndex {
			continue
		}
		name := prefix + kind
		if n > 0 {
			name = fmt.Sprintf("%s_%d", name, n)
		}
		l.add(name, textValue(s))
	}
}

// modsslAttributes are the attribute names mod_ssl exports.
var modsslAttributes = map[string]string{
	"2.5.4.6":                   "C",
	"2.5.4.8":                   "ST",
	"2.5.4.7":                   "L",
	"2.5.4.10":                  "O",
	"2.5.4.11":                  "OU",
	"2.5.4.3":                   "CN",
	"2.5.4.12":                  "T",
	"2.5.4.43":                  "I",
	"2.5.4.42":                  "G",
	"2.5.4.4":                   "S",
	"2.5.4.13":                  "D",
	"0.9.2342.19200300.100.1.1": "UID",
	"1.2.840.113549.1.9.1":      "Email",
}

// shortNames are OpenSSL's short names (OBJ_nid2sn) for the attribute
// types one meets in certificate names.
var shortNames = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.4":                    "SN",
	"2.5.4.5":                    "serialNumber",
	"2.5.4.6":                    "C",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.9":                    "street",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.12":                   "title",
	"2.5.4.13":                   "description",
	"2.5.4.15":                   "businessCategory",
	"2.5.4.17":                   "postalCode",
	"2.5.4.41":                   "name",
	"2.5.4.42":                   "GN",
	"2.5.4.43":                   "initials",
	"2.5.4.44":                   "generationQualifier",
	"2.5.4.45":                   "x500UniqueIdentifier",
	"2.5.4.46":                   "dnQualifier",
	"2.5.4.65":                   "pseudonym",
	"2.5.4.97":                   "organizationIdentifier",
	"1.2.840.113549.1.9.1":       "emailAddress",
	"1.2.840.113549.1.9.2":       "unstructuredName",
	"0.9.2342.19200300.100.1.1":  "UID",
	"0.9.2342.19200300.100.1.25": "DC",
	"1.3.6.1.4.1.311.60.2.1.1":   "jurisdictionL",
	"1.3.6.1.4.1.311.60.2.1.2":   "jurisdictionST",
	"1.3.6.1.4.1.311.60.2.1.3":   "jurisdictionC",
}

// shortName falls back to the dotted OID, as OpenSSL does.
func shortName(oid asn1.ObjectIdentifier) string {
	if n, ok := shortNames[oid.String()]; ok {
		return n
	}
	return oid.String()
}
