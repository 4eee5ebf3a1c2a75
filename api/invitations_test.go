package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/api"
	"github.com/keygate/keygate/email"
	"github.com/keygate/keygate/manage"
)

type invitationBody struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	InvitedBy string    `json:"invited_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	URL       string    `json:"url"`
}

// invite has the owner invite email and returns the answer's invitation.
func (f *fixture) invite(c caller, email, role string) (invitationBody, response) {
	f.t.Helper()
	var inv invitationBody
	r := f.do(c, "POST", "/api/v1/orgs/acme/invitations", `{"email": "`+email+`", "role": "`+role+`"}`).expect(http.StatusCreated, &inv)
	return inv, r
}

func secretOf(t *testing.T, link string) string {
	t.Helper()
	_, secret, ok := strings.Cut(link, "/invitations/")
	if !ok || len(secret) != 43 {
		t.Fatalf("invitation link %q", link)
	}
	return secret
}

// An owner inviting an email that has an account, one that is already a
// member and one nobody uses gets the same answer: same status, same
// headers, same body but for the invitation's own id, link and email. No
// account is attached to the organization by inviting.
func TestInviteAnswersAlikeForAnyEmail(t *testing.T) {
	f := newFixture(t)
	owner := f.login(f.owner)
	var masked []string
	var headers []http.Header
	for _, email := range []string{"owner@globex.test", "member@acme.test", "nobody@acme.test"} {
		inv, r := f.invite(owner, email, "member")
		body := r.Body.String()
		body = strings.ReplaceAll(body, inv.ID, "ID")
		body = strings.ReplaceAll(body, secretOf(t, inv.URL), "SECRET")
		body = strings.ReplaceAll(body, email, "EMAIL")
		masked = append(masked, body)
		headers = append(headers, r.Header())
		if inv.Email != email || inv.Role != "member" || inv.InvitedBy != f.owner.ID ||
			!inv.ExpiresAt.Equal(inv.CreatedAt.Add(7*24*time.Hour)) || !strings.HasPrefix(inv.URL, "http://example.com/invitations/") {
			t.Errorf("invitation %+v", inv)
		}
	}
	for i := range masked[1:] {
		if masked[i+1] != masked[0] {
			t.Errorf("answers differ:\n%s\n%s", masked[0], masked[i+1])
		}
		if len(headers[i+1]) != len(headers[0]) || headers[i+1].Get("Content-Type") != headers[0].Get("Content-Type") {
			t.Errorf("headers differ: %v %v", headers[0], headers[i+1])
		}
	}
	ms, err := f.store.ListMemberships(context.Background(), keygate.MembershipFilter{OrganizationID: f.acme.ID, UserID: f.globexOwner.ID})
	if err != nil || len(ms) != 0 {
		t.Fatalf("inviting attached an account: %v %v", ms, err)
	}

	// The direct add is the operator's: an owner is refused alike for
	// every email, byte for byte.
	existing := f.do(owner, "POST", "/api/v1/orgs/acme/members", `{"email": "owner@globex.test", "role": "member"}`)
	unknown := f.do(owner, "POST", "/api/v1/orgs/acme/members", `{"email": "nobody@acme.test", "role": "member"}`)
	if existing.Code != http.StatusForbidden || existing.Code != unknown.Code || existing.Body.String() != unknown.Body.String() {
		t.Errorf("POST members as owner: %d %s / %d %s", existing.Code, existing.Body, unknown.Code, unknown.Body)
	}
	existing.expectError(403, "forbidden", "Owners invite members: POST /api/v1/orgs/acme/invitations. Adding a person directly is for site administrators.")

	// Bad input is refused alike too.
	for _, body := range []string{`{"email": "not an email", "role": "member"}`, `{"email": "owner@globex.test", "role": "admin"}`} {
		f.do(owner, "POST", "/api/v1/orgs/acme/invitations", body).expect(http.StatusBadRequest, nil)
	}
	f.do(owner, "POST", "/api/v1/orgs/acme/invitations", `{"email": "not an email", "role": "member"}`).expectError(400, "invalid", "Enter a valid email address.")
	f.do(owner, "POST", "/api/v1/orgs/acme/invitations", `{"email": "x@acme.test", "role": "admin"}`).expectError(400, "invalid", `Role must be "owner" or "member".`)
	f.do(owner, "POST", "/api/v1/orgs/acme/invitations", `{"email": "x@acme.test", "role": "member", "password": "plum orchard 42"}`).expect(http.StatusBadRequest, nil)
	// Members manage tokens, not people; other organizations are not there.
	f.do(f.login(f.member), "POST", "/api/v1/orgs/acme/invitations", `{"email": "x@acme.test", "role": "owner"}`).
		expectError(403, "forbidden", "Only the organization's owners can manage its members.")
	f.do(owner, "POST", "/api/v1/orgs/globex/invitations", `{"email": "x@acme.test", "role": "owner"}`).
		expectError(404, "not_found", `Organization "globex" not found.`)
	if strings.Contains(f.logs.String(), "/invitations/") {
		t.Errorf("an invitation link reached the logs:\n%s", f.logs)
	}
}

func TestInvitationAcceptOnce(t *testing.T) {
	f := newFixture(t)
	owner := f.login(f.owner)
	invited := f.login(f.globexOwner)
	inv, _ := f.invite(owner, "Owner@Globex.TEST", "member")
	secret := secretOf(t, inv.URL)
	accept := func(c caller, secret string) response {
		return f.do(c, "POST", "/api/v1/me/invitations/accept", `{"secret": "`+secret+`"}`)
	}

	// Listed while pending, without its link.
	var list struct{ Invitations []invitationBody }
	f.do(owner, "GET", "/api/v1/orgs/acme/invitations", "").expect(http.StatusOK, &list)
	if len(list.Invitations) != 1 || list.Invitations[0].ID != inv.ID || list.Invitations[0].URL != "" {
		t.Errorf("pending %+v", list.Invitations)
	}
	f.do(f.login(f.member), "GET", "/api/v1/orgs/acme/invitations", "").expectError(403, "forbidden", "Only the organization's owners can manage its members.")

	// Only the invited email accepts; an admin key has no email.
	accept(f.login(f.member), secret).expectError(403, "forbidden", "This invitation was sent to owner@globex.test. Log out and log in with that email to accept it.")
	accept(f.key(), secret).expectError(403, "forbidden", "Only a user can accept an invitation: log in as the invited email.")
	f.do(invited, "GET", "/api/v1/orgs/acme/tokens", "").expectError(404, "not_found", `Organization "acme" not found.`)

	var got struct {
		Organization struct{ Slug, Role string }
		Added        bool
	}
	accept(invited, secret).expect(http.StatusOK, &got)
	if got.Organization.Slug != "acme" || got.Organization.Role != "member" || !got.Added {
		t.Errorf("accepted %+v", got)
	}
	f.do(invited, "GET", "/api/v1/orgs/acme/tokens", "").expect(http.StatusOK, nil)
	f.do(owner, "GET", "/api/v1/orgs/acme/invitations", "").expect(http.StatusOK, &list)
	if len(list.Invitations) != 0 {
		t.Errorf("accepted invitation still pending: %+v", list.Invitations)
	}

	// Used, unknown, malformed, revoked, declined and expired links all get
	// the one answer, byte for byte.
	const notValid = "This invitation is not valid: it may have been used, revoked or have expired. Ask the organization's owner for a new one."
	used := accept(invited, secret)
	used.expectError(404, "not_found", notValid)
	answers := map[string]response{"used": used}
	answers["unknown"] = accept(invited, strings.Repeat("A", 43))
	answers["malformed"] = accept(invited, "../../x")
	revoked, _ := f.invite(owner, "owner@globex.test", "owner")
	f.do(owner, "DELETE", "/api/v1/orgs/acme/invitations/"+revoked.ID, "").expect(http.StatusNoContent, nil)
	f.do(owner, "DELETE", "/api/v1/orgs/acme/invitations/"+revoked.ID, "").expectError(404, "not_found", `Invitation "`+revoked.ID+`" not found or no longer pending.`)
	answers["revoked"] = accept(invited, secretOf(t, revoked.URL))
	declined, _ := f.invite(owner, "owner@globex.test", "owner")
	f.do(invited, "POST", "/api/v1/me/invitations/decline", `{"secret": "`+secretOf(t, declined.URL)+`"}`).expect(http.StatusNoContent, nil)
	answers["declined"] = accept(invited, secretOf(t, declined.URL))
	expired, _ := f.invite(owner, "owner@globex.test", "owner")
	f.now = f.now.Add(7 * 24 * time.Hour)
	answers["expired"] = accept(invited, secretOf(t, expired.URL))
	for name, r := range answers {
		if r.Code != used.Code || r.Body.String() != used.Body.String() {
			t.Errorf("%s: %d %s, want the used answer %d %s", name, r.Code, r.Body, used.Code, used.Body)
		}
	}
	// None of them changed the role the first acceptance gave.
	ms, err := f.store.ListMemberships(context.Background(), keygate.MembershipFilter{OrganizationID: f.acme.ID, UserID: f.globexOwner.ID})
	if err != nil || len(ms) != 1 || ms[0].Role != keygate.RoleMember {
		t.Fatalf("memberships %v %v", ms, err)
	}
}

// Inviting an email again replaces its pending invitation: the first
// link stops working, so a lost link is replaced by inviting again.
func TestInviteAgainReplacesTheLink(t *testing.T) {
	f := newFixture(t)
	owner := f.login(f.owner)
	first, _ := f.invite(owner, "owner@globex.test", "member")
	second, _ := f.invite(owner, "owner@globex.test", "owner")
	var list struct{ Invitations []invitationBody }
	f.do(owner, "GET", "/api/v1/orgs/acme/invitations", "").expect(http.StatusOK, &list)
	if len(list.Invitations) != 1 || list.Invitations[0].ID != second.ID {
		t.Fatalf("pending %+v", list.Invitations)
	}
	invited := f.login(f.globexOwner)
	f.do(invited, "POST", "/api/v1/me/invitations/accept", `{"secret": "`+secretOf(t, first.URL)+`"}`).expect(http.StatusNotFound, nil)
	f.do(invited, "POST", "/api/v1/me/invitations/accept", `{"secret": "`+secretOf(t, second.URL)+`"}`).expect(http.StatusOK, nil)
}

// Two accepts of one link sent at once: one joins, the other gets the
// "not valid" answer, and there is one membership.
func TestInvitationConcurrentAcceptsOneWins(t *testing.T) {
	f := newFixture(t)
	owner := f.login(f.owner)
	invited := f.login(f.globexOwner)
	for round := range 5 {
		inv, _ := f.invite(owner, "owner@globex.test", "member")
		body := `{"secret": "` + secretOf(t, inv.URL) + `"}`
		codes := make([]int, 2)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range codes {
			req := newRequest("POST", "/api/v1/me/invitations/accept", body, invited)
			wg.Go(func() {
				<-start
				rec := httptest.NewRecorder()
				f.handler.ServeHTTP(rec, req)
				codes[i] = rec.Code
			})
		}
		close(start)
		wg.Wait()
		if !(codes[0] == 200 && codes[1] == 404 || codes[0] == 404 && codes[1] == 200) {
			t.Fatalf("round %d: answers %v, want one 200 and one 404", round, codes)
		}
		ms, err := f.store.ListMemberships(context.Background(), keygate.MembershipFilter{OrganizationID: f.acme.ID, UserID: f.globexOwner.ID})
		if err != nil || len(ms) != 1 {
			t.Fatalf("round %d: memberships %v %v", round, ms, err)
		}
		f.do(owner, "DELETE", "/api/v1/orgs/acme/members/"+f.globexOwner.ID, "").expect(http.StatusNoContent, nil)
	}
}

// An owner whose invitee keygate emails is not shown the link: holding it,
// the owner could create the invited email's login with a password of
// their own, keep that address from then on, and get whatever a site
// administrator later adds it to. Only the mailbox gets the link. An
// admin key, which creates logins anyway, still sees it.
func TestEmailedInvitationLinkIsNotShownToTheOwner(t *testing.T) {
	f := newFixture(t)
	smtp, err := email.ParseServer("smtp://127.0.0.1:2525")
	if err != nil {
		t.Fatal(err)
	}
	linkKey := []byte("a link key of thirty-two bytes!!")
	outbox, err := email.New(f.store, email.Options{Server: smtp, From: "keygate@keygate.test", PublicURL: "https://keygate.test", LinkKey: linkKey})
	if err != nil {
		t.Fatal(err)
	}
	f.handler = api.New(api.Deps{Store: f.store, APIs: testAPIs(), Sessions: f.sessions, Now: func() time.Time { return f.now },
		PublicURL: "https://keygate.test", Invitations: outbox})

	var byOwner struct {
		ID      string  `json:"id"`
		URL     *string `json:"url"`
		Emailed bool    `json:"emailed"`
	}
	r := f.do(f.login(f.owner), "POST", "/api/v1/orgs/acme/invitations", `{"email": "someone@bigcorp.test", "role": "member"}`).
		expect(http.StatusCreated, &byOwner)
	mailed := keygate.InvitationSecret(linkKey, byOwner.ID)
	if byOwner.URL != nil || !byOwner.Emailed || strings.Contains(r.Body.String(), mailed) {
		t.Fatalf("the owner got the emailed invitation's link: %s", r.Body)
	}
	if _, err := manage.FindInvitation(context.Background(), f.store, mailed, f.now); err != nil {
		t.Fatalf("the mailbox's link does not open the invitation: %v", err)
	}
	queued, err := f.store.ListEmails(context.Background(), keygate.EmailFilter{})
	if err != nil || len(queued) != 1 || queued[0].InvitationID != byOwner.ID {
		t.Fatalf("queued emails %+v, %v: want the invitation's", queued, err)
	}

	byKey, _ := f.invite(f.key(), "dev@acme.test", keygate.RoleMember)
	if secretOf(t, byKey.URL) != keygate.InvitationSecret(linkKey, byKey.ID) {
		t.Errorf("an admin key's invitation link %q is not the emailed one", byKey.URL)
	}
}
