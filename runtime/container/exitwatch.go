package container

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// exitWatch hears process exits from the kernel's process events
// connector (cn_proc, a netlink multicast group that root in the initial
// PID namespace may join): the one way for a process that is not the
// parent to learn how a process ended. Stop opens one before signalling
// an unsupervised container, whose init was reparented away from sigil,
// so that the exit code it records is the one the kernel saw rather than
// unknown. An exit before the watch is opened, or lost to a full socket
// buffer, stays unknown.
type exitWatch struct{ fd int }

// Constants of linux/connector.h and linux/cn_proc.h.
const (
	cnIdxProc         = 1
	cnValProc         = 1
	procCnMcastListen = 1
	procEventExit     = 0x80000000
	nlmsgHdrLen       = 16
	cnMsgLen          = 20
)

// watchExits joins the process events group. It fails where the
// connector is not available (not root, not the initial PID or user
// namespace, a kernel without CONFIG_PROC_EVENTS).
func watchExits() (*exitWatch, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("process events connector: %w", err)
	}
	w := &exitWatch{fd: fd}
	// Port 0: the kernel picks a free port ID. The process ID, the usual
	// choice, is taken by the second of two stops running at once.
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		w.close()
		return nil, fmt.Errorf("process events connector: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	nl, ok := sa.(*unix.SockaddrNetlink)
	if err != nil || !ok {
		w.close()
		return nil, fmt.Errorf("process events connector: port ID: %v", err)
	}
	msg := make([]byte, nlmsgHdrLen+cnMsgLen+4)
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], unix.NLMSG_DONE)
	ne.PutUint32(msg[12:], nl.Pid)
	ne.PutUint32(msg[16:], cnIdxProc)
	ne.PutUint32(msg[20:], cnValProc)
	ne.PutUint16(msg[32:], 4) // payload length
	ne.PutUint32(msg[36:], procCnMcastListen)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		w.close()
		return nil, fmt.Errorf("process events connector: %w", err)
	}
	return w, nil
}

// exitStatus returns the wait status of process pid's exit, if it was
// heard within d. Events of other processes are skipped.
func (w *exitWatch) exitStatus(pid int, d time.Duration) (unix.WaitStatus, bool) {
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(d)
	ne := binary.NativeEndian
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return 0, false
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := unix.SetsockoptTimeval(w.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return 0, false
		}
		n, _, err := unix.Recvfrom(w.fd, buf, 0)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ENOBUFS) {
			continue // ENOBUFS: events were lost, maybe ours; keep listening
		}
		if err != nil {
			return 0, false
		}
		for b := buf[:n]; len(b) >= nlmsgHdrLen; {
			l := int(ne.Uint32(b[0:]))
			if l < nlmsgHdrLen || l > len(b) {
				break
			}
			m := b[nlmsgHdrLen:l]
			// cn_msg, then proc_event: what, cpu, timestamp, then for an
			// exit: pid, tgid, exit_code, exit_signal...
			if len(m) >= cnMsgLen+32 && ne.Uint32(m[0:]) == cnIdxProc && ne.Uint32(m[cnMsgLen:]) == procEventExit {
				ev := m[cnMsgLen+16:]
				if int(int32(ne.Uint32(ev[0:]))) == pid && int(int32(ne.Uint32(ev[4:]))) == pid {
					return unix.WaitStatus(ne.Uint32(ev[8:])), true
				}
			}
			next := (l + 3) &^ 3 // NLMSG_ALIGN
			if next > len(b) {
				break
			}
			b = b[next:]
		}
	}
}

func (w *exitWatch) close() {
	if w != nil {
		_ = unix.Close(w.fd)
	}
}
