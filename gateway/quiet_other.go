//go:build !unix

package gateway

import "syscall"

// idlePeek cannot peek at a socket on this platform: a connection counts
// as quiet when nothing is buffered (upstreamConn.quiet), and a close
// while idle is caught when the request fails (closedWhileIdle).
type idlePeek struct{}

func newIdlePeek(syscall.RawConn) *idlePeek { return nil }

func (*idlePeek) socketQuiet() bool { return true }
