package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

var newSecretField = regexp.MustCompile(`id="new-token" class="secret" value="([^"]+)"`)

// Rotate asks for the grace (24 hours preselected), shows the new secret
// once, and a reload of the answer cannot rotate a second time.
func TestRotateTokenWithConfirmationAndGrace(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.login(f.member)
	b.createToken("acme", url.Values{"api": {"menus"}, "name": {"Server"}}).expect(t, http.StatusCreated)
	tok := f.activeTokens(f.acme)[0]

	b.get("/orgs/acme/tokens").expect(t, http.StatusOK, `href="/orgs/acme/tokens/`+tok.ID+`/rotate"`)
	confirm := b.get("/orgs/acme/tokens/"+tok.ID+"/rotate").expect(t, http.StatusOK,
		"Rotate token “Server”?", `<input type="radio" name="grace" value="24h" checked>`, `value="0"`, `value="1h"`, `value="7d"`)
	if got := f.activeTokens(f.acme)[0]; got.RotatedAt != nil {
		t.Fatal("the confirmation page rotated the token")
	}
	form := url.Values{"csrf_token": {field(t, csrfField, confirm.Body)}, "form_id": {field(t, formIDField, confirm.Body)}, "grace": {"1h"}}
	done := b.post("/orgs/acme/tokens/"+tok.ID+"/rotate", form).expect(t, http.StatusOK, "Token rotated", "The old secret works until")
	secret := field(t, newSecretField, done.Body)
	stored, err := f.store.FindTokenByHash(context.Background(), keygate.HashToken(secret))
	if err != nil || stored.ID != tok.ID || stored.PreviousHash != tok.Hash ||
		stored.PreviousHashExpiresAt.Sub(*stored.RotatedAt) != time.Hour {
		t.Fatalf("after rotating with 1h grace: %+v, %v", stored, err)
	}
	b.post("/orgs/acme/tokens/"+tok.ID+"/rotate", form).expect(t, http.StatusConflict)
	if again, _ := f.store.FindTokenByID(context.Background(), tok.ID); again.Hash != stored.Hash {
		t.Error("posting the same form again rotated the token again")
	}
	b.get("/orgs/acme/tokens/"+tok.ID).expect(t, http.StatusOK, "Rotated", "old secret works until").lacks(t, secret)
}
