package deploy_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The Caddy recipe in deploy/caddy/, as committed (site addresses and
// ports changed; the test adds `admin off`), in front of a real keygate
// and a real Caddy, built by .ci/run from github.com/caddyserver/caddy/v2.
func TestCaddyForwardAuthRecipe(t *testing.T) {
	caddy := program(t, "caddy", "KEYGATE_TEST_CADDY")
	s := startKeygate(t)
	menusPort, eventsPort := freePort(t), freePort(t)
	dir := t.TempDir()
	copyRecipe(t, "../../deploy/caddy/keygate.caddy", filepath.Join(dir, "keygate.caddy"), nil)
	copyRecipe(t, "../../deploy/caddy/Caddyfile", filepath.Join(dir, "Caddyfile.recipe"), map[string]string{
		"menus.example.com":  "http://127.0.0.1:" + menusPort,
		"events.example.com": "http://127.0.0.1:" + eventsPort,
		"127.0.0.1:8090":     s.admin,
		"127.0.0.1:9080":     s.upstream,
		"127.0.0.1:9081":     s.upstream,
	})
	recipe, _ := os.ReadFile(filepath.Join(dir, "Caddyfile.recipe"))
	writeText(t, filepath.Join(dir, "Caddyfile"), "{\n\tadmin off\n\tpersist_config off\n}\n\n"+string(recipe))

	var out bytes.Buffer
	cmd := exec.Command(caddy, "run", "--config", filepath.Join(dir, "Caddyfile"), "--adapter", "caddyfile")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		<-exited
		if t.Failed() {
			t.Logf("caddy said:\n%s", out.String())
		}
	})
	waitListening(t, "127.0.0.1:"+menusPort, exited)
	waitListening(t, "127.0.0.1:"+eventsPort, exited)

	checkProxyRecipe(t, s, "http://127.0.0.1:"+menusPort, "http://127.0.0.1:"+eventsPort)
}
