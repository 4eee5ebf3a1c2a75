package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The README's "Running it" sequence on a fresh directory, step by step:
// init, migrate, orgs create, users create, tokens create, serve as its own
// process, and a call with the token answered 200 by a real upstream.
func TestRunningItFromTheREADME(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"path": "` + r.URL.Path + `", "org": "` + r.Header.Get("X-Keygate-Org") + `"}`))
	}))
	defer upstream.Close()
	dir := filepath.Join(t.TempDir(), "keygate")
	cfg := filepath.Join(dir, "keygate.yaml")
	listen := freeAddr(t)
	step := func(args ...string) string {
		t.Helper()
		out, err := runCLI(t, args...)
		if err != nil {
			t.Fatalf("keygate %s: %v\n%s", strings.Join(args, " "), userMessage(err), out)
		}
		return out
	}

	out := step("init", "--dir", dir, "--api", "inventory", "--preset", "canskan", "--upstream", upstream.URL,
		"--listen", listen, "--admin-listen", freeAddr(t))
	if !strings.Contains(out, "keygate serve --config "+cfg) {
		t.Errorf("init does not say what to run next:\n%s", out)
	}
	written, _ := os.ReadFile(cfg)
	step("migrate", "--config", cfg)
	step("orgs", "create", "--data-dir", dir, "--slug", "acme", "--plan", "pro", "--states", "California,Oregon")
	t.Setenv("KEYGATE_PASSWORD", "a long enough passphrase")
	step("users", "create", "--data-dir", dir, "--email", "ann@acme.test", "--org", "acme", "--role", "owner")
	out = step("tokens", "create", "--data-dir", dir, "--org", "acme", "--api", "inventory", "--name", "Production", "--expires", "90d")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	token := lines[len(lines)-1]
	if !strings.HasPrefix(token, "inventory_live_") || !strings.Contains(out, "scopes: read") {
		t.Fatalf("tokens create:\n%s", out)
	}
	if again, _ := os.ReadFile(cfg); string(again) != string(written) {
		t.Fatal("a command changed the config init wrote")
	}

	serve := exec.Command(os.Args[0], "-test.run=^$")
	serve.Env = append(os.Environ(), runMainEnv+"=1", runMainEnv+"_ARGS=serve --config "+cfg)
	var logs strings.Builder
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	defer func() {
		_ = serve.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("keygate serve exited with %v\n%s", err, logs.String())
			}
		case <-time.After(20 * time.Second):
			_ = serve.Process.Kill()
			t.Errorf("keygate serve did not stop on SIGTERM")
		}
		if strings.Contains(logs.String(), token) {
			t.Error("the token is in keygate's log")
		}
	}()
	waitForListener(t, listen, exited)

	status, body := get(t, "http://"+listen+"/v1/items", "Authorization", "Bearer "+token)
	if status != http.StatusOK || !strings.Contains(body, `"path": "/v1/items"`) {
		t.Fatalf("call with the token: %d %s", status, body)
	}
	if status, body := get(t, "http://"+listen+"/v1/items"); status != http.StatusUnauthorized || body != `{"message": "API token required."}` {
		t.Errorf("call without a token: %d %s", status, body)
	}
}

// waitForListener waits until addr accepts connections, failing early if
// the process that should open it exits.
func waitForListener(t *testing.T, addr string, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			t.Fatalf("keygate serve exited before listening: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("nothing listens on %s", addr)
}

// Without APIs there is nothing to guard: serve refuses and says how to
// write a config.
func TestServeWithoutAPIsRefusesAndPointsToInit(t *testing.T) {
	dir := t.TempDir()
	_, err := runCLI(t, "serve", "--data-dir", dir)
	if err == nil {
		t.Fatal("serve started with no APIs")
	}
	msg := userMessage(err)
	for _, want := range []string{"no APIs are configured in --data-dir " + dir, "keygate init --dir DIR --api NAME --preset cannmenus|canskan|custom --upstream URL", "keygate demo"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}

// init refuses flags that would make an invalid file, naming the flags, and
// never overwrites a config unless told to.
func TestInitRefusesBadFlagsAndExistingConfig(t *testing.T) {
	dir := t.TempDir()
	_, err := runCLI(t, "init", "--dir", dir, "--api", "Inventory", "--preset", "kong", "--upstream", "ftp://x")
	want := "--api: must be lower-case letters, digits, \"-\" and \"_\" (at most 63), got \"Inventory\"\n" +
		"--preset: must be one of \"cannmenus\", \"canskan\", \"custom\", got \"kong\"\n" +
		"--upstream: must be an http:// or https:// URL such as \"http://127.0.0.1:9080\", got \"ftp://x\""
	if err == nil || userMessage(err) != want {
		t.Fatalf("bad flags: %v\nwant:\n%s", err, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "keygate.yaml")); !os.IsNotExist(err) {
		t.Fatal("a refused init left a file")
	}
	args := []string{"init", "--dir", dir, "--api", "my-api", "--preset", "custom", "--upstream", "http://127.0.0.1:9"}
	if out, err := runCLI(t, args...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := runCLI(t, args...); err == nil || !strings.Contains(userMessage(err), "already exists") {
		t.Fatalf("second init: %v", err)
	}
	if out, err := runCLI(t, append(args, "--force")...); err != nil {
		t.Fatalf("--force: %v\n%s", err, out)
	}
}
