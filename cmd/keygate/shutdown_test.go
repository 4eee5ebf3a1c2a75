package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SIGTERM with a request in flight whose upstream never finishes (a
// stream gone quiet): keygate serve gives it listeners.shutdown_grace,
// then closes it and exits; the stuck upstream does not hold the process.
func TestServeExitsWithinTheShutdownGraceDespiteAStuckUpstream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: first\n\n")
				_, _ = r.ReadByte() // stuck until keygate closes the connection
			}()
		}
	}()
	dir := t.TempDir()
	listen := freeAddr(t)
	config := "data_dir: .\n" +
		"admin: {listen: " + freeAddr(t) + "}\n" +
		"listeners: {shutdown_grace: 1s}\n" +
		"apis:\n  - name: events\n    preset: canskan\n    listen: " + listen + "\n    upstream: http://" + ln.Addr().String() + "\n" +
		"    routes:\n      - {path: '/p/{code}', methods: [GET], access: public}\n"
	file := filepath.Join(dir, "keygate.yaml")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	serve := exec.Command(os.Args[0], "-test.run=^$")
	serve.Dir = dir
	serve.Env = append(os.Environ(), runMainEnv+"=1", runMainEnv+"_ARGS=serve --config "+file)
	var logs strings.Builder
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	defer func() { _ = serve.Process.Kill() }()
	waitForListener(t, listen, exited)

	resp, err := http.Get("http://" + listen + "/p/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, len("data: first\n\n"))); err != nil {
		t.Fatal(err)
	}
	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case err := <-exited:
		took := time.Since(start)
		t.Logf("SIGTERM with a stuck stream, shutdown_grace 1s: exited after %v (%v)", took.Round(time.Millisecond), err)
		if took > 4*time.Second {
			t.Errorf("exited %v after SIGTERM, want about the 1s grace", took)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("keygate serve still running 15s after SIGTERM (shutdown_grace 1s)\n%s", logs.String())
	}
	if _, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Error("the cut stream ended as if whole")
	}
	if !strings.Contains(logs.String(), "shutdown grace ended with requests in flight") ||
		!strings.Contains(logs.String(), "keygate: events listener: requests still in flight when the shutdown grace ended were cut off") {
		t.Errorf("the grace's end is not logged:\n%s", logs.String())
	}
}
