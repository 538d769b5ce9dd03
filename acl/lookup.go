package acl

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// Query is what is known about a client when its rules are looked up.
type Query struct {
	IP   netip.Addr // required; IPv4-mapped IPv6 is looked up as IPv4
	Host string     // remote host name, "" if unknown
	Info string     // IDENT info, "" if unknown
}

// Verdict is the outcome of a lookup. When no rule matches, Matched is
// false and the connection is allowed with no extra environment.
type Verdict struct {
	Matched bool
	Key     string // the cdb key that matched; "" is the default rule
	Deny    bool
	Env     []Var // in rule order; later assignments of a name win
}

var errNoIP = errors.New("query has no valid remote IP")

// LookupKeys returns the keys tried for q, in the order of ucspi-tcp6:
// info@ip, info@=host, ip, =host, IPv4 dot-prefixes longest first, CIDR
// prefixes from /32 (/128) down to /1, =.domain suffixes longest first,
// "=" (when the host is known), and the empty default.
func LookupKeys(q Query) ([]string, error) {
	if !q.IP.IsValid() {
		return nil, errNoIP
	}
	ip := q.IP.Unmap().WithZone("")
	exact := ipKey(ip)
	var keys []string
	if q.Info != "" {
		keys = append(keys, q.Info+"@"+exact)
		if q.Host != "" {
			keys = append(keys, q.Info+"@="+q.Host)
		}
	}
	keys = append(keys, exact)
	if q.Host != "" {
		keys = append(keys, "="+q.Host)
	}
	keys = append(keys, dotPrefixes(ip)...)
	keys = append(keys, cidrPrefixes(ip)...)
	if q.Host != "" {
		keys = append(keys, domainSuffixes(q.Host)...)
		keys = append(keys, "=")
	}
	return append(keys, ""), nil
}

// dotPrefixes returns "a.b.c.", "a.b.", "a." for an IPv4 address.
func dotPrefixes(ip netip.Addr) []string {
	if !ip.Is4() {
		return nil
	}
	s := ip.String()
	var keys []string
	for i := len(s) - 1; i > 0; i-- {
		if s[i-1] == '.' {
			keys = append(keys, s[:i])
		}
	}
	return keys
}

// cidrPrefixes returns the CIDR keys of ip from the longest prefix down.
func cidrPrefixes(ip netip.Addr) []string {
	mark, bits := string(ipv6CIDRMark), ""
	if ip.Is4() {
		mark, bits = string(ipv4CIDRMark), ipv4Bits(ip.As4(), 32)
	} else {
		bits = ipv6Bits(ip.As16(), 128)
	}
	keys := make([]string, 0, len(bits))
	for n := len(bits); n >= 1; n-- {
		keys = append(keys, mark+bits[:n])
	}
	return keys
}

// domainSuffixes returns "=.b.c", "=.c" for host "a.b.c".
func domainSuffixes(host string) []string {
	var keys []string
	for i := range len(host) {
		if host[i] == '.' {
			keys = append(keys, "="+host[i:])
		}
	}
	return keys
}

// Lookup finds the first rule that applies to q.
func (c *CDB) Lookup(q Query) (Verdict, error) {
	keys, err := LookupKeys(q)
	if err != nil {
		return Verdict{}, err
	}
	for _, k := range keys {
		data, found, err := c.Get([]byte(k))
		if err != nil {
			return Verdict{}, fmt.Errorf("looking up %q: %w", k, err)
		}
		if found {
			return verdictFor(k, data)
		}
	}
	return Verdict{}, nil
}

func verdictFor(key string, data []byte) (Verdict, error) {
	deny, env, err := decodeData(data)
	if err != nil {
		return Verdict{}, fmt.Errorf("rule %q: %w", key, err)
	}
	return Verdict{Matched: true, Key: key, Deny: deny, Env: env}, nil
}

// File is a cdb opened from disk.
type File struct {
	*CDB
	f *os.File
}

// Open opens the cdb file at path and checks its header.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	c, err := NewCDB(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &File{CDB: c, f: f}, nil
}

// Close closes the file.
func (f *File) Close() error {
	return f.f.Close()
}

// Check opens the rules cdb at cdbPath, looks q up and closes it again, so
// a cdb replaced by rename takes effect with the next call. A missing file
// gives an error for which errors.Is(err, fs.ErrNotExist) holds.
func Check(cdbPath string, q Query) (Verdict, error) {
	f, err := Open(cdbPath)
	if err != nil {
		return Verdict{}, err
	}
	defer f.Close()
	v, err := f.Lookup(q)
	if err != nil {
		return Verdict{}, fmt.Errorf("%s: %w", cdbPath, err)
	}
	return v, nil
}

// String renders the verdict in tcprulescheck's words, one line each.
func (v Verdict) String() string {
	var sb strings.Builder
	if v.Matched && v.Key != "" {
		sb.WriteString("rule " + DisplayKey(v.Key) + ":\n")
	} else {
		sb.WriteString("default:\n")
	}
	for _, e := range v.Env {
		sb.WriteString("set environment variable " + e.Name + "=" + e.Value + "\n")
	}
	if v.Deny {
		sb.WriteString("deny connection\n")
	} else {
		sb.WriteString("allow connection\n")
	}
	return sb.String()
}
