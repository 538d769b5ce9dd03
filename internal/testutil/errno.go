package testutil

import (
	"errors"

	"golang.org/x/sys/unix"
)

// ErrnoName is how a test reports a system call's outcome in one word:
// "ok" for no error (nil or errno 0), the errno's name (ENOTTY), or
// else the error's text.
func ErrnoName(err error) string {
	var e unix.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &e) && e == 0:
		return "ok"
	case errors.As(err, &e):
		return unix.ErrnoName(e)
	}
	return err.Error()
}
