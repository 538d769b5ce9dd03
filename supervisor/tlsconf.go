package supervisor

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ucspi-tls/sslserver/protocol"
	"github.com/ucspi-tls/sslserver/tlsworker"
	"github.com/ucspi-tls/sslserver/tlsworker/keys"
)

// tlsSetup is everything TLS that the supervisor resolves at start, as
// numbers, DER and paths: workers and the key holder look nothing up.
type tlsSetup struct {
	*certSet   // as read at start; the key holder has the current one (see keyHolder.set)
	suites     []uint16
	uid, gid   uint32
	root       string
	rootDir    *os.File // root opened O_PATH: workers and the key holder chroot into it by descriptor
	ownRoot    bool     // we made root and remove it at exit
	passphrase []byte
}

// startAttr is how the workers and the key holder are started: already
// with their ids, holding only the capability to chroot (see
// tlsworker.StartAttr).
func (t *tlsSetup) startAttr() *syscall.SysProcAttr {
	return tlsworker.StartAttr(tlsworker.Jail{UID: t.uid, GID: t.gid, Root: t.root})
}

// sandbox names every layer a worker that reported r is in: the jail
// that Confine proved, and the layers the worker reported.
func (t *tlsSetup) sandbox(r *protocol.WorkerReady) string {
	layers := tlsworker.Layers{Seccomp: r.Seccomp, Landlock: r.Landlock}
	return fmt.Sprintf("chroot, ids %d:%d, no_new_privs, no capabilities, %s", t.uid, t.gid, layers)
}

// canExec checks that the workers' ids may execute the binary at path:
// they are started with those ids already (startAttr).
func (t *tlsSetup) canExec(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if t.mayExec(st) {
		return nil
	}
	sys := st.Sys().(*syscall.Stat_t)
	return fmt.Errorf("%s (mode %04o, uid %d gid %d) is not executable by the TLS workers' uid %d gid %d: chmod a+x it",
		path, st.Mode().Perm(), sys.Uid, sys.Gid, t.uid, t.gid)
}

// mayExec says whether the workers' ids have the x bit of st: execute
// for a file, search for a directory.
func (t *tlsSetup) mayExec(st os.FileInfo) bool {
	mode, sys := st.Mode().Perm(), st.Sys().(*syscall.Stat_t)
	switch {
	case sys.Uid == t.uid:
		return mode&0o100 != 0
	case sys.Gid == t.gid:
		return mode&0o010 != 0
	}
	return mode&0o001 != 0
}

// searchable checks that the workers' ids can search the root they get
// as a descriptor: they fchdir into it, so the directories above it
// need not be open to them.
func (t *tlsSetup) searchable(st os.FileInfo) error {
	if !t.mayExec(st) {
		return fmt.Errorf("(mode %04o) is not searchable by the TLS workers' uid %d gid %d", st.Mode().Perm(), t.uid, t.gid)
	}
	return nil
}

// getenv is os.Getenv, or a test's map.
type getenv func(string) string

// loadTLS reads CERTFILE, KEYFILE, CERTCHAINFILE and the CERTFILE:name /
// KEYFILE:name pairs of s6's SNI convention, CIPHERS, and the worker's
// SSL_UID, SSL_GID and SSL_CHROOT.
func loadTLS(o *Options, get getenv, environ []string, l *Log) (*tlsSetup, error) {
	set, err := loadCerts(get, environ, o.ClientCert != 'Z')
	if err != nil {
		return nil, err
	}
	t := &tlsSetup{certSet: set}
	suites, ignored, err := cipherSuites(get("CIPHERS"))
	if err != nil {
		return nil, err
	}
	t.suites = suites
	if len(ignored) > 0 {
		l.Info("CIPHERS: ignoring %s (not a TLS 1.2 suite Go offers; TLS 1.3 suites are always Go's)", strings.Join(ignored, ":"))
	}
	if get("DHFILE") != "" {
		l.Info("DHFILE is ignored: Go's TLS uses only elliptic-curve key exchange")
	}
	if err := t.workerIDs(o, get); err != nil {
		return nil, err
	}
	return t, t.workerRoot(get("SSL_CHROOT"))
}

// addSecond adds CERTFILE2 and KEYFILE2 (or CERTFILE2:name and
// KEYFILE2:name) when set: a second certificate for the same name, say
// RSA beside ECDSA, for clients that cannot use the first.
func (t *certSet) addSecond(name string, get getenv) error {
	suffix := ""
	if name != "" {
		suffix = ":" + name
	}
	certFile := get("CERTFILE2" + suffix)
	if certFile == "" {
		if get("KEYFILE2"+suffix) != "" {
			return fmt.Errorf("KEYFILE2%s is set but CERTFILE2%s is not", suffix, suffix)
		}
		return nil
	}
	return t.addCert(strings.ToLower(name), "2", certFile, get("KEYFILE2"+suffix), "")
}

