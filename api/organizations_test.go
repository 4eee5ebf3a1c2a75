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

type orgBody struct {
	ID              string
	Slug            string
	Name            string
	Plan            string
	Entitlements    keygate.Entitlements
	MaxActiveTokens int `json:"max_active_tokens"`
	Role            string
}

func TestListOrganizations(t *testing.T) {
	f := newFixture(t)
	var list struct{ Organizations []orgBody }
	f.do(f.login(f.member), "GET", "/api/v1/orgs", "").expect(http.StatusOK, &list)
	if len(list.Organizations) != 1 || list.Organizations[0].Slug != "acme" || list.Organizations[0].Role != "member" {
		t.Errorf("member sees %+v", list.Organizations)
	}
	f.do(f.key(), "GET", "/api/v1/orgs", "").expect(http.StatusOK, &list)
	if len(list.Organizations) != 2 || list.Organizations[0].Slug != "acme" || list.Organizations[1].Slug != "globex" || list.Organizations[0].Role != "" {
		t.Errorf("admin key sees %+v", list.Organizations)
	}
	r := f.do(f.login(f.owner), "GET", "/api/v1/orgs/acme", "")
	if !strings.Contains(r.Body.String(), `"entitlements": {
    "states": [],
    "brands": [],
    "dispensaries": []
  }`) {
		t.Errorf("empty entitlements should be empty lists:\n%s", r.Body)
	}
}

func TestCreateOrganization(t *testing.T) {
	f := newFixture(t)
	var org orgBody
	f.do(f.key(), "POST", "/api/v1/orgs", `{"slug": "initech", "name": "Initech", "plan": "pro",
		"entitlements": {"states": [" California ", "california", "Oregon", ""]}, "max_active_tokens": 5}`).expect(http.StatusCreated, &org)
	if org.Slug != "initech" || org.Name != "Initech" || org.Plan != "pro" || org.MaxActiveTokens != 5 ||
		fmt.Sprint(org.Entitlements.States) != "[California Oregon]" || !strings.HasPrefix(org.ID, "org_") {
		t.Errorf("created %+v", org)
	}
	f.do(f.login(f.sys), "POST", "/api/v1/orgs", `{"slug": "hooli"}`).expect(http.StatusCreated, &org)
	if org.Name != "hooli" || org.Plan != "free" {
		t.Errorf("defaults: %+v", org)
	}

	f.do(f.key(), "POST", "/api/v1/orgs", `{"slug": "initech"}`).expectError(409, "conflict", `The organization slug "initech" is taken.`)
	f.do(f.key(), "POST", "/api/v1/orgs", `{"slug": "Not A Slug"}`).expectError(400, "invalid", "Slug must be 1 to 63 lower-case letters, digits or dashes, starting and ending with a letter or digit.")
	f.do(f.key(), "POST", "/api/v1/orgs", `{"slug": "x", "name": "`+strings.Repeat("n", 101)+`"}`).expectError(400, "invalid", "Organization name must be 1 to 100 characters.")
	f.do(f.key(), "POST", "/api/v1/orgs", `{"slug": "x", "max_active_tokens": -1}`).expectError(400, "invalid", "The active-token limit cannot be negative; use 0 for the API's own limit.")
	f.do(f.key(), "POST", "/api/v1/orgs", `{"slug": "x", "entitlements": {"regions": ["EU"]}}`).expectError(400, "invalid", `Unknown field "regions".`)
	f.do(f.key(), "POST", "/api/v1/orgs", `{"slug": "x", "owner": "me"}`).expectError(400, "invalid", `Unknown field "owner".`)
	for _, u := range []*keygate.User{f.owner, f.member} {
		f.do(f.login(u), "POST", "/api/v1/orgs", `{"slug": "mine"}`).expectError(403, "forbidden", "Only site administrators can do this.")
	}
}

