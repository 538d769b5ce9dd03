package integration

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// unitFile is the systemd unit "make install" installs.
const unitFile = "../contrib/systemd/sslserver@.service"

// TestUnitCapabilities starts sslserver as the unit has systemd start it:
// no_new_privs, no inheritable capabilities, and a bounding set of only
// the unit's CapabilityBoundingSet. With that it serves a session whose
// program runs under other ids; without CAP_SYS_CHROOT, CAP_SETUID or
// CAP_SETGID it cannot start its key holder (nor a worker) and stops at
// start (exit 111), so none of them is in the list for nothing.
func TestUnitCapabilities(t *testing.T) {
	needRoot(t)
	setpriv := needTool(t, "setpriv")
	caps := unitCapabilities(t)
	for _, need := range []string{"CAP_SETUID", "CAP_SETGID", "CAP_SYS_CHROOT", "CAP_NET_BIND_SERVICE", "CAP_KILL"} {
		if !slices.Contains(caps, need) {
			t.Errorf("%s: CapabilityBoundingSet lacks %s", unitFile, need)
		}
	}
	s := startServer(t, serverConfig{wrap: privWrap(setpriv, caps), flags: []string{"-u", "65534", "-g", "65534"}, role: "echo"})
	s.goodSession(t, "under the unit's capabilities")
	if st := procStatus(t, s.pid); st["NoNewPrivs"] != "1" {
		t.Errorf("sslserver's NoNewPrivs is %q", st["NoNewPrivs"])
	}

	for _, drop := range []string{"CAP_SYS_CHROOT", "CAP_SETUID", "CAP_SETGID"} {
		t.Run("without "+drop, func(t *testing.T) {
			less := slices.DeleteFunc(slices.Clone(caps), func(c string) bool { return c == drop })
			argv := append(privWrap(setpriv, less), binary(t, "sslserver"), "-1", "127.0.0.1", "0", "/bin/true")
			code, _, stderr := runCommand(t, argv[0], serverEnv(t, serverConfig{cert: newCert(t, keyECDSA)}), argv[1:]...)
			if code != 111 || !regexp.MustCompile(`^sslserver: fatal: .*unable to start key holder: .*operation not permitted\n$`).MatchString(stderr) {
				t.Errorf("exit %d, stderr %q; want 111 and a fatal line: the key holder cannot be started", code, stderr)
			}
		})
	}
}

// privWrap is setpriv's command line for the unit's confinement.
func privWrap(setpriv string, caps []string) []string {
	bounding := []string{"-all"}
	for _, c := range caps {
		bounding = append(bounding, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	return []string{setpriv, "--no-new-privs", "--inh-caps=-all", "--bounding-set=" + strings.Join(bounding, ","), "--"}
}

// unitCapabilities reads the unit's CapabilityBoundingSet.
func unitCapabilities(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.FromSlash(unitFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapabilityBoundingSet="); ok {
			return strings.Fields(v)
		}
	}
	t.Fatalf("%s has no CapabilityBoundingSet", unitFile)
	return nil
}
