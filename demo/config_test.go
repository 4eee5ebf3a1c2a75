package demo

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
)

func TestConfigParses(t *testing.T) {
	p := ConfigParams{
		DataDir:        `/tmp/key gate: "demo" #1`,
		AdminListen:    "127.0.0.1:18090",
		MenusListen:    "127.0.0.1:18080",
		EventsListen:   "127.0.0.1:18081",
		MenusUpstream:  "http://127.0.0.1:19080",
		EventsUpstream: "http://127.0.0.1:19081",
	}
	cfg, err := config.Parse("demo.yaml", Config(p))
	if err != nil {
		t.Fatalf("the demo config does not parse:\n%v", err)
	}
	if cfg.DataDir != p.DataDir || cfg.DatabaseURL != "" || cfg.Admin.Listen != p.AdminListen || cfg.Admin.PublicURL != "http://127.0.0.1:18090" {
		t.Fatalf("settings: data_dir %q database_url %q admin %+v", cfg.DataDir, cfg.DatabaseURL, cfg.Admin)
	}
	if cfg.Cache.TTL != 30*time.Second || cfg.Cache.StaleIfError != 5*time.Minute || cfg.LastUsed.FlushInterval != 10*time.Second {
		t.Fatalf("cache %+v last_used %+v", cfg.Cache, cfg.LastUsed)
	}

	menus := cfg.API(MenusAPIName)
	if menus == nil || menus.Preset.Name != "cannmenus" || menus.Listen != p.MenusListen || menus.Upstream != p.MenusUpstream ||
		menus.Tokens.BasePrefix != "cm_" || !reflect.DeepEqual(menus.Tokens.Scopes, MenusScopes) || !menus.Tokens.AllowNever || menus.Tokens.MaxActiveTokens != 2 {
		t.Fatalf("menus API: %+v", menus)
	}
	analytics := findRoute(t, menus, "GET", "/v2/analytics")
	if !reflect.DeepEqual(analytics.Plans, []string{PlanPro}) || !reflect.DeepEqual(analytics.Scopes, []string{ScopeAnalyticsRead}) {
		t.Fatalf("analytics route: %+v", analytics)
	}
	products := findRoute(t, menus, "GET", "/v2/products")
	if products.Access != keygate.AccessToken || products.Entitlements[keygate.EntitlementStates] != "states" {
		t.Fatalf("products route: %+v", products)
	}

	events := cfg.API(EventsAPIName)
	if events == nil || events.Preset.Name != "canskan" || events.Tokens.BasePrefix != "csk_" || !reflect.DeepEqual(events.Tokens.Scopes, EventsScopes) {
		t.Fatalf("events API: %+v", events)
	}
	if r := findRoute(t, events, "GET", "/p/{code}"); r.Access != keygate.AccessPublic {
		t.Fatalf("profile route is %s", r.Access)
	}
	if r := findRoute(t, events, "POST", "/api/v1/attendees"); r.Access != keygate.AccessToken || !reflect.DeepEqual(r.Scopes, []string{ScopeAttendeesWrite}) {
		t.Fatalf("attendees route: %+v", r)
	}
	if rl := events.PublicRateLimit; rl == nil || rl.Key != keygate.LimitByIP || rl.Limit != 10 || rl.Period != time.Minute {
		t.Fatalf("events public rate limit: %+v", rl)
	}
}

func TestConfigDefaultsAndDatabaseURL(t *testing.T) {
	url := "postgres://postgres@127.0.0.1:5432/keygate?sslmode=disable"
	cfg, err := config.Parse("demo.yaml", Config(ConfigParams{DatabaseURL: url, AdminListen: "0.0.0.0:9999"}))
	if err != nil {
		t.Fatalf("%v", err)
	}
	if cfg.DatabaseURL != url || cfg.Admin.PublicURL != "http://localhost:9999" {
		t.Fatalf("database_url %q public_url %q", cfg.DatabaseURL, cfg.Admin.PublicURL)
	}
	if a := cfg.API(MenusAPIName); a.Listen != DefaultMenusListen || a.Upstream != DefaultMenusUpstream {
		t.Fatalf("menus defaults: %s → %s", a.Listen, a.Upstream)
	}
}

// Every route the config lets through must exist on the demo handler, or
// keygate would forward requests that only find a 404.
func TestConfigRoutesExistUpstream(t *testing.T) {
	cfg, err := config.Parse("demo.yaml", Config(ConfigParams{}))
	if err != nil {
		t.Fatal(err)
	}
	handlers := map[string]http.Handler{
		MenusAPIName:  MenusAPI(verified(demoIdentity)),
		EventsAPIName: EventsAPI(verified(demoIdentity)),
	}
	// Webhook 1 must exist for DELETE /api/v1/webhooks/{id} to find it.
	if res := do(t, handlers[EventsAPIName], "POST", "/api/v1/webhooks", `{"url": "https://example.com/h", "events": ["attendee.created"]}`); res.status != http.StatusCreated {
		t.Fatalf("creating a webhook: %d %s", res.status, res.body)
	}
	paths := strings.NewReplacer("{code}", DemoProfileCode, "{id}", "1")
	for _, api := range cfg.APIs() {
		for _, r := range api.Routes {
			for _, m := range r.Methods {
				res := do(t, handlers[api.Name], m, paths.Replace(r.Path), "")
				if res.status == http.StatusNotFound {
					t.Errorf("%s %s %s is configured but the demo handler answers 404: %s", api.Name, m, r.Path, res.body)
				}
			}
		}
	}
}

func findRoute(t *testing.T, api *keygate.API, method, path string) keygate.Route {
	t.Helper()
	for _, r := range api.Routes {
		if r.Path == path && len(r.Methods) > 0 && r.Methods[0] == method {
			return r
		}
	}
	t.Fatalf("%s has no route %s %s", api.Name, method, path)
	return keygate.Route{}
}

// The demo's file doubles as the tour of every setting (SPEC §8): each
// setting the config file accepts is in it, live or, where it would change
// what the demo does, commented out; either way it must parse.
func TestConfigShowsEverySetting(t *testing.T) {
	text := uncommentExamples(Config(ConfigParams{}))
	if _, err := config.Parse("demo.yaml", text); err != nil {
		t.Fatalf("with its commented-out settings in, the demo config does not parse:\n%v\n%s", err, text)
	}
	missing, err := config.MissingSettings(text)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range missing {
		t.Errorf("the demo config does not show %s", p)
	}
}

// uncommentExamples puts back in the settings the demo shows commented
// out: the comment lines after one ending in "e.g.:" whose "#" stands
// where its "#" stands, up to the first other line.
func uncommentExamples(text []byte) []byte {
	lines := strings.Split(string(text), "\n")
	example := "" // the indentation and "# " of the example being read
	for i, line := range lines {
		if example != "" && strings.HasPrefix(line, example) {
			lines[i] = strings.TrimSuffix(example, "# ") + line[len(example):]
			continue
		}
		example = ""
		if indent, comment, ok := strings.Cut(line, "# "); ok && strings.TrimSpace(indent) == "" && strings.HasSuffix(comment, "e.g.:") {
			example = indent + "# "
		}
	}
	return []byte(strings.Join(lines, "\n"))
}
