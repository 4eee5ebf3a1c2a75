package main

import (
	"context"
	"io"
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

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/internal/tcptest"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/postgres"
	"github.com/keygate/keygate/postgres/pgtest"
)

// SIGTERM with a request in flight whose upstream never finishes (a
// stream gone quiet): keygate serve gives it listeners.shutdown_grace,
// then closes it and exits; the stuck upstream does not hold the process.
func TestServeExitsWithinTheShutdownGraceDespiteAStuckUpstream(t *testing.T) {
	upstream := tcptest.ServeAfterHead(t, func(c net.Conn) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: first\n\n")
		_, _ = c.Read(make([]byte, 1)) // stuck until keygate closes the connection
	})
	listen := freeAddr(t)
	config := "data_dir: .\n" +
		"admin: {listen: " + freeAddr(t) + "}\n" +
		"listeners: {shutdown_grace: 1s}\n" +
		"apis:\n  - name: events\n    preset: canskan\n    listen: " + listen + "\n    upstream: http://" + upstream + "\n" +
		"    routes:\n      - {path: '/p/{code}', methods: [GET], access: public}\n"
	serve, exited, logs := startServeProcess(t, config, listen)

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

// startServeProcess runs keygate serve with config in a process of its
// own, for tests that signal it, and returns once listen accepts
// connections. The process is killed when the test ends.
func startServeProcess(t *testing.T, config, listen string) (serve *exec.Cmd, exited <-chan error, logs *strings.Builder) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "keygate.yaml")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	serve = exec.Command(os.Args[0], "-test.run=^$")
	serve.Dir = dir
	serve.Env = append(os.Environ(), runMainEnv+"=1", runMainEnv+"_ARGS=serve --config "+file)
	logs = &strings.Builder{}
	serve.Stdout, serve.Stderr = logs, logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve.Wait() }()
	t.Cleanup(func() { _ = serve.Process.Kill() })
	waitForListener(t, listen, done)
	return serve, done, logs
}

// SIGTERM with PostgreSQL silent (its connections blackholed, not
// refused) and a request's usage waiting to be written: keygate serve
// gives the writes listeners.shutdown_grace, then exits without waiting
// out the 15 s pgx gives each cut-short connection to say goodbye.
func TestServeExitsWithinTheShutdownGraceWhenTheDatabaseStopsAnswering(t *testing.T) {
	base := pgtest.NewSchema(t)
	proxy := pgtest.NewProxy(t, base)
	upstream := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer upstream.Close()
	listen := freeAddr(t)
	config := "data_dir: .\n" +
		"database_url: " + proxy.URL(base) + "\n" +
		"admin: {listen: " + freeAddr(t) + "}\n" +
		"listeners: {shutdown_grace: 1s}\n" +
		"usage: {flush_interval: 1h}\n" +
		"apis:\n  - name: events\n    preset: canskan\n    listen: " + listen + "\n    upstream: " + upstream.URL + "\n" +
		"    scopes: [attendees:read]\n" +
		"    routes:\n      - {path: /attendees, methods: [GET], access: token, scopes: [attendees:read]}\n"
	serve, exited, logs := startServeProcess(t, config, listen)
	secret := createToken(t, base, config)
	req, _ := http.NewRequest("GET", "http://"+listen+"/attendees", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	proxy.Blackhole()
	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case err := <-exited:
		took := time.Since(start)
		t.Logf("SIGTERM with the database blackholed, shutdown_grace 1s: exited after %v (%v)", took.Round(time.Millisecond), err)
		if took > 1*time.Second+5*time.Second+2*time.Second {
			t.Errorf("exited %v after SIGTERM, want within the 1s grace and 5s", took)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("keygate serve still running 30s after SIGTERM (shutdown_grace 1s)\n%s", logs.String())
	}
	if got := logs.String(); !strings.Contains(got, "leaving them to close as keygate exits") || strings.Contains(got, secret) {
		t.Errorf("want the abandoned close logged, without the token:\n%s", got)
	}
}

// createToken makes an organization and a token (attendees:read) for the
// first API of yaml in the database at url, and returns the token's secret.
func createToken(t *testing.T, url, yaml string) string {
	t.Helper()
	cfg, err := config.Parse("keygate.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	org := &keygate.Organization{Slug: "acme"}
	if err := manage.CreateOrganization(ctx, st, org, time.Now()); err != nil {
		t.Fatal(err)
	}
	api := cfg.APIs()[0]
	_, secret, err := manage.CreateToken(ctx, st, api, org, keygate.TokenRequest{Name: "t", Scopes: []string{"attendees:read"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return secret
}
