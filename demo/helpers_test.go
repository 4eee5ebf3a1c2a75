package demo

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keygate/keygate"
)

// Identities as keygate would forward them after verifying a token.
var (
	demoIdentity = &keygate.Identity{
		OrganizationID: "org_demo", OrganizationSlug: "demo", Plan: PlanFree,
		Entitlements: keygate.Entitlements{States: []string{"California", "Colorado", "Michigan"}},
		TokenID:      "tok_demo", Scopes: MenusScopes, API: MenusAPIName,
	}
	acmeIdentity = &keygate.Identity{
		OrganizationID: "org_acme", OrganizationSlug: "acme", Plan: PlanPro,
		TokenID: "tok_acme", Scopes: MenusScopes, API: MenusAPIName,
	}
)

// verified is the IdentityReader keygate's verified header amounts to.
func verified(id *keygate.Identity) IdentityReader {
	return func(*http.Request) (*keygate.Identity, error) { return id, nil }
}

// bypassed is the reader's answer when the request did not come through
// keygate: no identity header.
func bypassed(*http.Request) (*keygate.Identity, error) {
	return nil, errors.New("no X-Keygate-Identity header")
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, h http.Handler, method, target, body string) response {
	t.Helper()
	return serve(h, newRequest(method, target, body))
}

func newRequest(method, target, body string) *http.Request {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

func serve(h http.Handler, req *http.Request) response {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
}

// decode reads the body into v, failing the test on anything but JSON.
func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json (body %s)", ct, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, r.body)
	}
}

func (r response) expect(t *testing.T, status int, body string) {
	t.Helper()
	if r.status != status || r.body != body {
		t.Fatalf("got %d %s, want %d %s", r.status, r.body, status, body)
	}
}
