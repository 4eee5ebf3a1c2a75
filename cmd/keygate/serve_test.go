package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runMainEnv makes the test binary run keygate's main instead of the
// tests, so a test can see its exit status and stderr as a user would.
const runMainEnv = "KEYGATE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Args = append([]string{"keygate"}, strings.Fields(os.Getenv(runMainEnv+"_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// A database that cannot be reached stops `keygate serve` with a message
// that says so and a non-zero exit status, never a crash, and never the
// password from the URL.
func TestServeWithUnreachableDatabaseExitsWithAClearError(t *testing.T) {
	dir := t.TempDir()
	config := "data_dir: .\n" +
		"database_url: postgres://keygate:hunter2-secret@" + closedAddr(t) + "/keygate?sslmode=disable&connect_timeout=2\n" +
		"admin: {listen: 127.0.0.1:0}\n" +
		"apis:\n  - name: menus\n    preset: cannmenus\n    listen: 127.0.0.1:0\n    upstream: http://127.0.0.1:9\n" +
		"    routes:\n      - {path: /v2/products, methods: [GET]}\n"
	file := filepath.Join(dir, "keygate.yaml")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), runMainEnv+"=1", runMainEnv+"_ARGS=serve --config "+file)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	elapsed := time.Since(start)
	t.Logf("keygate serve exited after %v with %v; output:\n%s", elapsed.Round(time.Millisecond), err, out)
	exit, ok := err.(*exec.ExitError)
	if !ok || exit.ExitCode() != 1 {
		t.Fatalf("want exit status 1, got %v", err)
	}
	text := string(out)
	if strings.Contains(text, "panic") || strings.Contains(text, "SIGSEGV") || strings.Contains(text, "goroutine ") {
		t.Errorf("keygate crashed instead of reporting the error")
	}
	if !strings.Contains(text, "keygate: opening the database: ") {
		t.Errorf("the message does not say the database could not be opened")
	}
	if strings.Contains(text, "hunter2-secret") {
		t.Errorf("the database password appeared in the output")
	}
}
