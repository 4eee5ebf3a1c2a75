package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/keygate/keygate"
)

// runCLIWithInput runs keygate's CLI in-process with stdin.
func runCLIWithInput(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRootCommand(&out, &out)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// A release build stamps its version with -ldflags "-X main.version=…"
// (deploy/build-image.sh does, and .ci/run checks the image's binary); the
// commit and Go version come from the build info Go records.
func TestVersionPrintsVersionCommitAndGo(t *testing.T) {
	saved := version
	version = "v9.8.7"
	defer func() { version = saved }()
	out, err := runCLI(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || lines[0] != "keygate v9.8.7" || !strings.HasPrefix(lines[1], "commit ") || lines[2] != runtime.Version() {
		t.Fatalf("keygate version printed:\n%s", out)
	}
}

// The release build's tag leaves the demo MCP server and the MCP SDK out
// of the binary; the default build keeps them for `keygate demo`.
func TestNodemomcpTagLeavesTheMCPSDKOut(t *testing.T) {
	deps := func(tags string) string {
		out, err := exec.Command("go", "list", "-tags", tags, "-deps", ".").CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		return string(out)
	}
	const sdk = "github.com/modelcontextprotocol/go-sdk/mcp"
	if !strings.Contains(deps(""), sdk) {
		t.Fatalf("the default build lost the demo MCP server")
	}
	if lean := deps("nodemomcp"); strings.Contains(lean, sdk) || strings.Contains(lean, "demo/mcpserver") {
		t.Errorf("a nodemomcp build still links the demo MCP server")
	}
}

func TestVersionWithoutLdflagsSaysDevel(t *testing.T) {
	out, err := runCLI(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "keygate devel\ncommit ") || !strings.HasSuffix(out, runtime.Version()+"\n") {
		t.Fatalf("version output:\n%s", out)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "keygate.yaml")
	writeFile(t, good, "data_dir: "+dir+"\nadmin:\n  listen: 0.0.0.0:8090\napis:\n  - name: menus\n    preset: cannmenus\n    listen: 127.0.0.1:8080\n    upstream: http://127.0.0.1:9\n"+
		"    routes:\n      - path: /v2/products\n        methods: [GET]\n        access: token\n")
	out, err := runCLI(t, "config", "check", "--config", good)
	if err != nil {
		t.Fatalf("config check: %v\n%s", err, out)
	}
	for _, want := range []string{"is valid", "admin: 0.0.0.0:8090", "api menus: preset cannmenus on 127.0.0.1:8080, 1 routes"} {
		if !strings.Contains(out, want) {
			t.Errorf("config check output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "keygate.db")); err == nil {
		t.Errorf("config check created the database")
	}

	t.Setenv("KEYGATE_CONFIG", good)
	if out, err := runCLI(t, "config", "check"); err != nil || !strings.Contains(out, good) {
		t.Errorf("KEYGATE_CONFIG not used: %v\n%s", err, out)
	}

	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "apis:\n  - name: menus\n    preset: nope\n    listen: 127.0.0.1:8080\n    upstream: http://127.0.0.1:9\n")
	if _, err := runCLI(t, "config", "check", "--config", bad); err == nil || !strings.Contains(err.Error(), "bad.yaml:3") {
		t.Errorf("bad config: %v", err)
	}
}

func TestHealthcheck(t *testing.T) {
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	defer healthy.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "keygate.yaml")
	writeFile(t, cfg, "data_dir: "+dir+"\nadmin:\n  listen: 0.0.0.0:"+strings.Split(healthy.Listener.Addr().String(), ":")[1]+"\n")
	if out, err := runCLI(t, "healthcheck", "--config", cfg); err != nil {
		t.Errorf("healthcheck against the config's admin listener: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "healthcheck", "--url", healthy.URL+"/elsewhere"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("a 404 passed the health check: %v", err)
	}
	healthy.Close()
	if _, err := runCLI(t, "healthcheck", "--config", cfg); err == nil {
		t.Errorf("health check passed with nothing listening")
	}
}

// tokens check tells a real token (and its id and state) from look-alikes,
// reading the secret from stdin, and never prints the secret.
func TestTokensCheck(t *testing.T) {
	dir := t.TempDir()
	d := startTestDemo(t, dir)
	secret := d.Env["CANNMENUS_API_TOKEN"]

	out, err := runCLIWithInput(t, secret+"\n", "tokens", "check", "--data-dir", dir)
	if err != nil {
		t.Fatalf("tokens check: %v\n%s", err, out)
	}
	list, _ := runCLI(t, "tokens", "list", "--data-dir", dir, "--api", "cannmenus")
	id := strings.Fields(strings.Split(list, "\n")[1])[0]
	for _, want := range []string{"well-formed live token for API cannmenus", "token " + id, "organization demo", "state: active", "keygate tokens revoke " + id} {
		if !strings.Contains(out, want) {
			t.Errorf("tokens check output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, secret) {
		t.Fatalf("tokens check printed the secret")
	}

	if _, err := runCLI(t, "tokens", "revoke", "--data-dir", dir, id); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "tokens", "check", "--data-dir", dir, secret); err != nil || !strings.Contains(out, "state: revoked") || strings.Contains(out, "revoke it with") {
		t.Errorf("revoked token: %v\n%s", err, out)
	}

	// Well formed (right prefix, checksum) but never issued: a forgery or
	// another deployment's token.
	forged := keygate.GenerateTokenSecret("cm_live_")
	if out, err := runCLI(t, "tokens", "check", "--data-dir", dir, "--offline", forged); err != nil || !strings.Contains(out, "well-formed live token") {
		t.Errorf("offline check of a well-formed token: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "tokens", "check", "--data-dir", dir, forged); err == nil || !strings.Contains(err.Error(), "no token with this secret") {
		t.Errorf("unknown token: %v", err)
	}
	lastChanged := secret[:len(secret)-1] + flip(secret[len(secret)-1])
	for _, bad := range []string{lastChanged, "cm_live_short", "xx_live_" + secret[len("cm_live_"):], secret + "A"} {
		out, err := runCLIWithInput(t, bad, "tokens", "check", "--data-dir", dir, "-")
		if err == nil || !strings.Contains(err.Error(), "not a well-formed token") {
			t.Errorf("look-alike %q: %v\n%s", bad, err, out)
		}
	}
	if _, err := runCLIWithInput(t, "", "tokens", "check", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "standard input") {
		t.Errorf("empty stdin: %v", err)
	}
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
