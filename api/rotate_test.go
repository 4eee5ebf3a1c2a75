package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

// Rotating at the cannmenus-style limit of 2 works: the token keeps its id,
// name, scopes and expiry, gets a new secret shown once, the old secret
// works for the grace, and token.rotated goes out.
func TestRotateTokenAtTheLimit(t *testing.T) {
	f := newFixture(t)
	f.now = f.now.Truncate(time.Millisecond) // as stored
	owner := f.login(f.owner)
	ctx := context.Background()
	hook, err := keygate.NewWebhook(keygate.WebhookRequest{OrganizationID: f.acme.ID, URL: "http://127.0.0.1:1/hook"}, f.now)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.CreateWebhook(ctx, hook, 0); err != nil {
		t.Fatal(err)
	}
	tok := f.createToken(owner, "acme", `{"name": "Production", "expires_in": "30d", "scopes": ["products:read"], "api": "menus"}`)
	f.createToken(owner, "acme", `{"name": "Spare", "api": "menus"}`)
	f.changes = nil

	f.now = f.now.Add(time.Minute)
	var rotated tokenBody
	f.do(owner, "POST", "/api/v1/orgs/acme/tokens/"+tok.ID+"/rotate", `{"grace": "24h"}`).expect(http.StatusOK, &rotated)
	if rotated.ID != tok.ID || rotated.Name != tok.Name || !rotated.ExpiresAt.Equal(*tok.ExpiresAt) ||
		len(rotated.Scopes) != 1 || rotated.Scopes[0] != "products:read" || rotated.Environment != "live" {
		t.Errorf("rotated token %+v, want the same token as %+v", rotated, tok)
	}
	if rotated.Token == tok.Token || !keygate.WellFormedToken(rotated.Token, "cm_live_") || rotated.Hint != "cm_live_…"+rotated.Token[len(rotated.Token)-4:] {
		t.Errorf("new secret %q, hint %q", rotated.Token, rotated.Hint)
	}
	for _, secret := range []string{tok.Token, rotated.Token} {
		stored, err := f.store.FindTokenByHash(ctx, keygate.HashToken(secret))
		if err != nil || stored.ID != tok.ID || !stored.AcceptsHash(keygate.HashToken(secret), f.now.Add(24*time.Hour-time.Second)) {
			t.Errorf("secret not accepted during the grace: %+v, %v", stored, err)
		}
		if stored != nil && stored.AcceptsHash(keygate.HashToken(tok.Token), f.now.Add(24*time.Hour)) {
			t.Error("old secret accepted after the grace")
		}
	}
	if len(f.changes) != 1 || f.changes[0] != (keygate.Change{Kind: keygate.ChangeToken, ID: tok.ID}) {
		t.Errorf("changes %+v, want the token's", f.changes)
	}

	var one map[string]any
	f.do(owner, "GET", "/api/v1/orgs/acme/tokens/"+tok.ID, "").expect(http.StatusOK, &one)
	if one["rotated_at"] == nil || one["previous_secret_expires_at"] != f.now.Add(24*time.Hour).Format(time.RFC3339Nano) {
		t.Errorf("token after rotation: rotated_at %v, previous_secret_expires_at %v", one["rotated_at"], one["previous_secret_expires_at"])
	}
	var list struct {
		Tokens []map[string]any `json:"tokens"`
		Limits []struct{ Active, Max int }
	}
	f.do(owner, "GET", "/api/v1/orgs/acme/tokens", "").expect(http.StatusOK, &list)
	if len(list.Tokens) != 2 || list.Limits[0].Active != 2 {
		t.Errorf("after a rotation: %d tokens, %d active; want 2 and 2", len(list.Tokens), list.Limits[0].Active)
	}
	for _, body := range []string{f.logs.String(), mustJSON(t, one), mustJSON(t, list)} {
		if strings.Contains(body, rotated.Token) || strings.Contains(body, tok.Token) {
			t.Fatalf("a secret appears after rotation in:\n%s", body)
		}
	}

	deliveries, err := f.store.ListWebhookDeliveries(ctx, keygate.WebhookDeliveryFilter{OrganizationID: f.acme.ID})
	if err != nil {
		t.Fatal(err)
	}
	var rotatedEvents int
	for _, d := range deliveries {
		if d.Event == keygate.EventTokenRotated {
			rotatedEvents++
			if !strings.Contains(string(d.Payload), tok.ID) || strings.Contains(string(d.Payload), rotated.Token) ||
				!strings.Contains(string(d.Payload), `"previous_secret_expires_at"`) {
				t.Errorf("token.rotated payload %s", d.Payload)
			}
		}
	}
	if rotatedEvents != 1 {
		t.Errorf("%d token.rotated deliveries, want 1", rotatedEvents)
	}
}

func TestRotateTokenRefusals(t *testing.T) {
	f := newFixture(t)
	owner := f.login(f.owner)
	tok := f.createToken(owner, "acme", `{"name": "Short", "expires_in": "7d", "api": "menus"}`)
	gone := f.createToken(owner, "acme", `{"name": "Gone", "api": "menus"}`)
	f.do(owner, "DELETE", "/api/v1/orgs/acme/tokens/"+gone.ID, "").expect(http.StatusNoContent, nil)

	path := "/api/v1/orgs/acme/tokens/" + tok.ID + "/rotate"
	f.do(owner, "POST", path, `{"grace": "2h"}`).expectError(400, "invalid", `Unknown grace period "2h": choose one of 0, 1h, 24h, 7d.`)
	f.do(owner, "POST", path, `{}`).expectError(400, "invalid", `Unknown grace period "": choose one of 0, 1h, 24h, 7d.`)
	f.do(owner, "POST", "/api/v1/orgs/acme/tokens/"+gone.ID+"/rotate", `{"grace": "0"}`).
		expectError(404, "not_found", `Token "`+gone.ID+`" not found.`)
	f.do(f.login(f.globexOwner), "POST", path, `{"grace": "0"}`).expectError(404, "not_found", `Organization "acme" not found.`)
	f.now = f.now.Add(8 * 24 * time.Hour)
	f.do(owner, "POST", path, `{"grace": "0"}`).
		expectError(409, "conflict", `Token "`+tok.ID+`" has expired and cannot be rotated; create a new token instead.`)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