func TestUpdateOrganizationPlanAndEntitlements(t *testing.T) {
	f := newFixture(t)
	var org orgBody
	f.do(f.key(), "PATCH", "/api/v1/orgs/acme", `{"plan": "pro", "entitlements": {"states": ["Michigan"], "brands": ["Kiva"]}}`).expect(http.StatusOK, &org)
	if org.Plan != "pro" || org.Name != "Acme Corp" || fmt.Sprint(org.Entitlements) != "{[Michigan] [Kiva] []}" {
		t.Errorf("updated %+v", org)
	}
	if fmt.Sprint(f.changes) != fmt.Sprint([]keygate.Change{{Kind: keygate.ChangeOrganization, ID: f.acme.ID}}) {
		t.Errorf("notified %v", f.changes)
	}
	stored, err := f.store.FindOrganizationBySlug(context.Background(), "acme")
	if err != nil || stored.Plan != "pro" || fmt.Sprint(stored.Entitlements.States) != "[Michigan]" {
		t.Fatalf("stored %+v %v", stored, err)
	}
	// Only fields present change.
	f.do(f.login(f.sys), "PATCH", "/api/v1/orgs/acme", `{"max_active_tokens": 1}`).expect(http.StatusOK, &org)
	if org.Plan != "pro" || org.MaxActiveTokens != 1 || fmt.Sprint(org.Entitlements.Brands) != "[Kiva]" {
		t.Errorf("partial update %+v", org)
	}
	// The organization's own limit replaces the API's.
	f.createToken(f.key(), "acme", `{"name": "only", "api": "events"}`)
	f.do(f.key(), "POST", "/api/v1/orgs/acme/tokens", `{"name": "second", "api": "events"}`).
		expectError(409, "conflict", "This organization already has 1 active token for this API, the most allowed. Delete a token before creating a new one.")

	f.do(f.key(), "PATCH", "/api/v1/orgs/acme", `{"plan": ""}`).expectError(400, "invalid", "Plan must be 1 to 50 characters without spaces.")
	f.do(f.key(), "PATCH", "/api/v1/orgs/acme", `{"slug": "new"}`).expectError(400, "invalid", `Unknown field "slug".`)
	f.do(f.key(), "PATCH", "/api/v1/orgs/nope", `{"plan": "pro"}`).expectError(404, "not_found", `Organization "nope" not found.`)
	const onlyAdmins = "Only site administrators can change an organization's plan, entitlements and limits."
	f.do(f.login(f.owner), "PATCH", "/api/v1/orgs/acme", `{"plan": "enterprise"}`).expectError(403, "forbidden", onlyAdmins)
	f.do(f.login(f.member), "PATCH", "/api/v1/orgs/acme", `{"plan": "enterprise"}`).expectError(403, "forbidden", onlyAdmins)
	f.do(f.login(f.owner), "DELETE", "/api/v1/orgs/acme", "").expectError(403, "forbidden", onlyAdmins)
}

func TestDeleteOrganizationRevokesItsTokens(t *testing.T) {
	f := newFixture(t)
	tok := f.createToken(f.key(), "globex", `{"name": "x", "api": "menus"}`)
	f.changes = nil
	f.do(f.key(), "DELETE", "/api/v1/orgs/globex", "").expect(http.StatusNoContent, nil)
	if fmt.Sprint(f.changes) != fmt.Sprint([]keygate.Change{{Kind: keygate.ChangeOrganization, ID: f.globex.ID}}) {
		t.Errorf("notified %v", f.changes)
	}
	f.do(f.key(), "GET", "/api/v1/orgs/globex", "").expectError(404, "not_found", `Organization "globex" not found.`)
	stored, err := f.store.FindTokenByID(context.Background(), tok.ID)
	if err != nil || stored.RevokedAt == nil {
		t.Errorf("token of a deleted organization not revoked: %+v %v", stored, err)
	}
}

type memberBody struct {
	UserID string `json:"user_id"`
	Email  string
	Name   string
	Role   string
	Since  time.Time
}

