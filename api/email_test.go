package api_test

import (
	"net/http"
	"testing"

	"github.com/keygate/keygate"
)

type emailSettingsBody struct {
	Emails    map[string]bool `json:"emails"`
	Sending   bool            `json:"sending"`
	UpdatedAt *string         `json:"updated_at"`
}

// An owner turns kinds of email off and on; the others stay; members and
// other organizations' owners cannot see or change them.
func TestEmailSettings(t *testing.T) {
	f := newFixture(t)
	owner := f.login(f.owner)
	var got emailSettingsBody
	f.do(owner, "GET", "/api/v1/orgs/acme/email-settings", "").expect(http.StatusOK, &got)
	if len(got.Emails) != 3 || !got.Emails["token.expiring"] || !got.Emails["token.created"] || !got.Emails["member.added"] || got.UpdatedAt != nil || got.Sending {
		t.Fatalf("defaults %+v", got)
	}
	f.do(owner, "PATCH", "/api/v1/orgs/acme/email-settings", `{"emails": {"token.created": false, "member.added": false}}`).expect(http.StatusOK, &got)
	f.do(owner, "PATCH", "/api/v1/orgs/acme/email-settings", `{"emails": {"member.added": true}}`).expect(http.StatusOK, &got)
	if !got.Emails["token.expiring"] || got.Emails["token.created"] || !got.Emails["member.added"] || got.UpdatedAt == nil {
		t.Fatalf("after two changes %+v", got)
	}
	stored, err := f.store.FindEmailSettings(t.Context(), f.acme.ID)
	if err != nil || len(stored.Disabled) != 1 || stored.Disabled[0] != keygate.EmailTokenCreated {
		t.Fatalf("stored %+v, %v", stored, err)
	}
	f.do(f.key(), "GET", "/api/v1/orgs/acme/email-settings", "").expect(http.StatusOK, &got)
	if got.Emails["token.created"] {
		t.Errorf("admin key sees %+v", got)
	}

	f.do(owner, "PATCH", "/api/v1/orgs/acme/email-settings", `{"emails": {"token.deleted": false}}`).
		expectError(400, "invalid", `Unknown email kind "token.deleted": choose from token.expiring, token.created, member.added.`)
	f.do(owner, "PATCH", "/api/v1/orgs/acme/email-settings", `{"emails": {"token.expiring": "no"}}`).expect(http.StatusBadRequest, nil)
	member := f.login(f.member)
	f.do(member, "GET", "/api/v1/orgs/acme/email-settings", "").expectError(403, "forbidden", "Only the organization's owners can choose its emails.")
	f.do(member, "PATCH", "/api/v1/orgs/acme/email-settings", `{"emails": {"token.expiring": false}}`).expectError(403, "forbidden", "Only the organization's owners can choose its emails.")
	f.do(f.login(f.globexOwner), "GET", "/api/v1/orgs/acme/email-settings", "").expectError(404, "not_found", `Organization "acme" not found.`)
	if stored, _ := f.store.FindEmailSettings(t.Context(), f.acme.ID); len(stored.Disabled) != 1 {
		t.Errorf("refused changes stored: %+v", stored)
	}
}
