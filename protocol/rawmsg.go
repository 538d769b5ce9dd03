package protocol

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawRecvmsg and rawSendmsg are recvmsg(2) and sendmsg(2) of one
// datagram with MSG_DONTWAIT, made as raw system calls. They never
// block, so they need not tell the Go scheduler; and a process woken by
// the poller for one message does not, with its first system call, also
// wake the runtime's monitor thread (sysmon), which then polls every
// 20 µs until the process is idle again. For the key holder, whose every
// burst of work is a message in and a message out, that polling was
// about half of its CPU per session.
func rawRecvmsg(fd uintptr, p, oob []byte) (n, oobn, flags int, errno unix.Errno) {
	return rawmsg(unix.SYS_RECVMSG, fd, p, oob, unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC)
}

func rawSendmsg(fd uintptr, p, oob []byte) unix.Errno {
	_, _, _, errno := rawmsg(unix.SYS_SENDMSG, fd, p, oob, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
	return errno
}

// rawmsg makes recvmsg or sendmsg (trap) of one datagram p with its
// control data oob; on success it returns the bytes moved and what the
// kernel left in the header, on failure zeros and the errno.
func rawmsg(trap, fd uintptr, p, oob []byte, flags uintptr) (n, oobn, msgFlags int, errno unix.Errno) {
	iov := unix.Iovec{Base: &p[0]}
	iov.SetLen(len(p))
	msg := unix.Msghdr{Iov: &iov}
	msg.SetIovlen(1)
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	r, _, e := unix.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&msg)), flags)
	if e != 0 {
		return 0, 0, 0, e
	}
	return int(r), int(msg.Controllen), int(msg.Flags), 0
}
