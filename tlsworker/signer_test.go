package tlsworker

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ucspi-tls/sslserver/protocol"
)

// utServerName is the name the test certificates are for.
const utServerName = "ut.example"

// utCert makes a self-signed server certificate for key, valid for an
// hour either side of now, and a pool that trusts it.
func utCert(t *testing.T, key crypto.Signer) ([]byte, *x509.CertPool) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: utServerName},
		DNSNames:     []string{utServerName},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return der, pool
}

// utTCPPair returns both ends of a loopback TCP connection.
func utTCPPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *net.TCPConn, 1)
	go utAccept(ln, accepted)
	client, err = net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func utAccept(ln *net.TCPListener, out chan<- *net.TCPConn) {
	c, err := ln.AcceptTCP()
	if err != nil {
		c = nil
	}
	out <- c
}

// utHandshake runs a server and a client handshake over loopback TCP,
// bounded, and returns both errors and the client's view. On success the
// client has also read what the server wrote after the handshake.
func utHandshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error, cs tls.ConnectionState) {
	t.Helper()
	st, ct := utTCPPair(t)
	deadline := time.Now().Add(utBound)
	st.SetDeadline(deadline)
	ct.SetDeadline(deadline)
	serr := make(chan error, 1)
	go utServerGreet(tls.Server(st, server), serr)
	c := tls.Client(ct, client)
	clientErr = c.Handshake()
	if clientErr == nil {
		clientErr = utExpectGreeting(c)
	}
	return <-serr, clientErr, c.ConnectionState()
}

var utGreeting = []byte("hello from the server\n")

// utServerGreet handshakes, writes the greeting, and hangs up.
func utServerGreet(c *tls.Conn, errc chan<- error) {
	defer c.Close()
	err := c.Handshake()
	if err == nil {
		_, err = c.Write(utGreeting)
	}
	errc <- err
}

func utExpectGreeting(c *tls.Conn) error {
	got := make([]byte, len(utGreeting))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, utGreeting) {
		return errors.New("greeting garbled: " + string(got))
	}
	return nil
}

func utServerConfig(der []byte, signer crypto.Signer, version uint16) *tls.Config {
	return &tls.Config{
		Certificates:           []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: signer}},
		MinVersion:             version,
		MaxVersion:             version,
		SessionTicketsDisabled: true,
	}
}

func utClientConfig(pool *x509.CertPool, version uint16) *tls.Config {
	return &tls.Config{RootCAs: pool, ServerName: utServerName, MinVersion: version, MaxVersion: version}
}

// TestSignerHandshake: a server whose certificate's key is a
// remoteSigner completes TLS 1.2 and 1.3 handshakes that the client
// verifies, for each key type, spending exactly one signature.
func TestSignerHandshake(t *testing.T) {
	keys := utKeys(t).signers()
	versions := []struct {
		name string
		v    uint16
	}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}
	for _, key := range []struct {
		name string
		idx  uint16
	}{{"RSA", utRSA}, {"ECDSA", utECDSA}, {"Ed25519", utEd25519}} {
		der, pool := utCert(t, keys[key.idx])
		for _, ver := range versions {
			t.Run(key.name+"/"+ver.name, func(t *testing.T) {
				h := utStartHolder(t, keys, 1, 0)
				s := &remoteSigner{pub: keys[key.idx].Public(), key: key.idx, ch: h.ch, timeout: utBound}
				serr, cerr, cs := utHandshake(t, utServerConfig(der, s, ver.v), utClientConfig(pool, ver.v))
				if serr != nil || cerr != nil {
					t.Fatalf("handshake: server %v, client %v", serr, cerr)
				}
				if cs.Version != ver.v {
					t.Errorf("negotiated version %x, want %x", cs.Version, ver.v)
				}
				// The budget of one is spent: the handshake's signature
				// came from the key holder.
				if _, err := s.Sign(rand.Reader, make([]byte, 32), crypto.SHA256); err == nil || !strings.Contains(err.Error(), "refused") {
					t.Errorf("a second signature: %v, want a refusal", err)
				}
			})
		}
	}
}

