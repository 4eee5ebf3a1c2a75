package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

var linkField = regexp.MustCompile(`id="invitation-link" class="secret" value="([^"]+)"`)

func TestMembersPage(t *testing.T) {
	f := newFixture(t)
	owner := f.browser()
	owner.login(f.owner)
	page := owner.get("/orgs/acme/members").expect(t, http.StatusOK, "member@acme.test", "Invite a member", `<label class="visually-hidden" for="role-`+f.member.ID+`">Role of member@acme.test</label>`)
	csrf := field(t, csrfField, page.Body)

	// A new person joins by invitation: they create their login from the
	// link, with a password they choose.
	created := owner.post("/orgs/acme/invitations", url.Values{"csrf_token": {csrf}, "email": {"New@Acme.test"}, "role": {"member"}}).
		expect(t, http.StatusOK, "Invitation created", `Send this link to <span class="email">new@acme.test</span>`, "This is the only time the link is shown.")
	link := field(t, linkField, created.Body)
	if !strings.HasPrefix(link, f.server.URL+"/invitations/") {
		t.Fatalf("link %q", link)
	}
	owner.get("/orgs/acme/members").expect(t, http.StatusOK, "Pending invitations", "new@acme.test").lacks(t, link)
	owner.post("/orgs/acme/invitations", url.Values{"csrf_token": {csrf}, "email": {"not an email"}, "role": {"member"}}).
		expect(t, http.StatusBadRequest, "Enter a valid email address.", `value="not an email"`)

	nb := f.browser()
	invitation := nb.get(strings.TrimPrefix(link, f.server.URL)).expect(t, http.StatusOK, "Join Acme Corp", "as a <strong>member</strong>", "Log in to accept", "No keygate login yet?")
	signup := strings.TrimPrefix(link, f.server.URL) + "/signup"
	nb.post(signup, url.Values{"csrf_token": {field(t, csrfField, invitation.Body)}, "name": {"New Person"}, "password": {"pw"}, "password_confirm": {"pw"}}).
		expect(t, http.StatusBadRequest, "Password must be at least 12 characters.", `value="New Person"`)
	invitation = nb.get(strings.TrimPrefix(link, f.server.URL))
	nb.post(signup, url.Values{"csrf_token": {field(t, csrfField, invitation.Body)}, "name": {"New Person"}, "password": {"plum orchard 42"}, "password_confirm": {"plum orchard 42"}}).
		expect(t, http.StatusOK, "Welcome to Acme Corp.", "API Tokens")
	newUser, err := f.store.FindUserByEmail(context.Background(), "new@acme.test")
	if err != nil || newUser.Name != "New Person" {
		t.Fatal(newUser, err)
	}
	owner.get("/orgs/acme/members").expect(t, http.StatusOK, "New Person").lacks(t, "Pending invitations")
	// The link is used up.
	nb.get(strings.TrimPrefix(link, f.server.URL)).expect(t, http.StatusNotFound, "This invitation is not valid")

	owner.get("/orgs/acme/members/"+newUser.ID+"/remove").expect(t, http.StatusOK, "Remove new@acme.test?")
	owner.post("/orgs/acme/members/"+newUser.ID+"/role", url.Values{"csrf_token": {csrf}, "role": {"owner"}}).expect(t, http.StatusOK, "Role changed.")
	owner.post("/orgs/acme/members/"+f.owner.ID+"/role", url.Values{"csrf_token": {csrf}, "role": {"member"}}).expect(t, http.StatusOK, "Role changed.")
	// owner@acme.test is now a member: the pages and the forms refuse.
	owner.get("/orgs/acme/members").expect(t, http.StatusOK).lacks(t, "Invite a member")
	owner.post("/orgs/acme/members/"+newUser.ID+"/remove", url.Values{"csrf_token": {csrf}}).
		expect(t, http.StatusForbidden, "Only the organization&#39;s owners can manage its members.")
	// The last owner cannot leave without a successor.
	nb.post("/orgs/acme/members/"+newUser.ID+"/remove", url.Values{"csrf_token": {field(t, csrfField, nb.get("/orgs/acme/members").Body)}}).
		expect(t, http.StatusConflict, "new@acme.test is the only owner: make someone else an owner first.")

	member := f.browser()
	mcsrf := member.login(f.member)
	member.get("/orgs/acme/members").expect(t, http.StatusOK, "owner@acme.test").lacks(t, "Invite a member", `name="role"`)
	member.post("/orgs/acme/invitations", url.Values{"csrf_token": {mcsrf}, "email": {"z@acme.test"}, "role": {"owner"}}).
		expect(t, http.StatusForbidden, "Only the organization&#39;s owners can manage its members.")
	member.get("/orgs/acme/members/"+f.owner.ID+"/remove").expect(t, http.StatusForbidden)
}

