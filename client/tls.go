package client

import (
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/ucspi-tls/sslserver/env"
	"github.com/ucspi-tls/sslserver/protocol"
	"github.com/ucspi-tls/sslserver/tlsworker/keys"
)

// settings is everything TLS that sslclient resolves before it connects,
// as paths, DER and numbers: its TLS process looks nothing up by name
// after it has confined itself.
type settings struct {
	chain      keys.Chain // the client certificate; nil: none
	keyFile    string     // opened here, passed as a descriptor
	passphrase []byte
	caFile     string // absolute; "" with caDir "" means the system's roots
	caDir      string
	suites     []uint16
	jail       bool // running as root: confine fully
	uid, gid   uint32
	root       string
	ownRoot    bool // we made root and remove it at exit
}

// getenv is os.Getenv, or a test's map.
type getenv func(string) string

// loadSettings reads the client certificate (CERTFILE, KEYFILE,
// CERTCHAINFILE, or -c/-k), the trust anchors (CAFILE, CADIR, or -a/-A),
// CIPHERS (or -z) and, as root, the TLS process's SSL_UID, SSL_GID and
// SSL_CHROOT. The options win over the environment.
func loadSettings(o *Options, get getenv, log *logger) (*settings, error) {
	s := &settings{}
	steps := []func() error{
		func() error {
			return s.clientCert(pick(o.CertFile, get("CERTFILE")), pick(o.KeyFile, get("KEYFILE")), get("CERTCHAINFILE"))
		},
		func() error { return s.trust(pick(o.CAFile, get("CAFILE")), pick(o.CADir, get("CADIR"))) },
		func() error { s.suites = cipherSuites(pick(o.Ciphers, get("CIPHERS")), log); return nil },
		func() error { return s.jailFor(get) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			s.cleanup()
			return nil, err
		}
	}
	ignored(get, log)
	return s, nil
}

func pick(option, environ string) string {
	if option != "" {
		return option
	}
	return environ
}

// ignored says at -v which settings Go's TLS has no use for.
func ignored(get getenv, log *logger) {
	if get("DHFILE") != "" {
		log.Info("DHFILE is ignored: Go's TLS uses only elliptic-curve key exchange")
	}
	if get("VERIFYDEPTH") != "" {
		log.Info("VERIFYDEPTH is ignored: any chain up to a trusted root is accepted")
	}
}

// clientCert parses the certificate chain here (it is public) and leaves
// the key file to the TLS process, which parses it once confined.
func (s *settings) clientCert(certFile, keyFile, chainFile string) error {
	if certFile == "" {
		if keyFile != "" {
			return fmt.Errorf("KEYFILE %q without CERTFILE", keyFile)
		}
		return nil
	}
	chain, err := keys.LoadChain(certFile, chainFile)
	if err != nil {
		return fmt.Errorf("unable to read client certificate: %w", err)
	}
	if len(chain) > 16 {
		return fmt.Errorf("client certificate chain of %d certificates; at most 16", len(chain))
	}
	s.chain = chain
	s.keyFile = pick(keyFile, certFile)
	return nil
}

// trust checks that CAFILE and CADIR exist now, so a typo fails before
// any connection is made; the TLS process reads them.
func (s *settings) trust(caFile, caDir string) error {
	for _, p := range []struct {
		name, path string
		dst        *string
		dir        bool
	}{{"CAFILE", caFile, &s.caFile, false}, {"CADIR", caDir, &s.caDir, true}} {
		if p.path == "" {
			continue
		}
		abs, err := filepath.Abs(p.path)
		if err != nil {
			return fmt.Errorf("%s %q: %w", p.name, p.path, err)
		}
		st, err := os.Stat(abs)
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		if st.IsDir() != p.dir {
			return fmt.Errorf("%s %q is not a %s", p.name, p.path, map[bool]string{true: "directory", false: "file"}[p.dir])
		}
		*p.dst = abs
	}
	return nil
}

