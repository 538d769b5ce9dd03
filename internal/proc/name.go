package proc

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// SetName names the calling thread, which on the main thread (from a
// package init) is the name ps -e, top and pgrep show for the process:
// a role re-executed through /proc/self/exe would otherwise be "exe".
func SetName(name string) {
	p, err := unix.BytePtrFromString(name)
	if err == nil {
		unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(p)), 0, 0, 0)
	}
}
