package supervisor

import (
	"os/exec"
	"strings"
)

// lookPath finds the program as execvp would; a name with a slash is
// used as it is, and a name not found is left for exec to report.
func lookPath(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return name
}