// TestSignerSigns: each option a handshake passes to Sign gives a
// signature that verifies, PKCS#1 v1.5 included, which Go's TLS server
// never picks while PSS is on offer.
func TestSignerSigns(t *testing.T) {
	keys := utKeys(t).signers()
	sum := sha256.Sum256([]byte("transcript"))
	cases := []struct {
		name string
		key  uint16
		opts crypto.SignerOpts
		in   []byte
	}{
		{"RSA PKCS1v15", utRSA, crypto.SHA256, sum[:]},
		{"RSA PSS", utRSA, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}, sum[:]},
		{"ECDSA", utECDSA, crypto.SHA256, sum[:]},
		{"Ed25519", utEd25519, crypto.Hash(0), []byte("the whole message")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := utStartHolder(t, keys, 1, 0)
			s := &remoteSigner{pub: keys[c.key].Public(), key: c.key, ch: h.ch, timeout: utBound}
			sig, err := s.Sign(rand.Reader, c.in, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			_, pss := c.opts.(*rsa.PSSOptions)
			req := &protocol.SignRequest{Key: c.key, Hash: c.opts.HashFunc(), PSS: pss, Digest: c.in}
			if err := utVerify(s.Public(), req, sig); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSignerRefusesLocally: requests the key holder would refuse never
// leave the worker, so they cost nothing of the budget.
func TestSignerRefusesLocally(t *testing.T) {
	keys := utKeys(t).signers()
	h := utStartHolder(t, keys, 1, 0)
	s := &remoteSigner{pub: keys[utRSA].Public(), key: utRSA, ch: h.ch, timeout: utBound}
	sum := sha256.Sum256([]byte("x"))
	bad := []struct {
		name string
		in   []byte
		opts crypto.SignerOpts
	}{
		{"PSS with an automatic salt", sum[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA256}},
		{"digest of the wrong length", sum[:20], crypto.SHA256},
		{"a hash no handshake uses", sum[:20], crypto.SHA1},
	}
	for _, b := range bad {
		if _, err := s.Sign(rand.Reader, b.in, b.opts); err == nil {
			t.Errorf("%s: signed", b.name)
		}
	}
	if _, err := s.Sign(rand.Reader, sum[:], crypto.SHA256); err != nil {
		t.Errorf("after the local refusals the budget of one is gone: %v", err)
	}
}

// TestSignerConcurrent: Sign is safe to call from several goroutines:
// the key holder never has two of the worker's requests in flight, and
// each caller gets the signature of its own digest.
func TestSignerConcurrent(t *testing.T) {
	keys := utKeys(t).signers()
	const n = 8
	holder, ch := utChannels(t)
	overlaps := make(chan int, 1)
	go utServeOneAtATime(holder, &workerClient{signers: keys}, n, overlaps)
	s := &remoteSigner{pub: keys[utECDSA].Public(), key: utECDSA, ch: ch, timeout: utBound}
	results := make(chan utSigned, n)
	for i := range n {
		sum := sha256.Sum256([]byte{byte(i)})
		go utSignInto(s, sum[:], results)
	}
	for range n {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		req := &protocol.SignRequest{Key: utECDSA, Hash: crypto.SHA256, Digest: r.digest}
		if err := utVerify(s.Public(), req, r.sig); err != nil {
			t.Errorf("a concurrent caller got someone else's signature: %v", err)
		}
	}
	if o := <-overlaps; o != 0 {
		t.Errorf("%d requests arrived while another was unanswered", o)
	}
}

// utChannels returns both ends of a new channel: the key holder's and
// the worker's.
func utChannels(t *testing.T) (holder, worker *protocol.Channel) {
	t.Helper()
	a, b, err := protocol.Pair("ut key holder")
	if err != nil {
		t.Fatal(err)
	}
	if holder, err = protocol.NewChannel(a, protocol.SignRequests); err != nil {
		t.Fatal(err)
	}
	if worker, err = protocol.NewChannel(b, protocol.SignReplies); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Close(); worker.Close() })
	return holder, worker
}

// utServeOneAtATime signs n requests with w's keys, but before it
// answers each one it waits a little to see whether the worker sends
// another: it counts those overlaps and reports them at the end.
func utServeOneAtATime(ch *protocol.Channel, w *workerClient, n int, overlaps chan<- int) {
	var pending []*protocol.SignRequest
	count := 0
	for served := 0; served < n; {
		wait := utBound
		if len(pending) > 0 {
			wait = 20 * time.Millisecond // long enough for a racing request
		}
		ch.SetReadDeadline(time.Now().Add(wait))
		m, _, err := ch.Recv()
		if req, ok := m.(*protocol.SignRequest); ok && err == nil {
			if len(pending) > 0 {
				count++
			}
			pending = append(pending, req)
			continue
		}
		if len(pending) == 0 {
			break // the worker hung up or sent nonsense
		}
		for _, req := range pending {
			sig, _ := w.sign(req)
			ch.Send(&protocol.Signature{Sig: sig})
			served++
		}
		pending = nil
	}
	overlaps <- count
}

type utSigned struct {
	digest, sig []byte
	err         error
}

func utSignInto(s crypto.Signer, digest []byte, out chan<- utSigned) {
	sig, err := s.Sign(rand.Reader, digest, crypto.SHA256)
	out <- utSigned{digest: digest, sig: sig, err: err}
}

// utSilentHolder is a key holder that takes requests and never answers:
// the other end of the channel stays open and unread.
func utSilentHolder(t *testing.T) *protocol.Channel {
	t.Helper()
	a, b, err := protocol.Pair("ut silent key holder")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := protocol.NewChannel(a, protocol.SignReplies)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close(); b.Close() })
	return ch
}

