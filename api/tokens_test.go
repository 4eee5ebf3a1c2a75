package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

func TestCreateTokenShowsTheSecretOnce(t *testing.T) {
	f := newFixture(t)
	owner := f.login(f.owner)
	tok := f.createToken(owner, "acme", `{"name": "Production server", "expires_in": "30d", "scopes": ["products:read"], "api": "menus"}`)

	if !keygate.WellFormedToken(tok.Token, "cm_live_") {
		t.Fatalf("token %q is not a well-formed cm_live_ token", tok.Token)
	}
	if tok.Hint != "cm_live_…"+tok.Token[len(tok.Token)-4:] {
		t.Errorf("hint %q", tok.Hint)
	}
	wantExpiry := f.now.Add(30 * 24 * time.Hour)
	if tok.Name != "Production server" || tok.API != "menus" || tok.Environment != "live" ||
		len(tok.Scopes) != 1 || tok.Scopes[0] != "products:read" || tok.CreatedBy != f.owner.ID ||
		tok.LastUsedAt != nil || tok.ExpiresAt == nil || !tok.ExpiresAt.Equal(wantExpiry) || tok.Expired {
		t.Errorf("created token %+v", tok)
	}
	stored, err := f.store.FindTokenByHash(context.Background(), keygate.HashToken(tok.Token))
	if err != nil || stored.ID != tok.ID || stored.OrganizationID != f.acme.ID {
		t.Fatalf("stored token %+v, %v", stored, err)
	}

	// Never again: not in the list, not in the token, not in the logs.
	list := f.do(owner, "GET", "/api/v1/orgs/acme/tokens", "").expect(http.StatusOK, nil)
	one := f.do(owner, "GET", "/api/v1/orgs/acme/tokens/"+tok.ID, "").expect(http.StatusOK, nil)
	for _, body := range []string{list.Body.String(), one.Body.String(), f.logs.String()} {
		if strings.Contains(body, tok.Token) || strings.Contains(body, tok.Token[8:]) {
			t.Fatalf("the token's secret appears after creation in:\n%s", body)
		}
	}
	if !strings.Contains(f.logs.String(), "token created") || !strings.Contains(f.logs.String(), tok.ID) {
		t.Errorf("creation not logged with the token id:\n%s", f.logs)
	}
	if !strings.Contains(list.Body.String(), `"last_used_at": null`) {
		t.Errorf("list does not say the token was never used:\n%s", list.Body)
	}
}

func TestCreateTokenDefaultsAndAdminKey(t *testing.T) {
	f := newFixture(t)
	tok := f.createToken(f.key(), "acme", `{"name": "CI", "api": "events", "environment": "test"}`)
	if !strings.HasPrefix(tok.Token, "csk_test_") || tok.Environment != "test" {
		t.Errorf("token %q environment %q", tok.Token, tok.Environment)
	}
	if tok.ExpiresAt == nil || !tok.ExpiresAt.Equal(f.now.Add(90*24*time.Hour)) {
		t.Errorf("default expiry %v, want 90 days", tok.ExpiresAt)
	}
	// No scopes chosen: every scope of the API.
	if !strings.HasPrefix(tok.CreatedBy, "admin-key:adk_") || strings.Join(tok.Scopes, ",") != "attendees:read,attendees:write" {
		t.Errorf("created_by %q scopes %v", tok.CreatedBy, tok.Scopes)
	}
	never := f.createToken(f.key(), "acme", `{"name": "Forever", "api": "events", "expires_in": "never"}`)
	if never.ExpiresAt != nil {
		t.Errorf("never-expiring token has expires_at %v", never.ExpiresAt)
	}
}

