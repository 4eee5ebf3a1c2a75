package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/demo"
)

// eventsTokenCalls is one request for each token route of the demo events
// API, in an order where each finds what the one before made.
var eventsTokenCalls = []struct {
	method, path, body string
	route              string // the config route the call exercises
}{
	{"GET", "/api/v1/organization", "", "GET /api/v1/organization"},
	{"GET", "/api/v1/attendees", "", "GET /api/v1/attendees"},
	{"POST", "/api/v1/attendees", `{"name": "Ada", "email": "ada@example.com", "event_id": 1}`, "POST /api/v1/attendees"},
	{"GET", "/api/v1/webhooks", "", "GET /api/v1/webhooks"},
	{"POST", "/api/v1/webhooks", `{"url": "https://hooks.example.com/in", "events": ["attendee.created"]}`, "POST /api/v1/webhooks"},
	{"DELETE", "/api/v1/webhooks/1", "", "DELETE /api/v1/webhooks/{id}"},
}

// callEveryEventsTokenRoute calls every token route of the demo events API
// with secret and fails unless each one succeeds. It first checks that the
// calls above cover every token route the demo's config has, so a route
// added to the demo is not silently left out.
func callEveryEventsTokenRoute(t *testing.T, d *Demo, secret string) {
	t.Helper()
	covered := map[string]bool{}
	for _, c := range eventsTokenCalls {
		covered[c.route] = true
	}
	for _, api := range d.Server.APIs() {
		if api.Name != demo.EventsAPIName {
			continue
		}
		for _, r := range api.Routes {
			for _, m := range r.Methods {
				if r.Access == keygate.AccessToken && !covered[m+" "+r.Path] {
					t.Fatalf("the test calls no %s %s", m, r.Path)
				}
			}
		}
	}
	for _, c := range eventsTokenCalls {
		req, _ := http.NewRequest(c.method, d.Env["CANSKAN_BASE_URL"]+c.path, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+secret)
		if c.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			t.Errorf("%s %s with a token made without scopes: %d %s", c.method, c.path, resp.StatusCode, body)
		} else {
			t.Logf("%s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
}

// A token made with only a name and an expiry, as the seeds' flow makes
// one, carries every scope of its API and calls every token route.
func TestCLITokenWithoutScopesCallsEveryRoute(t *testing.T) {
	dir := t.TempDir()
	d := startTestDemo(t, dir)
	out, err := runCLI(t, "tokens", "create", "--data-dir", dir, "--org", "demo", "--api", "canskan", "--name", "Production Server", "--expires", "30d")
	if err != nil {
		t.Fatalf("tokens create: %v\n%s", err, out)
	}
	want := "scopes: " + strings.Join(demo.EventsScopes, ", ")
	if !strings.Contains(out, want) {
		t.Errorf("create output does not state the scopes (%q):\n%s", want, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	callEveryEventsTokenRoute(t, d, lines[len(lines)-1])

	// Asking for no scope at all is refused, not a token that can do nothing.
	out, err = runCLI(t, "tokens", "create", "--data-dir", dir, "--org", "demo", "--api", "canskan", "--name", "Empty", "--scope", "")
	if err == nil || !strings.Contains(userMessage(err), "Choose at least one scope") {
		t.Fatalf("--scope \"\": %v\n%s", err, out)
	}
}

func TestManagementAPITokenWithoutScopesCallsEveryRoute(t *testing.T) {
	d := startTestDemo(t, t.TempDir())
	call := func(body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", d.Env["KEYGATE_URL"]+"/api/v1/orgs/demo/tokens", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+d.Env["KEYGATE_ADMIN_KEY"])
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
	status, created := call(`{"name": "Production Server", "api": "canskan", "expires_in": "30d"}`)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, created)
	}
	scopes, _ := json.Marshal(created["scopes"])
	if want, _ := json.Marshal(demo.EventsScopes); string(scopes) != string(want) {
		t.Errorf("answer's scopes %s, want %s", scopes, want)
	}
	secret, _ := created["token"].(string)
	callEveryEventsTokenRoute(t, d, secret)

	status, refused := call(`{"name": "Empty", "api": "canskan", "scopes": []}`)
	errObj, _ := refused["error"].(map[string]any)
	if msg, _ := errObj["message"].(string); status != http.StatusBadRequest || !strings.Contains(msg, "Choose at least one scope") {
		t.Fatalf("explicit empty scopes: %d %v", status, refused)
	}
}
