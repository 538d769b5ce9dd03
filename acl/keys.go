package acl

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Key encoding, as fehcom's ucspi-tcp6 writes and looks up cdb keys:
//
//	1.2.3.4, 10., 172.16.   IPv4 address or dot-prefix, as written
//	0000:…:0001             IPv6 address, 8 groups of 4 upper-case hex digits
//	_<bits>                 IPv4 CIDR: one byte per prefix bit
//	^<bits>                 IPv6 CIDR: one byte per prefix bit
//	=host, =.domain, =      host names, as written
//	info@<ip>, info@=host   IDENT info, then the IP key or =host
//	(empty)                 the default
//
// In the CIDR bit strings a 0 bit is '0'. A 1 bit is, for IPv4, the n-th
// byte of ipv4OneBits where n is the bit's position; for IPv6 it is 0x60
// plus the number of 1 bits before it. Both depend only on earlier bits,
// so the key of a /p prefix is the first p bytes of the address's /32 or
// /128 string, which is what makes the lookup a walk over prefixes.
const ipv4OneBits = "abcdefghijklmnopqrstuvwxyz123456"

const (
	ipv4CIDRMark = '_'
	ipv6CIDRMark = '^'
	ipv6OneBase  = 0x60
)

// ipv4Bits returns the IPv4 CIDR bit string of a for its first n bits.
func ipv4Bits(a [4]byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = '0'
		if a[i/8]&(0x80>>(i%8)) != 0 {
			b[i] = ipv4OneBits[i]
		}
	}
	return string(b)
}

// ipv6Bits returns the IPv6 CIDR bit string of a for its first n bits.
func ipv6Bits(a [16]byte, n int) string {
	b := make([]byte, n)
	ones := 0
	for i := range b {
		b[i] = '0'
		if a[i/8]&(0x80>>(i%8)) != 0 {
			b[i] = byte(ipv6OneBase + ones)
			ones++
		}
	}
	return string(b)
}

// ipv6Key is the fully expanded upper-case form ucspi-tcp6 uses for keys.
func ipv6Key(a [16]byte) string {
	var sb strings.Builder
	for i := 0; i < 16; i += 2 {
		if i > 0 {
			sb.WriteByte(':')
		}
		fmt.Fprintf(&sb, "%02X%02X", a[i], a[i+1])
	}
	return sb.String()
}

// ipKey is the exact-address key of ip (already unmapped).
func ipKey(ip netip.Addr) string {
	if ip.Is4() {
		return ip.String()
	}
	return ipv6Key(ip.As16())
}

var errAddress = errors.New("not an address this rules format knows")

// addressKeys returns the cdb keys the rule address s stands for: one key,
// or several for an IPv4 octet range. It refuses forms that the reference
// would store but that no lookup could ever find, so a typo is reported
// instead of silently never matching.
func addressKeys(s string) ([]string, error) {
	switch {
	case s == "":
		return []string{""}, nil
	case s[0] == '=':
		return []string{s}, nil
	case strings.Contains(s, "@"):
		return infoKeys(s)
	case strings.Contains(s, "="):
		return nil, fmt.Errorf("'=' may only start a host name or follow info@: %w", errAddress)
	case strings.Contains(s, "/"):
		return cidrKeys(s)
	case strings.Contains(s, ":"):
		k, err := ipv6AddressKey(s)
		return []string{k}, err
	case strings.Contains(s, "-"):
		return rangeKeys(s)
	}
	if !isIPv4Key(s) {
		return nil, fmt.Errorf("want a dotted-quad address or a prefix like 10. or 192.168.: %w", errAddress)
	}
	return []string{s}, nil
}

// infoKeys handles info@ip and info@=host.
func infoKeys(s string) ([]string, error) {
	info, rest, _ := strings.Cut(s, "@")
	switch {
	case info == "":
		return nil, fmt.Errorf("empty info before '@': %w", errAddress)
	case strings.Contains(info, "="):
		return nil, fmt.Errorf("'=' in info %q: %w", info, errAddress)
	case rest == "=":
		return nil, fmt.Errorf("info@= needs a host name: %w", errAddress)
	case strings.HasPrefix(rest, "="):
		return []string{s}, nil
	case strings.Contains(rest, ":") && !strings.Contains(rest, "/"):
		k, err := ipv6AddressKey(rest)
		return []string{info + "@" + k}, err
	case isIPv4Addr(rest):
		return []string{s}, nil
	}
	return nil, fmt.Errorf("info@ takes one exact IP address or =host, not %q: %w", rest, errAddress)
}

// ipv6AddressKey expands an exact IPv6 address.
func ipv6AddressKey(s string) (string, error) {
	ip, err := netip.ParseAddr(s)
	switch {
	case err != nil || !ip.Is6() || ip.Zone() != "":
		return "", fmt.Errorf("bad IPv6 address %q: %w", s, errAddress)
	case ip.Is4In6():
		return "", fmt.Errorf("IPv4-mapped %q never matches, IPv4 clients are looked up as %s: %w", s, ip.Unmap(), errAddress)
	}
	return ipv6Key(ip.As16()), nil
}

