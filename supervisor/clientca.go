package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"

	"github.com/ucspi-tls/sslserver/protocol"
	"github.com/ucspi-tls/sslserver/tlsworker/keys"
)

// defaultVerifyDepth is how many CA certificates may stand above a
// client's certificate when VERIFYDEPTH is unset: an intermediate or two
// and the root, with room to spare.
const defaultVerifyDepth = 5

// clientCAs is what -z and -m verify client certificates with, read by
// the supervisor and given to the workers as DER.
type clientCAs struct {
	trusted   [][]byte // CAFILE and CADIR
	advertise [][]byte // CCAFILE: whose names the CertificateRequest lists
	depth     uint16   // VERIFYDEPTH
}

// loadClientCAs reads CAFILE, CADIR, CCAFILE and VERIFYDEPTH, adding
// every file it reads to files (for the reload poll).
func loadClientCAs(get getenv, files *[]string) (*clientCAs, error) {
	c := &clientCAs{depth: defaultVerifyDepth}
	if v := get("VERIFYDEPTH"); v != "" {
		n, err := strconv.ParseUint(v, 10, 8)
		if err != nil || n > 100 {
			return nil, fmt.Errorf("VERIFYDEPTH=%q is not a number from 0 to 100", v)
		}
		c.depth = uint16(n)
	}
	if f := get("CAFILE"); f != "" {
		ders, err := readCAs("CAFILE", f)
		if err != nil {
			return nil, err
		}
		c.trusted, *files = append(c.trusted, ders...), append(*files, f)
	}
	if d := get("CADIR"); d != "" {
		ders, read, err := readCADir(d)
		if err != nil {
			return nil, err
		}
		c.trusted, *files = append(c.trusted, ders...), append(*files, read...)
	}
	if len(c.trusted) == 0 {
		return nil, fmt.Errorf("client certificates (-z, -m) need CAFILE or CADIR: the CAs that sign them")
	}
	c.trusted = dedupe(c.trusted)
	return c, c.loadAdvertised(get("CCAFILE"), files)
}

// loadAdvertised reads CCAFILE: unset, the trusted CAs are listed; "-",
// none.
func (c *clientCAs) loadAdvertised(f string, files *[]string) error {
	switch f {
	case "":
		c.advertise = c.trusted
		return nil
	case "-":
		return nil
	}
	ders, err := readCAs("CCAFILE", f)
	if err != nil {
		return err
	}
	c.advertise, *files = ders, append(*files, f)
	return nil
}

// readCAs reads a PEM file of certificates; variable names it in errors.
func readCAs(variable, path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("unable to read %s: %w", variable, err)
	}
	ders, err := keys.ParseChain(data, nil)
	if err != nil {
		return nil, fmt.Errorf("%s=%s: %w", variable, path, err)
	}
	return ders, nil
}

// hashName is the name OpenSSL's rehash gives a CA certificate in a
// CApath directory: the subject hash, a dot, a number.
var hashName = regexp.MustCompile(`^[0-9a-f]{8}\.[0-9]+$`)

// readCADir reads the hash.N files of an OpenSSL CApath directory;
// other files there (the certificates the links point to, a README) are
// left alone, as OpenSSL leaves them.
func readCADir(dir string) (ders [][]byte, read []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("unable to read CADIR: %w", err)
	}
	for _, e := range entries {
		if !hashName.MatchString(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		got, err := readCAs("CADIR", p)
		if err != nil {
			return nil, nil, err
		}
		ders, read = append(ders, got...), append(read, p)
	}
	return ders, read, nil
}

// dedupe drops repeated certificates, keeping the first of each.
func dedupe(ders [][]byte) [][]byte {
	var out [][]byte
	for _, d := range ders {
		if !slices.ContainsFunc(out, func(o []byte) bool { return string(o) == string(d) }) {
			out = append(out, d)
		}
	}
	return out
}

// clientCertMode is -z, -m or -Z as the worker protocol says it.
func clientCertMode(o *Options) uint8 {
	switch o.ClientCert {
	case 'z':
		return protocol.ClientCertMatchHost
	case 'm':
		return protocol.ClientCertRequire
	}
	return protocol.ClientCertNone
}
