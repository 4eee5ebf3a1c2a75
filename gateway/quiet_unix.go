//go:build unix

package gateway

import "syscall"

// idlePeek peeks at an idle connection's socket without blocking or
// consuming: quiet when there is nothing to read yet. Bytes, an end of
// stream (the upstream closed it) or an error all mean the connection must
// not be reused. Made once per connection, so a check allocates nothing.
type idlePeek struct {
	raw   syscall.RawConn
	buf   [1]byte
	quiet bool
	peek  func(fd uintptr) bool
}

func newIdlePeek(raw syscall.RawConn) *idlePeek {
	p := &idlePeek{raw: raw}
	p.peek = func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		p.quiet = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true // never wait for readiness: this is a check, not a read
	}
	return p
}

func (p *idlePeek) socketQuiet() bool {
	p.quiet = false
	return p.raw.Read(p.peek) == nil && p.quiet
}