func TestMembers(t *testing.T) {
	f := newFixture(t)
	owner := f.login(f.owner)
	var list struct{ Members []memberBody }
	f.do(f.login(f.member), "GET", "/api/v1/orgs/acme/members", "").expect(http.StatusOK, &list)
	if len(list.Members) != 2 || list.Members[0].Email != "member@acme.test" || list.Members[1].Role != "owner" {
		t.Errorf("members %+v", list.Members)
	}

	// A site administrator (the operator) adds people directly: a new
	// email with a password creates the login.
	admin := f.key()
	var m memberBody
	f.do(admin, "POST", "/api/v1/orgs/acme/members", `{"email": " New@Acme.test ", "name": "New Person", "password": "plum orchard 42", "role": "member"}`).expect(http.StatusCreated, &m)
	if m.Email != "new@acme.test" || m.Name != "New Person" || m.Role != "member" || !strings.HasPrefix(m.UserID, "usr_") {
		t.Errorf("added %+v", m)
	}
	u, err := f.store.FindUserByEmail(context.Background(), "new@acme.test")
	if err != nil || !strings.HasPrefix(u.PasswordHash, "$argon2id$") || strings.Contains(u.PasswordHash, "plum orchard 42") {
		t.Fatalf("new user %+v %v", u, err)
	}
	if strings.Contains(f.logs.String(), "plum orchard 42") {
		t.Error("a password reached the logs")
	}
	// An existing user is added without a password, and never gets one set.
	f.do(admin, "POST", "/api/v1/orgs/globex/members", `{"email": "new@acme.test", "password": "takeover", "role": "owner"}`).
		expectError(400, "invalid", "A user with this email already exists: leave the password empty to add them.")
	f.do(admin, "POST", "/api/v1/orgs/globex/members", `{"email": "new@acme.test", "role": "owner"}`).expect(http.StatusCreated, &m)
	f.do(f.login(f.sys), "POST", "/api/v1/orgs/acme/members", `{"email": "new@acme.test", "role": "member"}`).expectError(409, "conflict", "new@acme.test is already a member.")
	f.do(admin, "POST", "/api/v1/orgs/acme/members", `{"email": "nobody@acme.test", "role": "member"}`).expectError(400, "invalid", "No user has this email: set a password to create their login.")
	f.do(admin, "POST", "/api/v1/orgs/acme/members", `{"email": "x@acme.test", "password": "pw", "role": "member"}`).expectError(400, "invalid", "Password must be at least 12 characters.")
	f.do(admin, "POST", "/api/v1/orgs/acme/members", `{"email": "not an email", "password": "plum orchard 42", "role": "member"}`).expectError(400, "invalid", "Enter a valid email address.")
	f.do(admin, "POST", "/api/v1/orgs/acme/members", `{"email": "y@acme.test", "password": "plum orchard 42", "role": "admin"}`).expectError(400, "invalid", `Role must be "owner" or "member".`)

	// Roles.
	f.do(owner, "PUT", "/api/v1/orgs/acme/members/"+m.UserID, `{"role": "owner"}`).expect(http.StatusOK, &m)
	if m.Role != "owner" {
		t.Errorf("role %q", m.Role)
	}
	f.do(owner, "PUT", "/api/v1/orgs/acme/members/usr_nope", `{"role": "owner"}`).expectError(404, "not_found", `Member "usr_nope" not found.`)
	// Members manage tokens, not people.
	const onlyOwners = "Only the organization's owners can manage its members."
	member := f.login(f.member)
	f.do(member, "POST", "/api/v1/orgs/acme/members", `{"email": "z@acme.test", "password": "plum orchard 42", "role": "owner"}`).expectError(403, "forbidden", onlyOwners)
	f.do(member, "PUT", "/api/v1/orgs/acme/members/"+f.member.ID, `{"role": "owner"}`).expectError(403, "forbidden", onlyOwners)
	f.do(member, "DELETE", "/api/v1/orgs/acme/members/"+f.owner.ID, "").expectError(403, "forbidden", onlyOwners)

	f.do(owner, "DELETE", "/api/v1/orgs/acme/members/"+m.UserID, "").expect(http.StatusNoContent, nil)
	f.do(owner, "DELETE", "/api/v1/orgs/acme/members/"+m.UserID, "").expectError(404, "not_found", fmt.Sprintf("Member %q not found.", m.UserID))
	// The last owner stays.
	f.do(owner, "PUT", "/api/v1/orgs/acme/members/"+f.owner.ID, `{"role": "member"}`).expectError(409, "conflict", "owner@acme.test is the only owner: make someone else an owner first.")
	f.do(owner, "DELETE", "/api/v1/orgs/acme/members/"+f.owner.ID, "").expectError(409, "conflict", "owner@acme.test is the only owner: make someone else an owner first.")
	// A removed member loses access at once.
	f.do(owner, "DELETE", "/api/v1/orgs/acme/members/"+f.member.ID, "").expect(http.StatusNoContent, nil)
	f.do(member, "GET", "/api/v1/orgs/acme/tokens", "").expectError(404, "not_found", `Organization "acme" not found.`)
}

