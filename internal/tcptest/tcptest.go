// Package tcptest gives tests raw TCP peers: upstreams, databases and
// Redis servers that send exactly the bytes a test scripts, or nothing,
// where a real server would normalise what the test needs to send.
package tcptest

import (
	"bytes"
	"net"
	"testing"
)

// Serve accepts connections on a loopback listener that closes with the
// test, runs handle for each on its own goroutine and closes the
// connection when handle returns. It returns the listener's address.
func Serve(t testing.TB, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// ServeAfterHead is Serve for an HTTP peer: handle gets each connection
// once a whole request head has come on it (and whatever followed it in
// the same reads), and a connection that ends first is closed.
func ServeAfterHead(t testing.TB, handle func(c net.Conn)) string {
	t.Helper()
	return Serve(t, func(c net.Conn) {
		var head []byte
		buf := make([]byte, 64<<10)
		for !bytes.Contains(head, []byte("\r\n\r\n")) {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			head = append(head, buf[:n]...)
		}
		handle(c)
	})
}