// TestSignerTimesOut: a key holder that never answers costs one timeout,
// for a direct Sign and for a handshake.
func TestSignerTimesOut(t *testing.T) {
	keys := utKeys(t).signers()
	const timeout = 300 * time.Millisecond
	s := &remoteSigner{pub: keys[utECDSA].Public(), key: utECDSA, ch: utSilentHolder(t), timeout: timeout}
	sum := sha256.Sum256([]byte("x"))
	start := time.Now()
	_, err := s.Sign(rand.Reader, sum[:], crypto.SHA256)
	utCheckWithin(t, time.Since(start), timeout, timeout+2*time.Second)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Sign: %v, want a deadline error", err)
	}

	s = &remoteSigner{pub: keys[utECDSA].Public(), key: utECDSA, ch: utSilentHolder(t), timeout: timeout}
	der, pool := utCert(t, keys[utECDSA])
	start = time.Now()
	serr, cerr, _ := utHandshake(t, utServerConfig(der, s, tls.VersionTLS13), utClientConfig(pool, tls.VersionTLS13))
	utCheckWithin(t, time.Since(start), timeout, timeout+2*time.Second)
	if serr == nil || !strings.Contains(serr.Error(), "key holder") || cerr == nil {
		t.Errorf("handshake with a silent key holder: server %v, client %v", serr, cerr)
	}
}

func utCheckWithin(t *testing.T, took, low, high time.Duration) {
	t.Helper()
	if took < low || took > high {
		t.Errorf("took %v, want between %v and %v", took, low, high)
	}
}

// TestSignerRefusal: a SignRefused fails the handshake, with the key
// holder's reason in the server's error.
func TestSignerRefusal(t *testing.T) {
	keys := utKeys(t).signers()
	der, pool := utCert(t, keys[utEd25519])
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		h := utStartHolder(t, keys, 0, 0) // refuses the first request
		s := &remoteSigner{pub: keys[utEd25519].Public(), key: utEd25519, ch: h.ch, timeout: utBound}
		serr, cerr, _ := utHandshake(t, utServerConfig(der, s, v), utClientConfig(pool, v))
		if serr == nil || !strings.Contains(serr.Error(), "key holder refused to sign: no more signatures") {
			t.Errorf("server: %v, want the key holder's refusal", serr)
		}
		if cerr == nil {
			t.Error("the client completed a handshake the server could not sign")
		}
	}
}

// TestSignerOddReplies: a reply other than a Signature is an error,
// never a signature.
func TestSignerOddReplies(t *testing.T) {
	keys := utKeys(t).signers()
	sum := sha256.Sum256([]byte("x"))
	cases := []struct {
		name  string
		reply protocol.Message // nil: hang up
		want  string
	}{
		{"refusal", &protocol.SignRefused{Reason: "because"}, "key holder refused to sign: because"},
		{"a message out of place", &protocol.WorkerReady{}, "not accepted"},
		{"hangup", nil, io.EOF.Error()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			holder, ch := utChannels(t)
			go utAnswerOnce(holder, c.reply)
			s := &remoteSigner{pub: keys[utECDSA].Public(), key: utECDSA, ch: ch, timeout: utBound}
			sig, err := s.Sign(rand.Reader, sum[:], crypto.SHA256)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Sign = %x, %v; want an error containing %q", sig, err, c.want)
			}
		})
	}
}

// utAnswerOnce reads one request, answers with reply (nil: none), and
// hangs up.
func utAnswerOnce(holder *protocol.Channel, reply protocol.Message) {
	defer holder.Close()
	if _, _, err := holder.Recv(); err != nil {
		return
	}
	if reply != nil {
		holder.Send(reply)
	}
}
