package client

import (
	"context"
	"net"
	"net/netip"
	"strings"
)

// maxNameLen is the longest name in presentation form, without the
// root's dot.
const maxNameLen = 253

// ptrName is ip's name from its first PTR record, "" when there is none
// or it is unusable, as tcpclient takes it. ucspi-tcp's -h does no
// forward check either.
func ptrName(ctx context.Context, ip netip.Addr) string {
	ctx, cancel := context.WithTimeout(ctx, dnsTimeout)
	defer cancel()
	names, err := net.DefaultResolver.LookupAddr(ctx, ip.Unmap().WithZone("").String())
	if err != nil || len(names) == 0 {
		return ""
	}
	return cleanName(names[0])
}

// cleanName lower-cases a name from DNS and drops the root's dot. The
// server's operator controls its reverse zone, so anything but letters,
// digits, '.', '-' and '_' makes the name unusable (""), as does a name
// that reads as an IP address.
func cleanName(n string) string {
	n = strings.ToLower(strings.TrimSuffix(n, "."))
	if n == "" || len(n) > maxNameLen || n[0] == '.' || strings.Contains(n, "..") {
		return ""
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return ""
		}
	}
	if _, err := netip.ParseAddr(n); err == nil {
		return ""
	}
	return n
}

// localHost is -l: "0" for none, a name as given, or else the local
// address's PTR name.
func localHost(ctx context.Context, flag string, ip netip.Addr) string {
	switch flag {
	case "0":
		return ""
	case "":
		return ptrName(ctx, ip)
	}
	return flag
}