func TestUsage(t *testing.T) {
	f := newFixture(t)
	a := f.createToken(f.key(), "acme", `{"name": "a", "api": "menus"}`)
	b := f.createToken(f.key(), "acme", `{"name": "b", "api": "events"}`)
	hour := f.now.Truncate(time.Hour)
	err := f.store.RecordUsage(context.Background(), "", []keygate.UsageCount{
		{OrganizationID: f.acme.ID, TokenID: a.ID, Hour: hour, Requests: 10, Errors: 2, RateLimited: 1},
		{OrganizationID: f.acme.ID, TokenID: b.ID, Hour: hour, Requests: 5},
		{OrganizationID: f.acme.ID, TokenID: a.ID, Hour: hour.Add(-30 * time.Hour), Requests: 7, Errors: 7},
		{OrganizationID: f.acme.ID, TokenID: a.ID, Hour: hour.Add(-8 * 24 * time.Hour), Requests: 1000},
		{OrganizationID: f.globex.ID, TokenID: "tok_other", Hour: hour, Requests: 99},
	})
	if err != nil {
		t.Fatal(err)
	}
	type counts struct {
		Hour        *time.Time
		Requests    int64
		Errors      int64
		RateLimited int64 `json:"rate_limited"`
	}
	var u struct {
		Period   string
		From, To time.Time
		Token    string
		Totals   counts
		Hours    []counts
	}
	member := f.login(f.member)
	f.do(member, "GET", "/api/v1/orgs/acme/usage", "").expect(http.StatusOK, &u)
	if u.Period != "24h" || len(u.Hours) != 24 || !u.To.Equal(hour.Add(time.Hour)) || !u.From.Equal(hour.Add(-23*time.Hour)) ||
		u.Totals.Requests != 15 || u.Totals.Errors != 2 || u.Totals.RateLimited != 1 || u.Totals.Hour != nil {
		t.Errorf("24h usage %+v", u)
	}
	if last := u.Hours[23]; !last.Hour.Equal(hour) || last.Requests != 15 || u.Hours[0].Requests != 0 {
		t.Errorf("hours %+v … %+v", u.Hours[0], last)
	}
	f.do(member, "GET", "/api/v1/orgs/acme/usage?period=7d&token="+a.ID, "").expect(http.StatusOK, &u)
	if u.Period != "7d" || len(u.Hours) != 168 || u.Token != a.ID || u.Totals.Requests != 17 || u.Totals.Errors != 9 {
		t.Errorf("7d token usage %+v", u.Totals)
	}
	f.do(member, "GET", "/api/v1/orgs/acme/usage?period=1m", "").expectError(400, "invalid", `Unknown period "1m": choose 24h or 7d.`)
}

func TestListAPIs(t *testing.T) {
	f := newFixture(t)
	var out struct {
		APIs []struct {
			Name            string
			Preset          string
			TokenPrefixes   []string `json:"token_prefixes"`
			Scopes          []string
			ExpiryChoices   []string `json:"expiry_choices"`
			DefaultExpiry   string   `json:"default_expiry"`
			MaxActiveTokens int      `json:"max_active_tokens"`
			Plans           []string
		}
	}
	f.do(f.login(f.member), "GET", "/api/v1/apis", "").expect(http.StatusOK, &out)
	got := fmt.Sprintf("%+v", out.APIs)
	want := "[{Name:menus Preset:cannmenus TokenPrefixes:[cm_live_ cm_test_] Scopes:[products:read analytics:read] ExpiryChoices:[7d 30d 90d 1y] DefaultExpiry:90d MaxActiveTokens:2 Plans:[pro]} " +
		"{Name:events Preset:canskan TokenPrefixes:[csk_live_ csk_test_] Scopes:[attendees:read attendees:write] ExpiryChoices:[7d 30d 90d 1y never] DefaultExpiry:90d MaxActiveTokens:0 Plans:[]}]"
	if got != want {
		t.Errorf("apis\n got %s\nwant %s", got, want)
	}
}

// A password set through the API follows the policy: at least 12
// characters, not a common one.
func TestMemberPasswordPolicy(t *testing.T) {
	f := newFixture(t)
	f.do(f.key(), "POST", "/api/v1/orgs/acme/members", `{"email": "x@acme.test", "password": "demo", "role": "member"}`).
		expectError(400, "invalid", "Password must be at least 12 characters.")
	f.do(f.key(), "POST", "/api/v1/orgs/acme/members", `{"email": "x@acme.test", "password": "Password1234", "role": "member"}`).
		expectError(400, "invalid", "This password is one of the most commonly used; choose another.")
	if _, err := f.store.FindUserByEmail(context.Background(), "x@acme.test"); keygate.ErrorCode(err) != keygate.ENOTFOUND {
		t.Fatalf("a refused password created the user: %v", err)
	}
}
