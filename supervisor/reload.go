package supervisor

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ucspi-tls/sslserver/internal/dane"
)

// defaultPoll is how often the certificate files are looked at when
// SSL_RELOAD_POLL does not say: renewals come days ahead of expiry, so a
// minute is soon enough, and reading a few small files a minute costs
// nothing.
const defaultPoll = 60 * time.Second

// reloader serialises reloads and remembers what the files looked like
// when last read, for the poll.
type reloader struct {
	mu    sync.Mutex
	stamp string // stampOf the files at the last reload or attempt
}

// pollInterval reads SSL_RELOAD_POLL: seconds between looks at the
// certificate files, 0 for none (SIGHUP only).
func pollInterval(get getenv) (time.Duration, error) {
	n, err := envInt(get, "SSL_RELOAD_POLL", int(defaultPoll/time.Second), 0, 86400)
	return time.Duration(n) * time.Second, err
}

// watchCerts reloads on each SIGHUP and, every `every`, when the files
// of the current certificates have changed.
func (s *Server) watchCerts(hups <-chan os.Signal, every time.Duration) {
	s.reloads.stamp = s.kh.currentSet().stamp()
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case _, ok := <-hups:
			if !ok {
				return
			}
			s.reload("SIGHUP")
		case <-tick:
			if s.kh.currentSet().stamp() != s.reloads.stamp {
				s.reload("files changed")
			}
		case <-s.kh.stop:
			return
		}
	}
}

// reload reads the certificates again and switches to them once the
// key holder started for them has loaded every key and found each to
// match its certificate; on any failure the old set keeps serving and
// one warning says why. Sessions running keep what they began with;
// idle workers holding the old certificates are retired, so the next
// handshake is served with the new ones. why is for the log.
func (s *Server) reload(why string) error {
	s.reloads.mu.Lock()
	defer s.reloads.mu.Unlock()
	// The service manager hears of the reload, and that it is over,
	// whether or not the new set took.
	s.notify(daemonReloading)
	defer s.notify(daemonReady)
	old := s.kh.currentSet()
	// Taken before the files are read: a change made while they are
	// being read shows at the next poll.
	s.reloads.stamp = old.stamp()
	set, err := loadCerts(os.Getenv, os.Environ(), s.opt.ClientCert != 'Z')
	if err == nil {
		err = s.checkConfig(set)
	}
	if err == nil {
		err = s.kh.replace(set)
	}
	if err != nil {
		s.log.Warning("reload (%s) failed, the old certificates keep serving: %v", why, err)
		return err
	}
	retired := s.pool.retireStale()
	s.pool.refillLater()
	s.log.Reload(fmt.Sprintf("reloaded certificates (%s): %s; %d idle workers retired", why, describeChanges(old, set), retired))
	for _, c := range keyChanges(old, set) {
		s.log.Warning("%s", c)
	}
	s.logRecords(set)
	return nil
}

// logRecords logs, at -v, each certificate's expiry and the DANE record
// of its key: what to publish, and when the next renewal is due.
func (s *Server) logRecords(set *certSet) {
	for _, c := range set.certs {
		leaf := set.leaves[c.Key]
		s.log.Info("certificate %s: valid until %s, TLSA %s", set.labels[c.Key], leaf.NotAfter.UTC().Format(time.RFC3339), dane.Record(dane.EE, leaf))
	}
}

// stamp sums up the set's files as they are now, for the poll.
func (t *certSet) stamp() string {
	secret := map[string]bool{t.tickets: true}
	for _, p := range t.keyPaths {
		secret[p] = true
	}
	return stampOf(t.files, secret)
}

// stampOf sums up files as they are now: size, modification time, inode
// and content of what each path leads to, so a symlink switched to
// another file (certbot's live/ directory) shows as a change, and so
// does a certificate rewritten within one second. The content of secret
// files (keys, TICKETKEYFILE) is not read: the supervisor never reads
// key bytes, only hands the key holder a descriptor; their size, time
// and inode stand for it.
func stampOf(files []string, secret map[string]bool) string {
	h := sha256.New()
	for _, p := range files {
		fmt.Fprintf(h, "%q ", p)
		stampFile(h, p, secret[p])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func stampFile(h io.Writer, path string, secret bool) {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(h, "error %v\n", err)
		return
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil {
		fmt.Fprintf(h, "%d %d ", st.Size(), st.ModTime().UnixNano())
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			fmt.Fprintf(h, "%d:%d ", sys.Dev, sys.Ino)
		}
	}
	if secret {
		fmt.Fprintln(h)
		return
	}
	content := sha256.New()
	io.Copy(content, io.LimitReader(f, maxCertFile))
	fmt.Fprintf(h, "%x\n", content.Sum(nil))
}

// maxCertFile bounds what the poll reads of one file.
const maxCertFile = 1 << 20

// certName is how the log names a certificate: its SNI name, or
// "default" for CERTFILE.
func certName(name string) string {
	if name == "" {
		return "default"
	}
	return name
}

// leavesByName maps each certificate's label to its leaf.
func (t *certSet) leavesByName() map[string]*x509.Certificate {
	m := map[string]*x509.Certificate{}
	for _, c := range t.certs {
		m[t.labels[c.Key]] = t.leaves[c.Key]
	}
	return m
}

// describeChanges says which certificates a reload changed, and how.
func describeChanges(old, set *certSet) string {
	before := old.leavesByName()
	var parts []string
	for _, c := range set.certs {
		leaf, label := set.leaves[c.Key], set.labels[c.Key]
		was := before[label]
		switch {
		case was == nil:
			parts = append(parts, label+" added")
		case !leaf.Equal(was):
			parts = append(parts, fmt.Sprintf("%s new certificate serial %x, valid until %s",
				label, leaf.SerialNumber, leaf.NotAfter.UTC().Format(time.RFC3339)))
		}
	}
	if len(parts) == 0 {
		return "no certificate changed"
	}
	return strings.Join(parts, ", ")
}

// keyChanges names each certificate whose public key a reload changed,
// with the DANE records of the old and the new key: a TLSA record that
// pins the key (3 1 1, as for SMTP) no longer matches.
func keyChanges(old, set *certSet) []string {
	before := old.leavesByName()
	var out []string
	for _, c := range set.certs {
		leaf, label := set.leaves[c.Key], set.labels[c.Key]
		was := before[label]
		if was == nil || dane.Record(dane.EE, was) == dane.Record(dane.EE, leaf) {
			continue
		}
		out = append(out, fmt.Sprintf("%s: the public key changed: DANE TLSA record %s is now %s; update TLSA records that pin the key",
			label, dane.Record(dane.EE, was), dane.Record(dane.EE, leaf)))
	}
	return out
}
