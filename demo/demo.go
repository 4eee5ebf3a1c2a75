// Package demo holds the two demo APIs that `keygate demo` puts behind
// keygate — a cannabis-menu API shaped like CannMenus and an events API
// shaped like CANSKAN — together with the demo's config text and seed data.
//
// The handlers are upstreams: keygate has already authenticated the request,
// checked scopes, plans, entitlements and rate limits before they see it. So
// they never look at API tokens. They learn who is calling only from the
// verified identity keygate forwards, and they filter every answer by that
// organization's entitlements, so even a request that bypassed keygate's
// entitlement check cannot see data outside them.
//
// The data is fixed and generated without the network, so scripts, docs and
// tests can rely on it.
package demo

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/keygate/keygate"
)

// Names of the demo APIs, as the config, the CLI and demo.env use them.
const (
	MenusAPIName  = "cannmenus"
	EventsAPIName = "canskan"
)

// Plans of the demo organizations. Only PlanPro may use /v2/analytics.
const (
	PlanFree = "free"
	PlanPro  = "pro"
)

// Scopes of the menus API.
const (
	ScopeProductsRead     = "products:read"
	ScopeBrandsRead       = "brands:read"
	ScopeDispensariesRead = "dispensaries:read"
	ScopeAnalyticsRead    = "analytics:read"
)

// Scopes of the events API.
const (
	ScopeOrganizationRead = "organization:read"
	ScopeAttendeesRead    = "attendees:read"
	ScopeAttendeesWrite   = "attendees:write"
	ScopeWebhooksManage   = "webhooks:manage"
)

// MenusScopes and EventsScopes list every scope of each demo API, in the
// order the config and the dashboard show them.
var (
	MenusScopes  = []string{ScopeProductsRead, ScopeBrandsRead, ScopeDispensariesRead, ScopeAnalyticsRead}
	EventsScopes = []string{ScopeOrganizationRead, ScopeAttendeesRead, ScopeAttendeesWrite, ScopeWebhooksManage}
)

// ScopesFor returns every scope of the named demo API, nil for other names.
func ScopesFor(apiName string) []string {
	switch apiName {
	case MenusAPIName:
		return append([]string(nil), MenusScopes...)
	case EventsAPIName:
		return append([]string(nil), EventsScopes...)
	}
	return nil
}

// IdentityReader returns the identity keygate verified for a request, read
// from the signed X-Keygate-Identity header. It returns an error (or a nil
// identity) when the header is absent or does not verify: on public routes
// that is normal, on token routes it means keygate was bypassed.
type IdentityReader func(r *http.Request) (*keygate.Identity, error)

// requireIdentity answers 401 when a token route is reached without a
// verified identity. keygate never forwards such a request, so this only
// happens when a caller talks to the upstream directly.
func requireIdentity(read IdentityReader, next func(http.ResponseWriter, *http.Request, *keygate.Identity)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var id *keygate.Identity
		var err error
		if read != nil {
			id, err = read(r)
		}
		if err != nil || id == nil {
			if err != nil {
				slog.Debug("demo: request without a verified identity", "path", r.URL.Path, "err", err)
			}
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing identity"})
			return
		}
		next(w, r, id)
	}
}

// writeJSON sends v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		slog.Error("demo: encoding a response failed", "err", err)
		status = http.StatusInternalServerError
		body = []byte(`{"error": "internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// writeRaw sends a fixed JSON body with status.
func writeRaw(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write([]byte(body))
}
