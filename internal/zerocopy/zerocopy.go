// Package zerocopy sends file bytes to a TCP socket without copying them
// through user space: sendfile(2), under TCP_CORK. The broker serves fetches
// with it, and the benchmark's raw-sendfile baseline uses the same code, so
// that the two differ only by the Kafka protocol.
package zerocopy

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// SetCork sets or clears TCP_CORK on tc. While it is set the kernel sends
// only full segments; clearing it sends what is left.
func SetCork(tc *net.TCPConn, on bool) error {
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	v := 0
	if on {
		v = 1
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK, v) }); err != nil {
		return err
	}
	return serr
}

// Sendfile sends n bytes of f from off to tc with sendfile(2), leaving f's
// position alone, and waits on the poller whenever the socket buffer is
// full. It returns the bytes sent.
func Sendfile(tc *net.TCPConn, f *os.File, off, n int64) (int64, error) {
	fc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var infd int
	if err := fc.Control(func(fd uintptr) { infd = int(fd) }); err != nil {
		return 0, err
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var written int64
	var serr error
	werr := rc.Write(func(outfd uintptr) bool {
		for written < n {
			o := off + written
			m, e := unix.Sendfile(int(outfd), infd, &o, int(min(n-written, 1<<30)))
			if m > 0 {
				written += int64(m)
			}
			switch {
			case e == unix.EAGAIN:
				return false // wait until writable
			case e == unix.EINTR:
				continue
			case e != nil:
				serr = os.NewSyscallError("sendfile", e)
				return true
			case m == 0:
				serr = fmt.Errorf("zerocopy: sendfile: %s ended %d bytes early", f.Name(), n-written)
				return true
			}
		}
		return true
	})
	if serr != nil {
		return written, serr
	}
	if werr != nil && !errors.Is(werr, syscall.EAGAIN) {
		return written, werr
	}
	return written, nil
}