// sniNames lists the names of prefix+name variables (CERTFILE:name) as
// written, sorted.
func sniNames(environ []string, prefix string) []string {
	var names []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if name, ok := strings.CutPrefix(k, prefix); ok && name != "" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// certSet is one generation of certificates: what CERTFILE, KEYFILE,
// CERTCHAINFILE and the SNI pairs held when they were read. A reload
// makes a new one and switches to it whole.
type certSet struct {
	certs    []protocol.Cert
	leaves   []*x509.Certificate // by key index
	keyPaths []string            // by key index
	keyVars  []string            // by key index: where the path came from, for errors
	labels   []string            // by key index: how the log names it ("default", "mx.example.org/2")
	files    []string            // every file read, for the poll that sees them change
	client   *clientCAs          // -z, -m; nil under -Z
	tickets  string              // TICKETKEYFILE; "": the key holder makes its own ticket keys
}

// loadCerts reads and checks CERTFILE, KEYFILE, CERTCHAINFILE and the
// CERTFILE:name / KEYFILE:name pairs, and with clientCert the client CAs;
// the keys themselves are read by the key holder.
func loadCerts(get getenv, environ []string, clientCert bool) (*certSet, error) {
	t := &certSet{}
	if get("CERTFILE") == "" {
		return nil, fmt.Errorf("CERTFILE is not set")
	}
	if err := t.addCert("", "", get("CERTFILE"), get("KEYFILE"), get("CERTCHAINFILE")); err != nil {
		return nil, err
	}
	if err := t.addSecond("", get); err != nil {
		return nil, err
	}
	names := sniNames(environ, "CERTFILE:")
	for _, name := range names {
		if err := t.addCert(strings.ToLower(name), "", get("CERTFILE:"+name), get("KEYFILE:"+name), ""); err != nil {
			return nil, err
		}
		if err := t.addSecond(name, get); err != nil {
			return nil, err
		}
	}
	for _, name := range sniNames(environ, "CERTFILE2:") {
		if !slices.Contains(names, name) {
			return nil, fmt.Errorf("CERTFILE2:%s is set but CERTFILE:%s is not: the second certificate of a name comes with a first", name, name)
		}
	}
	if t.tickets = get("TICKETKEYFILE"); t.tickets != "" {
		t.files = append(t.files, t.tickets)
	}
	if clientCert {
		var err error
		if t.client, err = loadClientCAs(get, &t.files); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// addCert adds the certificate of CERTFILE (which "") or CERTFILE2
// (which "2"), for the default or for SNI name.
func (t *certSet) addCert(name, which, certFile, keyFile, chainFile string) error {
	certVar, keyVar := "CERTFILE"+which, "KEYFILE"+which
	label := certName(name)
	if which != "" {
		label += "/" + which
	}
	if name != "" {
		certVar, keyVar = certVar+":"+name, keyVar+":"+name
	}
	if certFile == "" {
		return fmt.Errorf("%s is empty", certVar)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return fmt.Errorf("unable to read certificate: %s: %w", certVar, err)
	}
	var chainPEM []byte
	if chainFile != "" {
		if chainPEM, err = os.ReadFile(chainFile); err != nil {
			return fmt.Errorf("unable to read certificate chain: CERTCHAINFILE: %w", err)
		}
	}
	chain, err := keys.ParseChain(certPEM, chainPEM)
	if err != nil {
		files := certVar + "=" + certFile
		if chainFile != "" {
			files += ", CERTCHAINFILE=" + chainFile
		}
		if errors.Is(err, keys.ErrNoCertificate) {
			return fmt.Errorf("%s: %w (want PEM CERTIFICATE blocks)", files, err)
		}
		return fmt.Errorf("%s: %w", files, err)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return fmt.Errorf("%s=%s: %w", certVar, certFile, err)
	}
	keyDesc := keyVar + "=" + keyFile
	if keyFile == "" {
		// Said here, with the way out, rather than by the key holder,
		// which sees only a descriptor.
		if !hasKeyBlock(certPEM) {
			return fmt.Errorf("%s=%s holds no private key and %s is not set: set %s to the key's file", certVar, certFile, keyVar, keyVar)
		}
		keyFile, keyDesc = certFile, fmt.Sprintf("%s=%s (%s is not set)", certVar, certFile, keyVar)
	}
	t.certs = append(t.certs, protocol.Cert{Name: name, Chain: chain, Key: uint16(len(t.keyPaths))})
	t.keyPaths = append(t.keyPaths, keyFile)
	t.keyVars = append(t.keyVars, keyDesc)
	t.leaves = append(t.leaves, leaf)
	t.labels = append(t.labels, label)
	t.files = append(t.files, certFile, keyFile)
	if chainFile != "" {
		t.files = append(t.files, chainFile)
	}
	return nil
}

// hasKeyBlock tells whether a PEM file has a private key block of any
// kind ("PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"...),
// without decoding it.
func hasKeyBlock(pemData []byte) bool {
	return bytes.Contains(pemData, []byte(" PRIVATE KEY-----"))
}

// keyFailure names the file and variable of the key a KeysFailed reason
// is about.
func (t *certSet) keyFailure(reason string) error {
	i, failure, ok := protocol.ParseKeyReason(reason)
	switch {
	case ok && i < len(t.keyVars):
		return fmt.Errorf("%s: %s", t.keyVars[i], failure)
	case ok && i == len(t.keyVars) && t.tickets != "": // the file after the keys
		return fmt.Errorf("TICKETKEYFILE=%s: %s", t.tickets, failure)
	}
	return errors.New(reason)
}

// checkPublic compares the key holder's public keys with the leaves.
func (t *certSet) checkPublic(public [][]byte) error {
	if len(public) != len(t.leaves) {
		return fmt.Errorf("key holder loaded %d keys, want %d", len(public), len(t.leaves))
	}
	for i, leaf := range t.leaves {
		if !bytes.Equal(public[i], leaf.RawSubjectPublicKeyInfo) {
			return fmt.Errorf("private key %s does not match its certificate", t.keyVars[i])
		}
	}
	return nil
}

// workerIDs: SSL_UID/SSL_GID, else the program's -u/-g, else nobody's.
// A TLS worker never runs as root.
func (t *tlsSetup) workerIDs(o *Options, get getenv) error {
	uid, err := pickID("SSL_UID", get("SSL_UID"), o.UID, nobodyUID)
	if err != nil {
		return err
	}
	gid, err := pickID("SSL_GID", get("SSL_GID"), o.GID, nobodyGID)
	if err != nil {
		return err
	}
	if uid == 0 || gid == 0 {
		return fmt.Errorf("TLS workers would run as root (uid %d gid %d): set SSL_UID and SSL_GID", uid, gid)
	}
	t.uid, t.gid = uid, gid
	return nil
}

func pickID(name, v string, fallback *uint32, last func() (uint32, error)) (uint32, error) {
	if v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("%s=%q is not a numeric id", name, v)
		}
		return uint32(n), nil
	}
	if fallback != nil {
		return *fallback, nil
	}
	return last()
}

func nobodyUID() (uint32, error) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return 0, fmt.Errorf("no SSL_UID and no user nobody: %w", err)
	}
	n, err := strconv.ParseUint(u.Uid, 10, 32)
	return uint32(n), err
}

