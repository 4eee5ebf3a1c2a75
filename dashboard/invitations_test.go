package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/dashboard"
	"github.com/keygate/keygate/email"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/session"
)

// invite has b (an owner of acme, logged in) invite email and returns the
// link's path.
func (b *browser) invite(email, role string) string {
	b.f.t.Helper()
	csrf := field(b.f.t, csrfField, b.get("/orgs/acme/members").Body)
	created := b.post("/orgs/acme/invitations", url.Values{"csrf_token": {csrf}, "email": {email}, "role": {role}}).
		expect(b.f.t, http.StatusOK, "Invitation created")
	return strings.TrimPrefix(field(b.f.t, linkField, created.Body), b.f.server.URL)
}

// Someone with an account opens the link logged out, logs in from the
// invitation page and accepts; someone else logged in cannot accept it.
func TestInvitationAcceptedByItsInvitee(t *testing.T) {
	f := newFixture(t)
	owner := f.browser()
	owner.login(f.owner)
	link := owner.invite("OWNER@globex.test", "owner")

	// Another user sees whom it is for and cannot accept it.
	other := f.browser()
	ocsrf := other.login(f.member)
	other.get(link).expect(t, http.StatusOK, `You are logged in as <span class="email">member@acme.test</span>`, `log in with <span class="email">owner@globex.test</span>`).lacks(t, "Accept and join")
	other.post(link+"/accept", url.Values{"csrf_token": {ocsrf}}).
		expect(t, http.StatusForbidden, "This invitation was sent to owner@globex.test.")

	invitee := f.browser()
	page := invitee.get(link).expect(t, http.StatusOK, "Join Acme Corp", "as an <strong>owner</strong>", "Log in to accept",
		`<input type="hidden" name="next" value="`+link+`">`)
	// Creating an account for an email that has one is refused: log in.
	invitee.post(link+"/signup", url.Values{"csrf_token": {field(t, csrfField, page.Body)}, "password": {"plum orchard 42"}, "password_confirm": {"plum orchard 42"}}).
		expect(t, http.StatusConflict, "An account with this email already exists: log in with its password to accept.")
	page = invitee.get(link)
	accept := invitee.post("/login", url.Values{"csrf_token": {field(t, csrfField, page.Body)}, "next": {link}, "email": {"owner@globex.test"}, "password": {testPassword}}).
		expect(t, http.StatusOK, "Accept and join", "Decline")
	if accept.Request.URL.Path != link {
		t.Errorf("after login at %s", accept.Request.URL.Path)
	}
	// Accepting needs the session's form token.
	invitee.post(link+"/accept", url.Values{"csrf_token": {"forged"}}).expect(t, http.StatusForbidden, "This form has expired")
	joined := invitee.post(link+"/accept", url.Values{"csrf_token": {field(t, csrfField, accept.Body)}}).
		expect(t, http.StatusOK, "Welcome to Acme Corp.", "API Tokens")
	if joined.Request.URL.Path != "/orgs/acme/tokens" {
		t.Errorf("after accepting at %s", joined.Request.URL.Path)
	}
	ms, err := f.store.ListMemberships(context.Background(), keygate.MembershipFilter{OrganizationID: f.acme.ID, UserID: f.globexOwner.ID})
	if err != nil || len(ms) != 1 || ms[0].Role != keygate.RoleOwner {
		t.Fatalf("memberships %v %v", ms, err)
	}
	invitee.post(link+"/accept", url.Values{"csrf_token": {field(t, csrfField, accept.Body)}}).expect(t, http.StatusNotFound, "This invitation is not valid")

	if strings.Contains(f.logs.String(), strings.TrimPrefix(link, "/invitations/")) {
		t.Errorf("an invitation secret reached the logs:\n%s", f.logs)
	}
}