func TestCreateTokenRefusesBadInput(t *testing.T) {
	f := newFixture(t)
	owner := f.login(f.owner)
	long := strings.Repeat("é", 101)
	const hiddenInName = "Token name must not hold control characters (line breaks, tabs, escapes) or marks that reorder text."
	for _, tc := range []struct {
		name, body, contentType string
		status                  int
		code, message           string
	}{
		{"bad JSON", `{"name": "x",`, "", 400, "invalid", "The request body is not valid JSON."},
		{"not an object", `["x"]`, "", 400, "invalid", "The request body must be a JSON object."},
		{"empty body", ``, "application/json", 400, "invalid", "The request body is empty; send a JSON object."},
		{"trailing data", `{"name": "x", "api": "menus"} {}`, "", 400, "invalid", "The request body must hold one JSON object and nothing after it."},
		{"unknown field", `{"name": "x", "api": "menus", "expires": "30d"}`, "", 400, "invalid", `Unknown field "expires".`},
		{"wrong type", `{"name": 7, "api": "menus"}`, "", 400, "invalid", `Field "name" must be a string.`},
		{"not JSON content type", `{"name": "x", "api": "menus"}`, "application/x-www-form-urlencoded", 400, "invalid", "Send a JSON body with Content-Type: application/json."},
		{"missing name", `{"api": "menus"}`, "", 400, "invalid", "Token name is required."},
		{"blank name", `{"name": "   ", "api": "menus"}`, "", 400, "invalid", "Token name is required."},
		{"over-long name", `{"name": "` + long + `", "api": "menus"}`, "", 400, "invalid", "Token name must be 1 to 100 characters."},
		{"name with line breaks", `{"name": "CI\r\n\r\nYour password expired: reset it at https://evil.example/", "api": "menus"}`, "", 400, "invalid", hiddenInName},
		{"name with a terminal escape", `{"name": "x\u001b[2J", "api": "menus"}`, "", 400, "invalid", hiddenInName},
		{"name with a tab", `{"name": "a\tb", "api": "menus"}`, "", 400, "invalid", hiddenInName},
		{"name with a right-to-left override", `{"name": "report\u202excod.exe", "api": "menus"}`, "", 400, "invalid", hiddenInName},
		{"name with a directional isolate", `{"name": "a\u2067b", "api": "menus"}`, "", 400, "invalid", hiddenInName},
		{"unknown expiry", `{"name": "x", "api": "menus", "expires_in": "2w"}`, "", 400, "invalid", `Unknown expiration "2w": choose one of 7d, 30d, 90d, 1y, never.`},
		{"never forbidden", `{"name": "x", "api": "menus", "expires_in": "never"}`, "", 400, "invalid", "This API does not allow tokens that never expire."},
		{"unknown scope", `{"name": "x", "api": "menus", "scopes": ["attendees:read"]}`, "", 400, "invalid", `Unknown scope "attendees:read".`},
		{"unknown API", `{"name": "x", "api": "billing"}`, "", 400, "invalid", `Unknown API "billing": choose one of menus, events.`},
		{"API required with several", `{"name": "x"}`, "", 400, "invalid", "Choose an API: menus, events."},
		{"bad environment", `{"name": "x", "api": "menus", "environment": "prod"}`, "", 400, "invalid", `Environment must be "live" or "test".`},
		{"too large", `{"name": "` + strings.Repeat("a", 70<<10) + `"}`, "", 413, "too_large", "The request body is larger than 65536 bytes."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := newRequest("POST", "/api/v1/orgs/acme/tokens", tc.body, owner)
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			f.serve(req).expectError(tc.status, tc.code, tc.message)
		})
	}
	list := f.do(owner, "GET", "/api/v1/orgs/acme/tokens", "").expect(http.StatusOK, nil)
	if !strings.Contains(list.Body.String(), `"tokens": []`) {
		t.Errorf("refused requests created tokens:\n%s", list.Body)
	}
}

func TestActiveTokenLimit(t *testing.T) {
	f := newFixture(t)
	owner := f.login(f.owner)
	first := f.createToken(owner, "acme", `{"name": "one", "api": "menus"}`)
	f.createToken(owner, "acme", `{"name": "two", "api": "menus"}`)
	f.do(owner, "POST", "/api/v1/orgs/acme/tokens", `{"name": "three", "api": "menus"}`).
		expectError(409, "conflict", "This organization already has 2 active tokens for this API, the most allowed. Delete a token before creating a new one.")

	var list struct {
		Tokens []tokenBody
		Limits []struct {
			API    string
			Active int
			Max    int
		}
	}
	f.do(owner, "GET", "/api/v1/orgs/acme/tokens", "").expect(http.StatusOK, &list)
	if len(list.Tokens) != 2 || list.Tokens[0].Name != "two" || list.Tokens[1].Name != "one" {
		t.Errorf("tokens %+v, want two then one", list.Tokens)
	}
	if fmt.Sprint(list.Limits) != "[{menus 2 2} {events 0 0}]" {
		t.Errorf("limits %v", list.Limits)
	}
	// The limit is per API and per organization.
	f.createToken(owner, "acme", `{"name": "three", "api": "events"}`)
	f.createToken(f.login(f.globexOwner), "globex", `{"name": "three", "api": "menus"}`)

	f.do(owner, "DELETE", "/api/v1/orgs/acme/tokens/"+first.ID, "").expect(http.StatusNoContent, nil)
	f.createToken(owner, "acme", `{"name": "three", "api": "menus"}`)
}