func nobodyGID() (uint32, error) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return 0, fmt.Errorf("no SSL_GID and no user nobody: %w", err)
	}
	n, err := strconv.ParseUint(u.Gid, 10, 32)
	return uint32(n), err
}

// workerRoot checks SSL_CHROOT, or makes an empty directory. A root the
// workers could write to would let one session leave files for another.
func (t *tlsSetup) workerRoot(dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "sslserver-root.")
		if err != nil {
			return fmt.Errorf("unable to make an empty root for TLS workers: %w", err)
		}
		t.root, t.ownRoot = d, true
		if err := os.Chmod(d, 0o555); err != nil {
			t.cleanup()
			return err
		}
		if err := t.openRoot(d); err != nil {
			t.cleanup()
			return fmt.Errorf("the empty root made for TLS workers %w: set TMPDIR or SSL_CHROOT", err)
		}
		return nil
	}
	if !strings.HasPrefix(dir, "/") || dir == "/" {
		return fmt.Errorf("SSL_CHROOT=%q must be an absolute path other than /", dir)
	}
	t.root = dir
	if err := t.openRoot(dir); err != nil {
		return fmt.Errorf("SSL_CHROOT=%q %w", dir, err)
	}
	return nil
}

// openRoot opens the workers' root once, O_PATH, and checks the
// directory behind the descriptor: the workers chroot into that very
// directory, so a path swapped after this check changes nothing.
func (t *tlsSetup) openRoot(dir string) error {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("cannot be opened: %w", err)
	}
	f := os.NewFile(uintptr(fd), dir)
	if err := t.checkRoot(f); err != nil {
		f.Close()
		return err
	}
	t.rootDir = f
	return nil
}

func (t *tlsSetup) checkRoot(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Mode().Perm()&0o022 != 0 {
		return errors.New("is writable by group or others")
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid == t.uid {
		return fmt.Errorf("is owned by the TLS workers' uid %d", t.uid)
	}
	if err := t.searchable(st); err != nil {
		return err
	}
	return emptyDir(f)
}

// emptyDir lists the directory behind an O_PATH descriptor, which cannot
// be read itself, through a readable descriptor of the same directory.
func emptyDir(f *os.File) error {
	fd, err := openAt(f, ".", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), f.Name())
	defer d.Close()
	if names, err := d.Readdirnames(1); err != io.EOF || len(names) > 0 {
		return errors.New("must be an empty directory")
	}
	return nil
}

func openAt(dir *os.File, name string, flags int) (int, error) {
	rc, err := dir.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	cerr := rc.Control(func(dirfd uintptr) { fd, err = unix.Openat(int(dirfd), name, flags, 0) })
	if cerr != nil {
		return -1, cerr
	}
	return fd, err
}

// cleanup removes the root we made.
func (t *tlsSetup) cleanup() {
	if t.rootDir != nil {
		t.rootDir.Close()
	}
	if t.ownRoot {
		os.Remove(t.root)
	}
}
