package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/config"
)

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startTestDemo runs `keygate demo --data-dir DIR` in-process on free ports.
func startTestDemo(t *testing.T, dir string) *Demo {
	t.Helper()
	var stderr bytes.Buffer
	g := &globals{dataDir: dir, stdout: &bytes.Buffer{}, stderr: &stderr}
	f := &demoFlags{menusListen: freeAddr(t), eventsListen: freeAddr(t), adminListen: freeAddr(t)}
	d, err := startDemo(context.Background(), g, f)
	if err != nil {
		t.Fatalf("demo did not start: %v\n%s", err, stderr.String())
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Shutdown(ctx)
		for _, secret := range []string{d.Env["CANNMENUS_API_TOKEN"], d.Env["CANSKAN_API_TOKEN"], d.Env["KEYGATE_ADMIN_KEY"]} {
			if secret != "" && strings.Contains(stderr.String(), secret) {
				t.Errorf("a secret appeared in keygate's log")
			}
		}
	})
	return d
}

// runCLI runs keygate's CLI in-process and returns its output and error.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRootCommand(&out, &out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

type productsPage struct {
	Data []struct {
		State string `json:"state"`
	} `json:"data"`
	Page  int `json:"page"`
	Total int `json:"total"`
}

func checkCaliforniaPage(t *testing.T, who string, out []byte) {
	t.Helper()
	var page productsPage
	if err := json.Unmarshal(out, &page); err != nil {
		t.Fatalf("%s: not a products page: %v\n%s", who, err, out)
	}
	if page.Page != 1 || page.Total == 0 || len(page.Data) == 0 {
		t.Fatalf("%s: empty page %+v", who, page)
	}
	for _, p := range page.Data {
		if p.State != "California" {
			t.Fatalf("%s: product from %s in a California query", who, p.State)
		}
	}
}

// The seeds' own examples, unchanged but for the host: curl, Python
// requests and JavaScript fetch against the CannMenus-style API.
func TestSeedExamplesRunAgainstTheDemo(t *testing.T) {
	d := startTestDemo(t, t.TempDir())
	base, token := d.Env["CANNMENUS_BASE_URL"], d.Env["CANNMENUS_API_TOKEN"]

	t.Run("curl", func(t *testing.T) {
		out, err := exec.Command("curl", "-sS", "--fail-with-body", base+"/v2/products?states=California&page=1",
			"-H", "X-Token: "+token).CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v\n%s", err, out)
		}
		checkCaliforniaPage(t, "curl", out)
	})

	t.Run("python requests", func(t *testing.T) {
		python := pythonWithRequests(t)
		script := `import os, json
import requests
headers = {"X-Token": os.environ["CANNMENUS_API_TOKEN"]}
response = requests.get(
"` + base + `/v2/products",
headers=headers,
params={"states": "California", "page": 1}
)
assert response.status_code == 200, response.status_code
print(json.dumps(response.json()))
`
		cmd := exec.Command(python, "-c", script)
		cmd.Env = append(os.Environ(), "CANNMENUS_API_TOKEN="+token)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("python: %v\n%s", err, out)
		}
		checkCaliforniaPage(t, "python", out)
	})

	t.Run("javascript fetch", func(t *testing.T) {
		script := `const response = await fetch(
"` + base + `/v2/products?states=California&page=1",
{
headers: { "X-Token": process.env.CANNMENUS_API_TOKEN }
}
);
if (response.status !== 200) { console.error(response.status); process.exit(1); }
console.log(JSON.stringify(await response.json()));
`
		cmd := exec.Command("node", "--input-type=module", "-e", script)
		cmd.Env = append(os.Environ(), "CANNMENUS_API_TOKEN="+token)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("node: %v\n%s", err, out)
		}
		checkCaliforniaPage(t, "fetch", out)
	})

	t.Run("CANSKAN public profile and Bearer call", func(t *testing.T) {
		out, err := exec.Command("curl", "-sS", "--fail-with-body", d.Env["CANSKAN_BASE_URL"]+"/p/abc123def456").CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"code":"abc123def456"`) {
			t.Fatalf("public profile: %v\n%s", err, out)
		}
		out, err = exec.Command("curl", "-sS", "--fail-with-body", d.Env["CANSKAN_BASE_URL"]+"/api/v1/attendees",
			"-H", "Authorization: Bearer "+d.Env["CANSKAN_API_TOKEN"]).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"data"`) {
			t.Fatalf("attendees: %v\n%s", err, out)
		}
	})
}