// cidrKeys handles a.b.c.d/n (also a./n, a.b/n) and IPv6 addr/n.
func cidrKeys(s string) ([]string, error) {
	addr, bits, _ := strings.Cut(s, "/")
	ipv6 := strings.Contains(addr, ":")
	maxBits := 32
	if ipv6 {
		maxBits = 128
	}
	n, err := decimal(bits, maxBits)
	if err != nil || n == 0 {
		return nil, fmt.Errorf("prefix length %q is not 1 to %d: %w", bits, maxBits, errAddress)
	}
	if ipv6 {
		ip, err := netip.ParseAddr(addr)
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return nil, fmt.Errorf("bad IPv6 network %q: %w", addr, errAddress)
		}
		return []string{string(ipv6CIDRMark) + ipv6Bits(ip.As16(), n)}, nil
	}
	a, err := ipv4Network(addr)
	if err != nil {
		return nil, err
	}
	return []string{string(ipv4CIDRMark) + ipv4Bits(a, n)}, nil
}

// ipv4Network parses the address part of an IPv4 CIDR: one to four
// decimal octets, a trailing dot allowed, missing octets zero ("127./8").
func ipv4Network(s string) ([4]byte, error) {
	var a [4]byte
	parts := strings.Split(strings.TrimSuffix(s, "."), ".")
	if len(parts) > 4 {
		return a, fmt.Errorf("bad IPv4 network %q: %w", s, errAddress)
	}
	for i, p := range parts {
		v, err := decimal(p, 255)
		if err != nil {
			return a, fmt.Errorf("bad IPv4 network %q: %w", s, errAddress)
		}
		a[i] = byte(v)
	}
	return a, nil
}

// rangeKeys expands an octet range such as 1.2.3.37-53 or 172.16-31. into
// one key per value, as the reference does; the upper bound is cut at 255.
func rangeKeys(s string) ([]string, error) {
	dash := strings.IndexByte(s, '-')
	left := strings.LastIndexByte(s[:dash], '.') + 1
	right := len(s)
	if i := strings.IndexByte(s[dash+1:], '.'); i >= 0 {
		right = dash + 1 + i
	}
	lo, errLo := decimal(s[left:dash], 255)
	hi, errHi := decimal(s[dash+1:right], 1<<31)
	if errLo != nil || errHi != nil || lo > min(hi, 255) {
		return nil, fmt.Errorf("bad octet range %q: %w", s[left:right], errAddress)
	}
	var keys []string
	for v := lo; v <= min(hi, 255); v++ {
		k := s[:left] + strconv.Itoa(v) + s[right:]
		if !isIPv4Key(k) {
			return nil, fmt.Errorf("range gives %q, not an IPv4 address or prefix: %w", k, errAddress)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// decimal parses a non-empty run of ASCII digits no larger than limit.
func decimal(s string, limit int) (int, error) {
	if s == "" || len(s) > 10 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("not a decimal number: %q", s)
	}
	v, err := strconv.Atoi(s)
	if err != nil || v > limit {
		return 0, fmt.Errorf("number %q out of range 0 to %d", s, limit)
	}
	return v, nil
}

// isIPv4Key reports whether s is an exact IPv4 address or a dot-prefix
// (1 to 3 octets, each followed by a dot) in the canonical form a remote
// IP is written in, so that some lookup can find it.
func isIPv4Key(s string) bool {
	return isIPv4Addr(s) || isIPv4Prefix(s)
}

func isIPv4Addr(s string) bool {
	ip, err := netip.ParseAddr(s)
	return err == nil && ip.Is4() && ip.String() == s
}

func isIPv4Prefix(s string) bool {
	if !strings.HasSuffix(s, ".") {
		return false
	}
	octets := strings.Split(strings.TrimSuffix(s, "."), ".")
	if len(octets) > 3 {
		return false
	}
	for _, o := range octets {
		v, err := decimal(o, 255)
		if err != nil || strconv.Itoa(v) != o {
			return false
		}
	}
	return true
}

// DisplayKey returns a cdb key the way tcprulescheck prints it: "default"
// for the empty key, CIDR bit strings turned back into network/length
// (IPv4 as the octets the prefix covers with a trailing dot, "10./8";
// IPv6 compressed, "2001:db8::/32"), anything else as stored.
func DisplayKey(key string) string {
	switch {
	case key == "":
		return "default"
	case key[0] == ipv4CIDRMark && len(key) <= 1+32:
		return displayIPv4CIDR(key[1:])
	case key[0] == ipv6CIDRMark && len(key) <= 1+128:
		return displayIPv6CIDR(key[1:])
	}
	return key
}

// bitsToBytes turns a CIDR bit string back into address bytes.
func bitsToBytes(bits string, out []byte) {
	for i := range len(bits) {
		if bits[i] != '0' {
			out[i/8] |= 0x80 >> (i % 8)
		}
	}
}

func displayIPv4CIDR(bits string) string {
	var a [4]byte
	bitsToBytes(bits, a[:])
	var sb strings.Builder
	for i := 0; i < (len(bits)+7)/8; i++ {
		sb.WriteString(strconv.Itoa(int(a[i])))
		if i < 3 {
			sb.WriteByte('.')
		}
	}
	return fmt.Sprintf("%s/%d", sb.String(), len(bits))
}

func displayIPv6CIDR(bits string) string {
	var a [16]byte
	bitsToBytes(bits, a[:])
	return fmt.Sprintf("%s/%d", netip.AddrFrom16(a), len(bits))
}
