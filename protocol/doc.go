// Package protocol holds every byte that crosses a process boundary in
// this project: the fd numbers each child finds its descriptors at, the
// exit codes, the UCSPI-TLS control commands and reply block that the
// application sees, and the typed messages between the supervisor, the
// TLS workers and the key holder.
//
// Each definition exists once and is used by both sides. Decoders are
// strict: a message of the wrong size, an unknown type, trailing bytes or
// an out-of-range field is an error, never ignored.
//
// An application that wants TLS under sslserver -n does:
//
//	ctl := os.NewFile(uintptr(fd), "ctl") // fd from $SSLCTLFD
//	vars, err := protocol.StartTLS(ctl, true)
//	// now read $SSLREADFD and write $SSLWRITEFD
package protocol