func TestSettingsPage(t *testing.T) {
	f := newFixture(t)
	owner := f.browser()
	ocsrf := owner.login(f.owner)
	owner.get("/orgs/acme/settings").expect(t, http.StatusOK, "Plan &amp; entitlements", "<dt>Plan</dt><dd>free</dd>", "Site administrators change the plan").
		lacks(t, `name="plan"`)
	owner.post("/orgs/acme/settings", url.Values{"csrf_token": {ocsrf}, "name": {"Acme"}, "plan": {"pro"}}).
		expect(t, http.StatusForbidden, "Only site administrators can change")

	admin := f.browser()
	acsrf := admin.login(f.sys)
	admin.get("/orgs/acme/settings").expect(t, http.StatusOK, `name="plan" value="free"`, "menus: 2", "events: unlimited")
	admin.post("/orgs/acme/settings", url.Values{
		"csrf_token": {acsrf}, "name": {"Acme Corporation"}, "plan": {"pro"},
		"states": {"California\r\nColorado, Michigan\r\n\r\ncalifornia"}, "brands": {""}, "dispensaries": {"Green Door"},
		"max_active_tokens": {"5"},
	}).expect(t, http.StatusOK, "Saved.", "California\nColorado\nMichigan</textarea>", `value="pro"`, `value="5"`)
	org, err := f.store.FindOrganizationBySlug(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if org.Name != "Acme Corporation" || org.Plan != "pro" || org.MaxActiveTokens != 5 ||
		strings.Join(org.Entitlements.States, "|") != "California|Colorado|Michigan" || len(org.Entitlements.Brands) != 0 ||
		strings.Join(org.Entitlements.Dispensaries, "|") != "Green Door" {
		t.Errorf("stored %+v", org)
	}
	admin.post("/orgs/acme/settings", url.Values{"csrf_token": {acsrf}, "name": {"Acme"}, "plan": {"pro plan"}}).
		expect(t, http.StatusBadRequest, "Plan must be 1 to 50 characters without spaces.", `value="pro plan"`)
	admin.post("/orgs/acme/settings", url.Values{"csrf_token": {acsrf}, "name": {"Acme"}, "plan": {"pro"}, "max_active_tokens": {"lots"}}).
		expect(t, http.StatusBadRequest, "The active-token limit must be a whole number")
	owner.get("/orgs/acme/settings").expect(t, http.StatusOK, "<dt>Plan</dt><dd>pro</dd>", `<span class="scope">Colorado</span>`)
}

func TestOrganizationsPage(t *testing.T) {
	f := newFixture(t)
	member := f.browser()
	mcsrf := member.login(f.member)
	member.get("/orgs").expect(t, http.StatusOK, "Acme Corp", "The organizations you belong to.").lacks(t, "Globex", "New organization")
	member.post("/orgs", url.Values{"csrf_token": {mcsrf}, "slug": {"mine"}, "name": {"Mine"}, "plan": {"free"}}).
		expect(t, http.StatusForbidden, "Only site administrators can do this.")

	admin := f.browser()
	acsrf := admin.login(f.sys)
	// An administrator who belongs to no organization lands on the list.
	list := admin.get("/").expect(t, http.StatusOK, "Acme Corp", "Globex", "New organization")
	if list.Request.URL.Path != "/orgs" {
		t.Errorf("administrator home at %s", list.Request.URL)
	}
	admin.post("/orgs", url.Values{"csrf_token": {acsrf}, "slug": {"Bad Slug"}, "name": {"Initech"}, "plan": {"free"}}).
		expect(t, http.StatusBadRequest, "Slug must be 1 to 63", `value="Initech"`)
	admin.post("/orgs", url.Values{"csrf_token": {acsrf}, "slug": {"acme"}, "name": {"Acme again"}, "plan": {"free"}}).
		expect(t, http.StatusConflict, "The organization slug &#34;acme&#34; is taken.")
	created := admin.post("/orgs", url.Values{"csrf_token": {acsrf}, "slug": {"initech"}, "name": {"Initech"}, "plan": {"pro"}}).
		expect(t, http.StatusOK, "Organization created.")
	if created.Request.URL.Path != "/orgs/initech/settings" {
		t.Errorf("after create at %s", created.Request.URL)
	}

	admin.get("/orgs/initech/delete").expect(t, http.StatusOK, "Delete Initech?", "Type <code>initech</code> to confirm")
	admin.post("/orgs/initech/delete", url.Values{"csrf_token": {acsrf}, "confirm_slug": {"acme"}}).
		expect(t, http.StatusBadRequest, "Type the organization&#39;s slug exactly to confirm.")
	admin.post("/orgs/initech/delete", url.Values{"csrf_token": {acsrf}, "confirm_slug": {"initech"}}).
		expect(t, http.StatusOK, "Organization deleted.").lacks(t, "Initech")
	owner := f.browser()
	owner.login(f.owner)
	owner.get("/orgs/acme/delete").expect(t, http.StatusForbidden)
}

func TestOrganizationSwitcher(t *testing.T) {
	f := newFixture(t)
	if err := f.store.SetMembership(context.Background(), &keygate.Membership{OrganizationID: f.globex.ID, UserID: f.member.ID, Role: keygate.RoleMember, CreatedAt: f.now}); err != nil {
		t.Fatal(err)
	}
	b := f.browser()
	b.login(f.member)
	b.get("/orgs/globex/tokens").expect(t, http.StatusOK,
		`<summary><span class="visually-hidden">Organization: </span>Globex</summary>`,
		`<a href="/orgs/acme/tokens">Acme Corp`, `<a href="/orgs/globex/tokens" aria-current="true">Globex`)
}

func TestUsagePages(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.login(f.owner)
	b.createToken("acme", url.Values{"api": {"menus"}, "name": {"Busy"}}).expect(t, http.StatusCreated)
	tok := f.activeTokens(f.acme)[0]
	hour := f.now.UTC().Truncate(time.Hour)
	err := f.store.RecordUsage(context.Background(), "", []keygate.UsageCount{
		{OrganizationID: f.acme.ID, TokenID: tok.ID, Hour: hour, Requests: 1200, Errors: 30, RateLimited: 7},
		{OrganizationID: f.acme.ID, TokenID: tok.ID, Hour: hour.Add(-3 * 24 * time.Hour), Requests: 500},
		{OrganizationID: f.acme.ID, TokenID: "", Hour: hour, Requests: 4},
	})
	if err != nil {
		t.Fatal(err)
	}
	day := b.get("/orgs/acme/usage").expect(t, http.StatusOK,
		`role="img" aria-labelledby="chart-title chart-desc"`,
		`<desc id="chart-desc">Last 24 hours: 1,204 requests, 30 errors, 7 rate-limited (429).</desc>`,
		"<dd>1,204</dd>", `<a href="?period=24h" aria-current="page">Last 24 hours</a>`,
		`>Busy</a>`, "OAuth clients (MCP)", `<td class="num">1,200</td>`)
	if n := strings.Count(day.Body, `<rect class="hit"`); n != 24 {
		t.Errorf("%d hourly slots in the day chart, want 24", n)
	}
	if n := strings.Count(day.Body, `<rect class="bar limited"`); n != 1 {
		t.Errorf("%d 429 bars, want 1", n)
	}
	week := b.get("/orgs/acme/usage?period=7d").expect(t, http.StatusOK, "Last 7 days: 1,704 requests")
	if n := strings.Count(week.Body, `<rect class="hit"`); n != 168 {
		t.Errorf("%d hourly slots in the week chart, want 168", n)
	}
	b.get("/orgs/acme/tokens/"+tok.ID+"?period=7d").expect(t, http.StatusOK, "Last 7 days: 1,700 requests, 30 errors, 7 rate-limited (429).")
	b.get("/orgs/acme/usage?period=1y").expect(t, http.StatusBadRequest, "Unknown period &#34;1y&#34;: choose 24h or 7d.")
}
