package supervisor

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned makes a self-signed certificate for cn, a CA or not, and
// returns it and its key as PEM.
func selfSigned(t *testing.T, cn string, ca bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, IsCA: ca,
		BasicConstraintsValid: true, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

func caPEM(t *testing.T, cn string) []byte {
	c, _ := selfSigned(t, cn, true)
	return c
}

// TestLoadClientCAs: CAFILE and CADIR's hash.N files are trusted (each
// certificate once; other files in CADIR are left alone), CCAFILE
// defaults to them and "-" names none, and every bad setting is one
// clear error naming its variable.
func TestLoadClientCAs(t *testing.T) {
	dir := t.TempDir()
	a, b := caPEM(t, "A"), caPEM(t, "B")
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, a, 0o644)
	caDir := filepath.Join(dir, "certs")
	os.Mkdir(caDir, 0o755)
	os.WriteFile(filepath.Join(caDir, "0a1b2c3d.0"), b, 0o644)
	os.WriteFile(filepath.Join(caDir, "deadbeef.0"), a, 0o644) // the same CA again
	os.WriteFile(filepath.Join(caDir, "README"), []byte("not a certificate"), 0o644)
	env := map[string]string{"CAFILE": caFile, "CADIR": caDir}
	get := func(k string) string { return env[k] }

	var files []string
	c, err := loadClientCAs(get, &files)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.trusted) != 2 || len(c.advertise) != 2 || c.depth != defaultVerifyDepth || len(files) != 3 {
		t.Errorf("got %d trusted, %d advertised, depth %d, files %q; want 2, 2, %d and 3 files",
			len(c.trusted), len(c.advertise), c.depth, files, defaultVerifyDepth)
	}
	env["CCAFILE"], env["VERIFYDEPTH"] = "-", "0"
	if c, err = loadClientCAs(get, new([]string)); err != nil || len(c.advertise) != 0 || c.depth != 0 {
		t.Errorf("CCAFILE=- VERIFYDEPTH=0: %+v %v", c, err)
	}
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"no CA":           {map[string]string{}, "need CAFILE or CADIR"},
		"depth":           {map[string]string{"CAFILE": caFile, "VERIFYDEPTH": "101"}, `VERIFYDEPTH="101" is not a number from 0 to 100`},
		"missing CAFILE":  {map[string]string{"CAFILE": filepath.Join(dir, "none")}, "unable to read CAFILE"},
		"garbage CCAFILE": {map[string]string{"CAFILE": caFile, "CCAFILE": filepath.Join(caDir, "README")}, "CCAFILE="},
		"missing CADIR":   {map[string]string{"CADIR": filepath.Join(dir, "none")}, "unable to read CADIR"},
	} {
		_, err := loadClientCAs(func(k string) string { return tc.env[k] }, new([]string))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tc.want)
		}
	}
}
