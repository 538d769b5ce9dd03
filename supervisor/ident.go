package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// identPort is the IDENT service's port (RFC 1413).
const identPort = 113

// maxIdentLine bounds the reply we read. RFC 1413 allows 1000 bytes, but
// a user id that fits no smaller line is not one we want to pass on.
const maxIdentLine = 512

// identQuery asks the IDENT server on the remote host who owns the
// connection between remote and local. It connects from local's address,
// as the identd sees the connection from there and may check that the
// question comes from the connection's peer. It returns the user id, or
// "" for no server, an error reply or anything malformed, and gives up
// when ctx is done.
func identQuery(ctx context.Context, local, remote netip.AddrPort) string {
	c, err := dialIdent(ctx, local.Addr(), remote.Addr())
	if err != nil {
		return ""
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, identConn{c}.abort)
	defer stop()
	if _, err := fmt.Fprintf(c, "%d , %d\r\n", remote.Port(), local.Port()); err != nil {
		return ""
	}
	line, err := readIdentLine(c)
	if err != nil {
		return ""
	}
	user, _ := parseIdentReply(line, remote.Port(), local.Port())
	return user
}

func dialIdent(ctx context.Context, local, remote netip.Addr) (net.Conn, error) {
	local, remote = local.Unmap(), remote.Unmap()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local.AsSlice(), Zone: local.Zone()}}
	return d.DialContext(ctx, "tcp", netip.AddrPortFrom(remote, identPort).String())
}

// identConn ends a query when its context ends, whether by the -t
// deadline or by the session being cancelled.
type identConn struct{ net.Conn }

func (c identConn) abort() {
	c.SetDeadline(time.Unix(1, 0))
}

// readIdentLine reads one line, ending in '\n', of at most maxIdentLine
// bytes.
func readIdentLine(r io.Reader) (string, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, maxIdentLine), maxIdentLine)
	line, err := br.ReadSlice('\n')
	if err != nil {
		return "", fmt.Errorf("reading IDENT reply: %w", err)
	}
	return string(line), nil
}

// parseIdentReply returns the user id of a USERID reply to the question
// about (remotePort, localPort):
//
//	remotePort , localPort : USERID : opsys[,charset] : user id\r\n
//
// The user id is everything after the third colon, without surrounding
// blanks; it must be non-empty UTF-8 without control characters, since it
// ends up in log lines, rule keys and the environment. An ERROR reply,
// a reply about other ports, or anything malformed gives false.
func parseIdentReply(line string, remotePort, localPort uint16) (string, bool) {
	line, ok := strings.CutSuffix(line, "\n")
	if !ok {
		return "", false
	}
	line = strings.TrimSuffix(line, "\r")
	ports, rest, ok := strings.Cut(line, ":")
	if !ok || !identPortsMatch(ports, remotePort, localPort) {
		return "", false
	}
	kind, rest, ok := strings.Cut(rest, ":")
	if !ok || !strings.EqualFold(strings.Trim(kind, " \t"), "USERID") {
		return "", false
	}
	opsys, user, ok := strings.Cut(rest, ":")
	if !ok || strings.Trim(opsys, " \t") == "" {
		return "", false
	}
	user = strings.Trim(user, " \t")
	if user == "" || !printable(user) {
		return "", false
	}
	return user, true
}

// identPortsMatch checks the reply's "remotePort , localPort".
func identPortsMatch(s string, remotePort, localPort uint16) bool {
	r, l, ok := strings.Cut(s, ",")
	return ok && identPortIs(r, remotePort) && identPortIs(l, localPort)
}

func identPortIs(s string, want uint16) bool {
	n, err := strconv.ParseUint(strings.Trim(s, " \t"), 10, 16)
	return err == nil && uint16(n) == want
}

// printable is true for valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}
