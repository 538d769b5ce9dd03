package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecondCertificates: CERTFILE2 and CERTFILE2:name add a second
// certificate for a name, labelled NAME/2; one without its first, or a
// KEYFILE2 without a CERTFILE2, is refused.
func TestSecondCertificates(t *testing.T) {
	dir := t.TempDir()
	cert := func(name string) string {
		c, k := selfSigned(t, name, false)
		p := filepath.Join(dir, name+".pem")
		os.WriteFile(p, append(c, k...), 0o600)
		return p
	}
	env := map[string]string{"CERTFILE": cert("a"), "CERTFILE2": cert("b"), "CERTFILE:mx.test": cert("c"), "CERTFILE2:mx.test": cert("d")}
	environ := func() []string {
		var l []string
		for k, v := range env {
			l = append(l, k+"="+v)
		}
		return l
	}
	get := func(k string) string { return env[k] }
	set, err := loadCerts(get, environ(), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(set.labels, " "); got != "default default/2 mx.test mx.test/2" {
		t.Errorf("labels %q", got)
	}
	if set.certs[1].Name != "" || set.certs[3].Name != "mx.test" {
		t.Errorf("names %q %q", set.certs[1].Name, set.certs[3].Name)
	}
	delete(env, "CERTFILE:mx.test")
	if _, err := loadCerts(get, environ(), false); err == nil || !strings.Contains(err.Error(), "CERTFILE2:mx.test is set but CERTFILE:mx.test is not") {
		t.Errorf("a second certificate without a first: %v", err)
	}
	delete(env, "CERTFILE2:mx.test")
	delete(env, "CERTFILE2")
	env["KEYFILE2"] = cert("e")
	if _, err := loadCerts(get, environ(), false); err == nil || !strings.Contains(err.Error(), "KEYFILE2 is set but CERTFILE2 is not") {
		t.Errorf("KEYFILE2 alone: %v", err)
	}
}
