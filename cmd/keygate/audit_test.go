package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/server"
)

// Every audited action done once through the CLI, the management API and
// the dashboard of a running keygate: the audit log holds exactly the
// expected entries, each with its actor and, over HTTP, the client's
// address and user agent, and no secret any of it created.
func TestAuditLogRecordsEveryActionThroughEveryDoor(t *testing.T) {
	dir := t.TempDir()
	yaml := "data_dir: .\nadmin:\n  listen: 127.0.0.1:0\nwebhooks:\n  allow_private_addresses: true\napis:\n  - name: menus\n    preset: cannmenus\n    listen: 127.0.0.1:0\n    upstream: http://127.0.0.1:9\n" +
		"    routes:\n      - path: /v2/products\n        methods: [GET]\n        access: token\n"
	cfgPath := filepath.Join(dir, "keygate.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) string {
		t.Helper()
		out, err := runCLI(t, append(args, "--data-dir", dir)...)
		if err != nil {
			t.Fatalf("keygate %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	lastLine := func(s string) string {
		lines := strings.Split(strings.TrimSpace(s), "\n")
		return lines[len(lines)-1]
	}
	var secrets []string

	// CLI: organization, owner (member added), admin key, token create,
	// rotate and revoke.
	cli("orgs", "create", "--slug", "acme")
	const ownerPassword = "correct horse battery staple"
	t.Setenv("KEYGATE_PASSWORD", ownerPassword)
	cli("users", "create", "--email", "owner@acme.test", "--org", "acme", "--role", "owner")
	cli("users", "create", "--email", "dev@acme.test")
	adminKey := lastLine(cli("admin-keys", "create", "--name", "ci"))
	cliToken := lastLine(cli("tokens", "create", "--org", "acme", "--api", "menus", "--name", "CLI token"))
	secrets = append(secrets, ownerPassword, adminKey, cliToken)

	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(context.Background(), cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	store := srv.Store()
	ctx := context.Background()
	tokens, _ := store.ListTokens(ctx, keygate.TokenFilter{})
	cliTokenID := tokens[0].ID
	secrets = append(secrets, lastLine(cli("tokens", "rotate", "--grace", "0", cliTokenID)))
	cli("tokens", "revoke", cliTokenID)
	dev, err := store.FindUserByEmail(ctx, "dev@acme.test")
	if err != nil {
		t.Fatal(err)
	}

	// Management API with the admin key.
	base := "http://" + srv.Addr("admin")
	call := func(method, path, body string, want int) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminKey)
		req.Header.Set("User-Agent", "audit-test-api/1")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		return out
	}
	tok := call("POST", "/api/v1/orgs/acme/tokens", `{"name": "API token", "api": "menus"}`, 201)
	rotated := call("POST", "/api/v1/orgs/acme/tokens/"+tok["id"].(string)+"/rotate", `{"grace": "1h"}`, 200)
	call("DELETE", "/api/v1/orgs/acme/tokens/"+tok["id"].(string), "", 204)
	secrets = append(secrets, tok["token"].(string), rotated["token"].(string))
	call("POST", "/api/v1/orgs/acme/members", `{"email": "dev@acme.test", "role": "member"}`, 201)
	call("PUT", "/api/v1/orgs/acme/members/"+dev.ID, `{"role": "owner"}`, 200)
	call("DELETE", "/api/v1/orgs/acme/members/"+dev.ID, "", 204)
	lost := call("POST", "/api/v1/orgs/acme/invitations", `{"email": "dev@acme.test", "role": "member"}`, 201)
	call("DELETE", "/api/v1/orgs/acme/invitations/"+lost["id"].(string), "", 204)
	invitation := call("POST", "/api/v1/orgs/acme/invitations", `{"email": "dev@acme.test", "role": "member"}`, 201)
	secretOf := func(link any) string {
		_, secret, _ := strings.Cut(link.(string), "/invitations/")
		return secret
	}
	secrets = append(secrets, secretOf(lost["url"]), secretOf(invitation["url"]))
	if _, _, err := manage.AcceptInvitation(audit.AsUser(ctx, dev), store, dev, secretOf(invitation["url"]), time.Now()); err != nil {
		t.Fatal(err)
	}
	call("PATCH", "/api/v1/orgs/acme", `{"plan": "pro"}`, 200)
	hook := call("POST", "/api/v1/orgs/acme/webhooks", `{"url": "http://127.0.0.1:9/in/receiver-secret-path", "events": ["audit.*"]}`, 201)
	call("PATCH", "/api/v1/orgs/acme/webhooks/"+hook["id"].(string), `{"disabled": true}`, 200)
	call("DELETE", "/api/v1/orgs/acme/webhooks/"+hook["id"].(string), "", 204)
	secrets = append(secrets, hook["secret"].(string), "receiver-secret-path")

	// Dashboard: a failed login, then a good one.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	login := func(pw string, want int) {
		t.Helper()
		form, err := browser.Get(base + "/login")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(form.Body)
		form.Body.Close()
		csrf := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(string(body))
		if csrf == nil {
			t.Fatalf("no CSRF field on the login page")
		}
		req, _ := http.NewRequest("POST", base+"/login", strings.NewReader(url.Values{
			"csrf_token": {csrf[1]}, "email": {"owner@acme.test"}, "password": {pw}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("User-Agent", "audit-test-browser/1")
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("login with %s: %d, want %d", map[bool]string{true: "the password", false: "a wrong password"}[pw == ownerPassword], resp.StatusCode, want)
		}
	}
	login("wrong password, twice wrong", http.StatusUnauthorized)
	login(ownerPassword, http.StatusOK)

	// What the log holds, oldest first.
	page := call("GET", "/api/v1/audit-log?limit=200", "", 200)
	raw, _ := json.Marshal(page)
	type seen struct{ action, actorType, actorName, address, agent string }
	var got []seen
	entries := page["entries"].([]any)
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i].(map[string]any)
		a := e["actor"].(map[string]any)
		got = append(got, seen{e["action"].(string), a["type"].(string), a["name"].(string), a["address"].(string), a["user_agent"].(string)})
	}
	osName := osUser()
	cliBy := func(action string) seen { return seen{action, "cli", osName, "", ""} }
	apiBy := func(action string) seen { return seen{action, "admin_key", "ci", "127.0.0.1", "audit-test-api/1"} }
	want := []seen{
		cliBy("organization.created"),
		cliBy("member.added"),
		cliBy("admin_key.created"),
		cliBy("token.created"),
		cliBy("token.rotated"),
		cliBy("token.deleted"),
		apiBy("token.created"),
		apiBy("token.rotated"),
		apiBy("token.deleted"),
		apiBy("member.added"),
		apiBy("member.role_changed"),
		apiBy("member.removed"),
		apiBy("invitation.created"),
		apiBy("invitation.revoked"),
		apiBy("invitation.created"),
		{"invitation.accepted", "user", "dev@acme.test", "", ""},
		{"member.added", "user", "dev@acme.test", "", ""},
		apiBy("plan.changed"),
		apiBy("webhook.created"),
		apiBy("webhook.changed"),
		apiBy("webhook.deleted"),
		{"login.failed", "user", "owner@acme.test", "127.0.0.1", "audit-test-browser/1"},
		{"login.succeeded", "user", "owner@acme.test", "127.0.0.1", "audit-test-browser/1"},
	}
	if len(got) != len(want) {
		t.Errorf("%d entries, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Errorf("entry %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	cliList := cli("audit", "list", "--limit", "200")
	for _, body := range []string{string(raw), cliList} {
		for _, s := range secrets {
			if strings.Contains(body, s) {
				t.Fatalf("a secret (%.6s…) appears in the audit log:\n%s", s, body)
			}
		}
	}
	if !strings.Contains(cliList, "member.role_changed") || !strings.Contains(cliList, "admin_key:ci") {
		t.Errorf("keygate audit list:\n%s", cliList)
	}
	// The organization's own view leaves out site-wide entries.
	orgPage := call("GET", "/api/v1/orgs/acme/audit-log?action=token.created", "", 200)
	if n := len(orgPage["entries"].([]any)); n != 2 {
		t.Errorf("organization log, token.created: %d entries, want 2", n)
	}
}
