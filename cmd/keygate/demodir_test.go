package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Without --data-dir the demo says where its data is and how to keep it,
// and a clean stop removes the temporary directory.
func TestDemoWithoutDataDirLeavesNothingBehind(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var stdout, stderr bytes.Buffer
	g := &globals{stdout: &stdout, stderr: &stderr}
	addrs := distinctFreeAddrs(t, 3)
	f := &demoFlags{menusListen: addrs[0], eventsListen: addrs[1], adminListen: addrs[2]}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runDemo(ctx, g, f) }()

	var dirs []string
	// demo.env is written once the data is seeded.
	for start := time.Now(); len(dirs) == 0 || !listening(f.adminListen); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			cancel()
			t.Fatalf("demo did not start: %v\n%s", <-done, stderr.String())
		}
		dirs, _ = filepath.Glob(filepath.Join(tmp, "keygate-demo-*", "demo.env"))
	}
	dirs[0] = filepath.Dir(dirs[0])
	if _, err := os.Stat(filepath.Join(dirs[0], "keygate.db")); err != nil {
		t.Fatalf("no database in %s: %v", dirs[0], err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("demo stopped with %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"Data: " + dirs[0], "temporary: removed when the demo stops; run keygate demo --data-dir DIR to keep it"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "removed its temporary data "+dirs[0]) {
		t.Errorf("stop message:\n%s", stderr.String())
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "keygate-demo-*")); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}

func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// distinctFreeAddrs returns n loopback addresses free right now, all
// different: each port is held until all are found.
func distinctFreeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out
}