func TestDeleteToken(t *testing.T) {
	f := newFixture(t)
	member := f.login(f.member)
	tok := f.createToken(member, "acme", `{"name": "old", "api": "menus"}`)
	// A create is news too: this instance's cache may hold the new hash
	// as unknown.
	if fmt.Sprint(f.changes) != fmt.Sprint([]keygate.Change{{Kind: keygate.ChangeTokenCreated, ID: tok.ID}}) {
		t.Errorf("notified after the create %v", f.changes)
	}
	f.changes = nil
	r := f.do(member, "DELETE", "/api/v1/orgs/acme/tokens/"+tok.ID, "").expect(http.StatusNoContent, nil)
	if r.Body.Len() != 0 {
		t.Errorf("204 with body %q", r.Body)
	}
	stored, err := f.store.FindTokenByID(context.Background(), tok.ID)
	if err != nil || stored.RevokedAt == nil {
		t.Fatalf("token not revoked: %+v %v", stored, err)
	}
	if fmt.Sprint(f.changes) != fmt.Sprint([]keygate.Change{{Kind: keygate.ChangeToken, ID: tok.ID}}) {
		t.Errorf("notified %v", f.changes)
	}
	f.do(member, "DELETE", "/api/v1/orgs/acme/tokens/"+tok.ID, "").expectError(404, "not_found", fmt.Sprintf("Token %q not found.", tok.ID))
	f.do(member, "GET", "/api/v1/orgs/acme/tokens/"+tok.ID, "").expectError(404, "not_found", fmt.Sprintf("Token %q not found.", tok.ID))
	f.do(member, "DELETE", "/api/v1/orgs/acme/tokens/tok_nope", "").expectError(404, "not_found", `Token "tok_nope" not found.`)
	if !strings.Contains(f.logs.String(), "token deleted") {
		t.Errorf("deletion not logged:\n%s", f.logs)
	}
}

func TestExpiredTokensAreListedAsExpired(t *testing.T) {
	f := newFixture(t)
	tok := f.createToken(f.key(), "acme", `{"name": "week", "api": "menus", "expires_in": "7d"}`)
	f.now = f.now.Add(8 * 24 * time.Hour)
	var got tokenBody
	f.do(f.key(), "GET", "/api/v1/orgs/acme/tokens/"+tok.ID, "").expect(http.StatusOK, &got)
	if !got.Expired {
		t.Errorf("token past its expiry is not marked expired: %+v", got)
	}
}

// A body that another JSON reader (a proxy's policy, a log, a review step)
// reads otherwise than keygate is refused, and no token is made: a key
// given twice, where encoding/json keeps the last value, and a field's
// name in another case or Unicode folding, which encoding/json takes for
// the field and a case-sensitive reader ignores. The first body once made
// a token with every scope of the API, while reading as a narrow one.
func TestCreateTokenRefusesKeysOtherReadersReadOtherwise(t *testing.T) {
	f := newFixture(t)
	owner := f.login(f.owner)
	const caseSensitive = `Field names are case-sensitive: write "scopes" exactly so.`
	for _, tc := range []struct{ name, body, message string }{
		{"narrow scopes undone in upper case", `{"name": "x", "api": "menus", "scopes": ["products:read"], "SCOPES": null}`, caseSensitive},
		{"scopes with a long s", `{"name": "x", "api": "menus", "ſcopes": []}`, caseSensitive},
		{"field in title case", `{"Name": "x", "api": "menus"}`, `Field names are case-sensitive: write "name" exactly so.`},
		{"field given twice", `{"name": "x", "api": "menus", "scopes": ["products:read"], "scopes": null}`, `Field "scopes" is given more than once: give each field once.`},
		{"nested field given twice", `{"entitlements": {"states": ["CA"], "states": []}}`, `Field "states" is given more than once: give each field once.`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/api/v1/orgs/acme/tokens"
			if strings.Contains(tc.body, "entitlements") {
				path = "/api/v1/orgs/acme"
				f.do(f.key(), "PATCH", path, tc.body).expectError(http.StatusBadRequest, "invalid", tc.message)
				return
			}
			f.do(owner, "POST", path, tc.body).expectError(http.StatusBadRequest, "invalid", tc.message)
		})
	}
	tokens, err := f.store.ListTokens(context.Background(), keygate.TokenFilter{OrganizationID: f.acme.ID})
	if err != nil || len(tokens) != 0 {
		t.Fatalf("tokens made from refused bodies: %d, %v", len(tokens), err)
	}
	org, err := f.store.FindOrganizationByID(context.Background(), f.acme.ID)
	if err != nil || len(org.Entitlements.States) != 0 {
		t.Fatalf("entitlements changed by a refused body: %+v, %v", org, err)
	}

	// Each field once, as documented, still works; so do a map's keys.
	f.createToken(owner, "acme", `{"name": "x", "api": "menus", "scopes": ["products:read"]}`)
	f.do(owner, "PATCH", "/api/v1/orgs/acme/email-settings", `{"emails": {"token.created": true, "token.expiring": false}}`).expect(http.StatusOK, nil)
	f.do(owner, "PATCH", "/api/v1/orgs/acme/email-settings", `{"emails": {"token.created": true, "token.created": false}}`).
		expectError(http.StatusBadRequest, "invalid", "The request body gives the same key twice in one object: give each key once.")
}