// Every link that opens nothing gets the same page, byte for byte: used,
// revoked, declined, expired, unknown or malformed.
func TestInvitationNotValidPageIsOne(t *testing.T) {
	f := newFixture(t)
	owner := f.browser()
	ocsrf := owner.login(f.owner)
	invitee := f.browser()
	icsrf := invitee.login(f.globexOwner)

	used := owner.invite("owner@globex.test", "member")
	invitee.post(used+"/accept", url.Values{"csrf_token": {icsrf}}).expect(t, http.StatusOK, "Welcome to Acme Corp.")
	declined := owner.invite("owner@globex.test", "owner")
	invitee.post(declined+"/decline", url.Values{"csrf_token": {icsrf}}).expect(t, http.StatusOK, "Invitation declined.")
	revoked := owner.invite("someone@example.test", "member")
	inv, err := f.store.ListInvitations(context.Background(), keygate.InvitationFilter{OrganizationID: f.acme.ID, PendingAt: f.now})
	if err != nil || len(inv) != 1 {
		t.Fatal(inv, err)
	}
	owner.post("/orgs/acme/invitations/"+inv[0].ID+"/revoke", url.Values{"csrf_token": {ocsrf}}).
		expect(t, http.StatusOK, "Invitation revoked. Its link no longer works.").lacks(t, "Pending invitations")
	expired := owner.invite("late@example.test", "member")
	f.now = f.now.Add(keygate.InvitationLifetime)

	visitor := f.browser()
	want := visitor.get("/invitations/"+strings.Repeat("A", 43)).expect(t, http.StatusNotFound, "This invitation is not valid").Body
	for name, path := range map[string]string{"used": used, "declined": declined, "revoked": revoked, "expired": expired, "malformed": "/invitations/x"} {
		got := visitor.get(path).expect(t, http.StatusNotFound)
		if got.Body != want {
			t.Errorf("%s: page differs from the unknown link's:\n%s\n---\n%s", name, got.Body, want)
		}
	}
	// The invitee stays a member with the role the used invitation gave.
	ms, _ := f.store.ListMemberships(context.Background(), keygate.MembershipFilter{OrganizationID: f.acme.ID, UserID: f.globexOwner.ID})
	if len(ms) != 1 || ms[0].Role != keygate.RoleMember {
		t.Fatalf("memberships %v", ms)
	}
}

// Invitation pages answer anyone, so each address gets a bounded number
// of them: guesses cost a lookup each.
func TestInvitationPagesLimitedPerAddress(t *testing.T) {
	f := newFixture(t)
	guesser := f.browserFrom("198.51.100.7")
	for i := range 30 {
		guesser.get("/invitations/"+strings.Repeat(string(rune('a'+i%26)), 43)).expect(t, http.StatusNotFound)
	}
	limited := guesser.get("/invitations/"+strings.Repeat("z", 43)).expect(t, http.StatusTooManyRequests, "Too many requests from your address")
	if limited.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	// Another address is not affected.
	f.browserFrom("198.51.100.8").get("/invitations/"+strings.Repeat("z", 43)).expect(t, http.StatusNotFound)

	// An IPv6 client is its /64, whichever of its addresses it uses.
	for i := range 30 {
		f.browserFrom(fmt.Sprintf("2001:db8:5:5::%x", i+1)).get("/invitations/"+strings.Repeat("y", 43)).expect(t, http.StatusNotFound)
	}
	f.browserFrom("2001:db8:5:5:ffff::1").get("/invitations/"+strings.Repeat("y", 43)).expect(t, http.StatusTooManyRequests, "Too many requests from your address")
	f.browserFrom("2001:db8:5:6::1").get("/invitations/"+strings.Repeat("y", 43)).expect(t, http.StatusNotFound)
}

// With email on, an owner's invitation page says keygate emailed the link
// and does not show it: holding it, the owner could create the invited
// email's login with a password of their own and keep that address.
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
	h := dashboard.New(dashboard.Deps{
		Store: f.store, APIs: testAPIs(), Sessions: &session.Manager{Sessions: f.store, Users: f.store},
		Now: func() time.Time { return f.now }, Logins: f.logins, ClientIP: testClientIP,
		PublicURL: "https://keygate.test", Invitations: outbox,
	})
	t.Cleanup(func() { h.Close() })
	f.server = httptest.NewServer(h)
	t.Cleanup(f.server.Close)

	owner := f.browser()
	csrf := owner.login(f.owner)
	created := owner.post("/orgs/acme/invitations", url.Values{"csrf_token": {csrf}, "email": {"someone@bigcorp.test"}, "role": {"member"}}).
		expect(t, http.StatusOK, `keygate emailed the link to <span class="email">someone@bigcorp.test</span>`)
	pending, err := manage.ListInvitations(context.Background(), f.store, f.acme, f.now)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending invitations %v, %v", pending, err)
	}
	created.lacks(t, "invitation-link", manage.InvitationPathPrefix, keygate.InvitationSecret(linkKey, pending[0].ID))
}