// cipherSuites reads an OpenSSL cipher list as sslserver does: only the
// names of secure TLS 1.2 suites count; the rest is ignored (said at -v),
// and nothing left means Go's defaults.
func cipherSuites(spec string, log *logger) []uint16 {
	var ids []uint16
	var skipped []string
	seen := map[uint16]bool{}
	for _, w := range strings.FieldsFunc(spec, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
		id, ok := env.CipherSuiteID(w)
		switch {
		case !ok:
			skipped = append(skipped, w)
		case !seen[id]:
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(skipped) > 0 {
		log.Info("CIPHERS: ignoring %s (not a TLS 1.2 suite Go offers; TLS 1.3 suites are always Go's)", strings.Join(skipped, ":"))
	}
	return ids
}

// readPassphrase implements -3: the key's passphrase, NUL-terminated, on
// fd 3, which is closed afterwards so the program never inherits it.
func (s *settings) readPassphrase() error {
	f := os.NewFile(3, "passphrase")
	defer f.Close()
	p, err := keys.ReadPassphrase(f)
	if err != nil {
		return fmt.Errorf("unable to read passphrase from fd 3: %w", err)
	}
	if s.chain == nil {
		keys.Wipe(p) // no key to decrypt
		return nil
	}
	s.passphrase = p
	return nil
}

// jailFor: as root, the TLS process is confined as a server's worker is:
// SSL_UID and SSL_GID (else nobody's ids), chrooted into SSL_CHROOT (else
// an empty directory made here). Without root there is nothing to set.
func (s *settings) jailFor(get getenv) error {
	if os.Geteuid() != 0 {
		return nil
	}
	s.jail = true
	var err error
	if s.uid, err = pickID("SSL_UID", get("SSL_UID"), nobodyID("uid")); err != nil {
		return err
	}
	if s.gid, err = pickID("SSL_GID", get("SSL_GID"), nobodyID("gid")); err != nil {
		return err
	}
	if s.uid == 0 || s.gid == 0 {
		return fmt.Errorf("the TLS process would run as root (uid %d gid %d): set SSL_UID and SSL_GID", s.uid, s.gid)
	}
	return s.jailRoot(get("SSL_CHROOT"))
}

func pickID(name, v string, fallback func() (uint32, error)) (uint32, error) {
	if v == "" {
		return fallback()
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s=%q is not a numeric id", name, v)
	}
	return uint32(n), nil
}

func nobodyID(which string) func() (uint32, error) {
	return func() (uint32, error) {
		u, err := user.Lookup("nobody")
		if err != nil {
			return 0, fmt.Errorf("no SSL_%s and no user nobody: %w", strings.ToUpper(which), err)
		}
		v := u.Uid
		if which == "gid" {
			v = u.Gid
		}
		n, err := strconv.ParseUint(v, 10, 32)
		return uint32(n), err
	}
}

// jailRoot checks SSL_CHROOT as sslserver does, or makes an empty
// directory that only root may write to.
func (s *settings) jailRoot(dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "sslclient-root.")
		if err != nil {
			return fmt.Errorf("unable to make an empty root for the TLS process: %w", err)
		}
		s.root, s.ownRoot = d, true
		return os.Chmod(d, 0o555)
	}
	if !strings.HasPrefix(dir, "/") || dir == "/" {
		return fmt.Errorf("SSL_CHROOT=%q must be an absolute path other than /", dir)
	}
	st, err := os.Stat(dir)
	switch {
	case err != nil:
		return fmt.Errorf("SSL_CHROOT: %w", err)
	case !st.IsDir():
		return fmt.Errorf("SSL_CHROOT=%q is not a directory", dir)
	case st.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("SSL_CHROOT=%q is writable by group or others", dir)
	case st.Sys().(*syscall.Stat_t).Uid == s.uid:
		return fmt.Errorf("SSL_CHROOT=%q is owned by the TLS process's uid %d", dir, s.uid)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) > 0 {
		return fmt.Errorf("SSL_CHROOT=%q must be an empty directory", dir)
	}
	s.root = dir
	return nil
}

// cleanup removes the root we made and wipes the passphrase.
func (s *settings) cleanup() {
	if s.ownRoot {
		os.Remove(s.root)
	}
	keys.Wipe(s.passphrase)
}

// peerNames derives, from the host argument, the name sent as SNI (a
// name only, never an address) and the name or address the certificate
// must be for ("" with -N).
func peerNames(host string, nameCheck bool) (sni, verify string) {
	if host == "0" {
		host = "0.0.0.0"
	}
	if a, err := netip.ParseAddr(host); err == nil {
		verify = a.Unmap().WithZone("").String()
	} else {
		sni = strings.ToLower(strings.TrimSuffix(host, "."))
		verify = sni
	}
	if !nameCheck {
		verify = ""
	}
	return sni, verify
}

// config is the TLS process's one configuration message.
func (s *settings) config(o *Options) *protocol.ClientConfig {
	sni, verify := peerNames(o.Host, o.NameCheck)
	c := &protocol.ClientConfig{
		Jail: s.jail, UID: s.uid, GID: s.gid, Root: s.root, Delayed: o.Delayed,
		HandshakeMsec: uint32(o.Handshake().Milliseconds()), IdleMsec: uint32(o.Idle.Milliseconds()),
		ServerName: sni, VerifyHost: verify, Enforce: o.Verify,
		CAFile: s.caFile, CADir: s.caDir, Chain: s.chain, Passphrase: s.passphrase, CipherSuites: s.suites,
	}
	return c
}
