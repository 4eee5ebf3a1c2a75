package demo

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate"
)

// demoPaths are the GET routes of the demo upstreams whose query
// parameters a client chooses (keygate passes them on after checking
// entitlements); the last ones are the events API's.
var demoPaths = []string{"/v2/products", "/v2/brands", "/v2/dispensaries", "/v2/analytics",
	"/p/demo", "/api/v1/organization", "/api/v1/attendees", "/api/v1/webhooks"}

// FuzzDemoQuery sends arbitrary query strings to the demo upstreams'
// GET routes. Whatever the query: never a 5xx; the answer is JSON; a
// page is within its bounds; and every product, brand or dispensary the
// menus API answers with is in a state the organization is entitled to,
// so the demo's own data never crosses the entitlements keygate checks.
func FuzzDemoQuery(f *testing.F) {
	for _, s := range []struct {
		path  uint8
		query string
	}{
		{0, "states=California&page=2&per_page=5"},
		{0, "states=New%20York"},
		{0, "page=2147483647&per_page=100"},
		{0, "page=-1&per_page=0"},
		{0, "per_page=1e3&page=0x10"},
		{1, "brands=Sunny%20Farms&states=california,COLORADO"},
		{2, "dispensaries=x&states[]=Texas"},
		{3, "categories=flower;states=Texas"},
		{6, "page=99999999999999999999&per_page=-5"},
		{6, "per_page=100000"},
		{7, "%zz=1"},
	} {
		f.Add(s.path, s.query)
	}
	menus := MenusAPI(verified(demoIdentity))
	events := EventsAPI(verified(&keygate.Identity{OrganizationID: "org_demo", OrganizationSlug: "demo", Plan: PlanFree,
		Scopes: EventsScopes, API: EventsAPIName}))
	entitled := demoIdentity.Entitlements.States

	f.Fuzz(func(t *testing.T, which uint8, query string) {
		path := demoPaths[int(which)%len(demoPaths)]
		h := menus
		if strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/p/") {
			h = events
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path, req.URL.RawQuery = path, query
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("GET %s?%s: %d %s", path, query, rec.Code, rec.Body)
		}
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("GET %s?%s: %d with a body that is no JSON object: %q", path, query, rec.Code, rec.Body)
		}
		if rec.Code != http.StatusOK || h != menus {
			return
		}
		if data, ok := body["data"].([]any); ok {
			if pp, _ := body["per_page"].(float64); len(data) > int(pp) || len(data) > MaxPerPage {
				t.Fatalf("GET %s?%s: %d items on a page of %v", path, query, len(data), body["per_page"])
			}
			for _, item := range data {
				m, _ := item.(map[string]any)
				if s, ok := m["state"].(string); ok && !slices.Contains(entitled, s) {
					t.Fatalf("GET %s?%s: an item in %q, outside the entitlements %q", path, query, s, entitled)
				}
				if states, ok := m["states"].([]any); ok {
					for _, s := range states {
						if !slices.Contains(entitled, s.(string)) {
							t.Fatalf("GET %s?%s: a brand in %q, outside the entitlements %q", path, query, s, entitled)
						}
					}
				}
			}
		}
		if states, ok := body["states"].([]any); ok {
			for _, a := range states {
				if name, _ := a.(map[string]any)["name"].(string); !slices.Contains(entitled, name) {
					t.Fatalf("GET %s?%s: analytics for %q, outside the entitlements %q", path, query, name, entitled)
				}
			}
		}
	})
}
