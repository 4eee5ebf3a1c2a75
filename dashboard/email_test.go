package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/keygate/keygate"
)

// Owners choose the organization's emails on the Email page; members do
// not see it; the page says when keygate has no mail server.
func TestEmailSettingsPage(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	csrf := b.login(f.owner)
	b.get("/orgs/acme/tokens").expect(t, http.StatusOK, `href="/orgs/acme/email"`)
	b.get("/orgs/acme/email").expect(t, http.StatusOK, "Token expiring", "Token created", "Member added",
		`value="token.created" checked`, "no mail server configured")
	b.post("/orgs/acme/email", url.Values{"csrf_token": {csrf}, "emails": {keygate.EmailTokenExpiring, keygate.EmailMemberAdded}}).
		expect(t, http.StatusOK, "Saved.", `value="token.expiring" checked`, `value="member.added" checked`).
		lacks(t, `value="token.created" checked`)
	s, err := f.store.FindEmailSettings(context.Background(), f.acme.ID)
	if err != nil || len(s.Disabled) != 1 || s.Disabled[0] != keygate.EmailTokenCreated {
		t.Fatalf("stored %+v, %v", s, err)
	}
	b.post("/orgs/acme/email", url.Values{"csrf_token": {"wrong"}, "emails": {}}).expect(t, http.StatusForbidden)
	if s, _ := f.store.FindEmailSettings(context.Background(), f.acme.ID); len(s.Disabled) != 1 {
		t.Errorf("a form without its CSRF token changed the settings: %+v", s)
	}

	m := f.browser()
	mcsrf := m.login(f.member)
	m.get("/orgs/acme/tokens").expect(t, http.StatusOK).lacks(t, `href="/orgs/acme/email"`)
	m.get("/orgs/acme/email").expect(t, http.StatusForbidden, "Only the organization&#39;s owners can choose its emails.")
	m.post("/orgs/acme/email", url.Values{"csrf_token": {mcsrf}}).expect(t, http.StatusForbidden)
	if s, _ := f.store.FindEmailSettings(context.Background(), f.acme.ID); len(s.Disabled) != 1 {
		t.Errorf("a member changed the settings: %+v", s)
	}
}