func pythonWithRequests(t *testing.T) string {
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import requests").Run() == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no python3 with the requests package (.ci/run installs python3-requests)")
	}
	t.Skip("no python3 with requests")
	return ""
}

func get(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func TestDemoErrorsMatchTheSeedsExactly(t *testing.T) {
	d := startTestDemo(t, t.TempDir())
	cm, cs := d.Env["CANNMENUS_BASE_URL"], d.Env["CANSKAN_BASE_URL"]
	for _, c := range []struct {
		name, url string
		header    []string
		status    int
		body      string
	}{
		{"cannmenus no token", cm + "/v2/products?states=California&page=1", nil, 404, `{"detail": "Not Found"}`},
		{"cannmenus Bearer ignored", cm + "/v2/products", []string{"Authorization", "Bearer " + d.Env["CANNMENUS_API_TOKEN"]}, 404, `{"detail": "Not Found"}`},
		{"cannmenus invalid", cm + "/v2/products", []string{"X-Token", "YOUR_API_TOKEN"}, 404, `{"detail": "Not Found"}`},
		{"cannmenus plan", cm + "/v2/analytics", []string{"X-Token", d.Env["CANNMENUS_API_TOKEN"]}, 403, `{"detail": "Your plan does not include this endpoint."}`},
		{"cannmenus entitlement", cm + "/v2/products?states=New%20York", []string{"X-Token", d.Env["CANNMENUS_API_TOKEN"]}, 403, `{"detail": "Your organization does not have access to state New York."}`},
		{"canskan missing", cs + "/api/v1/attendees", nil, 401, `{"message": "API token required."}`},
		{"canskan invalid", cs + "/api/v1/attendees", []string{"Authorization", "Bearer your_api_token_here"}, 401, `{"message": "Invalid API token."}`},
	} {
		status, body := get(t, c.url, c.header...)
		if status != c.status || body != c.body {
			t.Errorf("%s: got %d %s, want %d %s", c.name, status, body, c.status, c.body)
		}
	}
}

// The CLI works on the data dir of a running demo: a second CannMenus token
// fits, a third is refused, and a revoke through the CLI is refused by the
// running server within a second.
func TestCLIWhileTheDemoRuns(t *testing.T) {
	dir := t.TempDir()
	d := startTestDemo(t, dir)
	out, err := runCLI(t, "tokens", "create", "--data-dir", dir, "--org", "demo", "--api", "cannmenus", "--name", "Rotation", "--expires", "30d", "--scope", "products:read")
	if err != nil {
		t.Fatalf("second token: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	secret := lines[len(lines)-1]
	if !strings.HasPrefix(secret, "cm_live_") || !strings.Contains(out, "will not be shown again") {
		t.Fatalf("create output: %s", out)
	}
	_, err = runCLI(t, "tokens", "create", "--data-dir", dir, "--org", "demo", "--api", "cannmenus", "--name", "Third")
	if err == nil || !strings.Contains(userMessage(err), "Delete a token before creating a new one") {
		t.Fatalf("third token not refused: %v", err)
	}
	if status, _ := get(t, d.Env["CANNMENUS_BASE_URL"]+"/v2/products", "X-Token", secret); status != 200 {
		t.Fatalf("new token refused: %d", status)
	}
	list, err := runCLI(t, "tokens", "list", "--data-dir", dir, "--org", "demo", "--api", "cannmenus")
	if err != nil || strings.Contains(list, secret) || strings.Contains(list, d.Env["CANNMENUS_API_TOKEN"]) {
		t.Fatalf("tokens list: %v, or it shows a secret:\n%s", err, list)
	}
	var id string
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, "Rotation") {
			id = strings.Fields(line)[0]
		}
	}
	if id == "" {
		t.Fatalf("Rotation token not listed:\n%s", list)
	}
	if out, err := runCLI(t, "tokens", "revoke", "--data-dir", dir, id); err != nil {
		t.Fatalf("revoke: %v %s", err, out)
	}
	start := time.Now()
	for {
		status, body := get(t, d.Env["CANNMENUS_BASE_URL"]+"/v2/products", "X-Token", secret)
		if status == 404 && body == `{"detail": "Not Found"}` {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("revoked token still accepted after %v", time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("revoked through the CLI, refused by the running server after %v", time.Since(start))
}

func TestDemoRestartReusesData(t *testing.T) {
	dir := t.TempDir()
	d := startTestDemo(t, dir)
	token := d.Env["CANNMENUS_API_TOKEN"]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	again := startTestDemo(t, dir)
	if again.Env["CANNMENUS_API_TOKEN"] != token {
		t.Fatal("restart lost the demo token")
	}
	if status, body := get(t, again.Env["CANNMENUS_BASE_URL"]+"/v2/products?states=California&page=1", "X-Token", token); status != 200 {
		t.Fatalf("token from the first run refused after restart: %d %s", status, body)
	}
	env, err := os.ReadFile(filepath.Join(dir, "demo.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"CANNMENUS_API_TOKEN", "CANSKAN_API_TOKEN", "CANNMENUS_BASE_URL", "CANSKAN_BASE_URL", "KEYGATE_URL", "KEYGATE_DATA_DIR", "KEYGATE_ADMIN_KEY"} {
		if !strings.Contains(string(env), key+"=") {
			t.Errorf("demo.env lacks %s", key)
		}
	}
}

// keygate demo stops as keygate serve does: in-flight requests get its
// config file's listeners.shutdown_grace.
func TestDemoShutdownGraceIsItsConfigs(t *testing.T) {
	d := startTestDemo(t, t.TempDir())
	cfg, err := config.Load(filepath.Join(d.Dir, "keygate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if d.ShutdownGrace <= 0 || d.ShutdownGrace != cfg.Listeners.ShutdownGrace {
		t.Fatalf("demo shutdown grace %v, want its config's listeners.shutdown_grace %v", d.ShutdownGrace, cfg.Listeners.ShutdownGrace)
	}
}

func TestCLIRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	if _, err := runCLI(t, "orgs", "create", "--data-dir", dir, "--slug", "acme"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"tokens", "list"}, "--config FILE or --data-dir DIR"},
		{[]string{"orgs", "create", "--data-dir", dir, "--slug", "Bad Slug"}, "Slug must be"},
		{[]string{"orgs", "create", "--data-dir", dir, "--slug", "acme"}, ""},
		{[]string{"tokens", "create", "--data-dir", dir, "--org", "acme", "--api", "nope", "--name", "x"}, `unknown API "nope"`},
		{[]string{"tokens", "revoke", "--data-dir", dir, "tok_missing"}, "tok_missing"},
		{[]string{"serve", "--config", filepath.Join(dir, "missing.yaml")}, "missing.yaml"},
	} {
		out, err := runCLI(t, c.args...)
		if err == nil {
			t.Errorf("%v succeeded: %s", c.args, out)
			continue
		}
		if !strings.Contains(userMessage(err), c.want) {
			t.Errorf("%v: error %q does not mention %q", c.args, userMessage(err), c.want)
		}
	}
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("apis:\n  - name: x\n    preset: cannmenus\n    listen: 127.0.0.1:1\n    upstream: http://127.0.0.1:2\n    routes:\n      - path: /a\n        methods: [GET]\n        acess: token\n"), 0o600)
	if _, err := runCLI(t, "serve", "--config", bad); err == nil || !strings.Contains(err.Error(), "bad.yaml:9") {
		t.Errorf("malformed config: %v", err)
	}
}

// The CANSKAN seed's rate limits against the demo: 10 public requests per
// minute per IP, then 429; 60 per minute per token.
func TestDemoCanskanRateLimits(t *testing.T) {
	d := startTestDemo(t, t.TempDir())
	cs := d.Env["CANSKAN_BASE_URL"]
	for i := 1; i <= 10; i++ {
		req, _ := http.NewRequest("GET", cs+"/p/abc123def456", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-RateLimit-Limit") != "10" || resp.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(10-i) {
			t.Fatalf("public request %d: %d limit %q remaining %q", i, resp.StatusCode, resp.Header.Get("X-RateLimit-Limit"), resp.Header.Get("X-RateLimit-Remaining"))
		}
	}
	status, body := get(t, cs+"/p/abc123def456")
	if status != 429 || body != `{"message": "Too Many Attempts."}` {
		t.Fatalf("11th public request: %d %s", status, body)
	}
	token := d.Env["CANSKAN_API_TOKEN"]
	for i := 1; i <= 60; i++ {
		if status, body := get(t, cs+"/api/v1/attendees", "Authorization", "Bearer "+token); status != 200 {
			t.Fatalf("token request %d: %d %s", i, status, body)
		}
	}
	req, _ := http.NewRequest("GET", cs+"/api/v1/attendees", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 429 || string(b) != `{"message": "Too Many Attempts."}` || resp.Header.Get("Retry-After") == "" || resp.Header.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("61st token request: %d %s %v", resp.StatusCode, b, resp.Header)
	}
}

// Through the management API with the demo's admin key: create a token,
// use it, delete it, and the very next request with it fails.
func TestManagementAPIDeleteRevokesAtOnce(t *testing.T) {
	d := startTestDemo(t, t.TempDir())
	admin, key := d.Env["KEYGATE_URL"], d.Env["KEYGATE_ADMIN_KEY"]
	call := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, admin+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	status, created := call("POST", "/api/v1/orgs/demo/tokens", `{"name": "Events CI", "api": "canskan", "expires_in": "30d", "scopes": ["attendees:read"]}`)
	if status != 201 {
		t.Fatalf("create: %d %v", status, created)
	}
	secret, _ := created["token"].(string)
	id, _ := created["id"].(string)
	if !strings.HasPrefix(secret, "csk_live_") || id == "" {
		t.Fatalf("create answer: %v", created)
	}
	if status, body := get(t, d.Env["CANSKAN_BASE_URL"]+"/api/v1/attendees", "Authorization", "Bearer "+secret); status != 200 {
		t.Fatalf("new token: %d %s", status, body)
	}
	status, listed := call("GET", "/api/v1/orgs/demo/tokens", "")
	if status != 200 || strings.Contains(fmt.Sprint(listed), secret) {
		t.Fatalf("list: %d, or it shows the secret", status)
	}
	if status, _ := call("DELETE", "/api/v1/orgs/demo/tokens/"+id, ""); status != 204 {
		t.Fatalf("delete: %d", status)
	}
	if status, body := get(t, d.Env["CANSKAN_BASE_URL"]+"/api/v1/attendees", "Authorization", "Bearer "+secret); status != 401 || body != `{"message": "Invalid API token."}` {
		t.Fatalf("the request right after delete: %d %s", status, body)
	}
}

// The banner shows the tokens on the start that created them and only
// refers to demo.env afterwards.
func TestDemoBannerShowsTokensOnce(t *testing.T) {
	dir := t.TempDir()
	d := startTestDemo(t, dir)
	var first bytes.Buffer
	printDemoBanner(&first, d)
	token := d.Env["CANNMENUS_API_TOKEN"]
	if !strings.Contains(first.String(), token) {
		t.Fatal("first start does not show the new token")
	}
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	printDemoBanner(&again, startTestDemo(t, dir))
	if strings.Contains(again.String(), token) || !strings.Contains(again.String(), "source "+dir+"/demo.env") || !strings.Contains(again.String(), `X-Token: $CANNMENUS_API_TOKEN`) {
		t.Errorf("restart banner:\n%s", again.String())
	}
}
