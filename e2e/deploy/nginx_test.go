package deploy_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The nginx recipe in deploy/nginx/, as committed (only addresses
// changed), in front of a real keygate and a real nginx.
func TestNginxForwardAuthRecipe(t *testing.T) {
	nginx := program(t, "nginx", "")
	s := startKeygate(t)
	menusPort, eventsPort := freePort(t), freePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf")
	copyRecipe(t, "../../deploy/nginx/keygate.conf", filepath.Join(conf, "keygate", "keygate.conf"), nil)
	copyRecipe(t, "../../deploy/nginx/keygate-protect.conf", filepath.Join(conf, "keygate", "keygate-protect.conf"), nil)
	copyRecipe(t, "../../deploy/nginx/example.conf", filepath.Join(conf, "example.conf"), map[string]string{
		"server 127.0.0.1:8090;": "server " + s.admin + ";",
		"server 127.0.0.1:9080;": "server " + s.upstream + ";",
		"server 127.0.0.1:9081;": "server " + s.upstream + ";",
		"listen 8080;":           "listen 127.0.0.1:" + menusPort + ";",
		"listen 8081;":           "listen 127.0.0.1:" + eventsPort + ";",
	})
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n"
	}
	main := user + "worker_processes 1;\npid " + filepath.Join(dir, "nginx.pid") + ";\nerror_log stderr warn;\n" +
		"events { worker_connections 256; }\nhttp {\n  access_log off;\n  include example.conf;\n}\n"
	writeText(t, filepath.Join(conf, "nginx.conf"), main)

	var stderr bytes.Buffer
	cmd := exec.Command(nginx, "-p", dir, "-c", filepath.Join(conf, "nginx.conf"), "-e", "stderr", "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		<-exited
		if t.Failed() {
			t.Logf("nginx said:\n%s", stderr.String())
		}
	})
	waitListening(t, "127.0.0.1:"+menusPort, exited)
	waitListening(t, "127.0.0.1:"+eventsPort, exited)

	checkProxyRecipe(t, s, "http://127.0.0.1:"+menusPort, "http://127.0.0.1:"+eventsPort)

	// nginx answers its own subrequest location only internally.
	if got := send(t, "GET", "http://127.0.0.1:"+menusPort+"/_keygate/auth"); got.status != 404 {
		t.Errorf("/_keygate/auth reachable from outside: %d", got.status)
	}
}

// copyRecipe copies a committed recipe file, replacing each key of
// replace (which must occur) with its value.
func copyRecipe(t *testing.T, from, to string, replace map[string]string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for old, new := range replace {
		if !strings.Contains(text, old) {
			t.Fatalf("%s no longer contains %q: update the test's addresses", from, old)
		}
		text = strings.ReplaceAll(text, old, new)
	}
	writeText(t, to, text)
}

func writeText(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
