package manage_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/sqlite"
)

// apps is an SQLite store with two organizations, their people, and a way
// to store grants as the token endpoint does.
type apps struct {
	t     *testing.T
	ctx   context.Context
	store *sqlite.Store
	now   time.Time

	acme, globex                   *keygate.Organization
	owner, member, other, outsider *keygate.User
}

func newApps(t *testing.T) *apps {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	a := &apps{t: t, ctx: ctx, store: store, now: time.Now().UTC().Truncate(time.Millisecond)}
	a.acme = a.org("acme")
	a.globex = a.org("globex")
	a.owner = a.user("owner@acme.test", a.acme, keygate.RoleOwner)
	a.member = a.user("member@acme.test", a.acme, keygate.RoleMember)
	a.other = a.user("other@acme.test", a.acme, keygate.RoleMember)
	a.outsider = a.user("owner@globex.test", a.globex, keygate.RoleOwner)
	// The member also belongs to globex.
	a.must(store.SetMembership(ctx, &keygate.Membership{OrganizationID: a.globex.ID, UserID: a.member.ID, Role: keygate.RoleMember, CreatedAt: a.now}))
	return a
}

func (a *apps) must(err error) {
	a.t.Helper()
	if err != nil {
		a.t.Fatal(err)
	}
}

func (a *apps) org(slug string) *keygate.Organization {
	o := &keygate.Organization{ID: keygate.NewID("org"), Slug: slug, Name: slug}
	a.must(a.store.CreateOrganization(a.ctx, o))
	return o
}

func (a *apps) user(email string, org *keygate.Organization, role string) *keygate.User {
	u := &keygate.User{ID: keygate.NewID("usr"), Email: email, Name: email, PasswordHash: "x", CreatedAt: a.now}
	a.must(a.store.CreateUser(a.ctx, u))
	a.must(a.store.SetMembership(a.ctx, &keygate.Membership{OrganizationID: org.ID, UserID: u.ID, Role: role, CreatedAt: a.now}))
	return u
}

// grant stores what approving clientID for org and redeeming the code
// leaves behind: the grant, an access token, and a refresh token living
// refreshTTL (none when 0).
func (a *apps) grant(clientID string, u *keygate.User, org *keygate.Organization, at time.Time, refreshTTL time.Duration) *keygate.OAuthGrant {
	a.t.Helper()
	code := &keygate.OAuthCode{
		Hash: keygate.HashToken(keygate.NewID("code")), GrantID: keygate.NewID("ogr"), ClientID: clientID,
		UserID: u.ID, OrganizationID: org.ID, CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		Resource: "https://api.example.com/mcp", Scopes: []string{"products:read"}, CreatedAt: at, ExpiresAt: at.Add(time.Minute),
	}
	a.must(a.store.CreateOAuthCode(a.ctx, code))
	g := &keygate.OAuthGrant{ID: code.GrantID, ClientID: clientID, ClientName: "Client " + clientID, UserID: u.ID,
		OrganizationID: org.ID, Resource: code.Resource, Scopes: code.Scopes, CreatedAt: at}
	tokens := []*keygate.OAuthToken{{Hash: keygate.HashToken(keygate.NewID("at")), Kind: keygate.OAuthAccessToken, CreatedAt: at, ExpiresAt: at.Add(time.Hour)}}
	if refreshTTL > 0 {
		tokens = append(tokens, &keygate.OAuthToken{Hash: keygate.HashToken(keygate.NewID("rt")), Kind: keygate.OAuthRefreshToken, CreatedAt: at, ExpiresAt: at.Add(refreshTTL)})
	}
	a.must(a.store.RedeemOAuthCode(a.ctx, code.Hash, at, g, tokens...))
	return g
}

func (a *apps) access(u *keygate.User, org *keygate.Organization) *manage.Access {
	a.t.Helper()
	acc, err := manage.OrganizationAccess(a.ctx, a.store, manage.Caller{User: u}, org.Slug)
	a.must(err)
	return acc
}

func grantIDs(list []*manage.ConnectedApp) []string {
	var out []string
	for _, app := range list {
		out = append(out, app.Grant.ID)
	}
	return out
}

func TestConnectedAppsWhoSeesWhat(t *testing.T) {
	a := newApps(t)
	day := 24 * time.Hour
	mine := a.grant("https://client.example.com/oauth/metadata.json", a.member, a.acme, a.now.Add(-3*time.Minute), 30*day)
	theirs := a.grant("kgc_other", a.other, a.acme, a.now.Add(-2*time.Minute), 30*day)
	elsewhere := a.grant("kgc_other", a.member, a.globex, a.now.Add(-time.Minute), 30*day)
	// Not in force: expired without a refresh token, revoked, approved by
	// someone who has left.
	a.grant("kgc_short", a.member, a.acme, a.now.Add(-2*time.Hour), 0)
	revoked := a.grant("kgc_other", a.member, a.acme, a.now.Add(-4*time.Minute), 30*day)
	a.must(a.store.RevokeOAuthGrant(a.ctx, revoked.ID, a.now))
	leaver := a.user("leaver@acme.test", a.acme, keygate.RoleMember)
	a.grant("kgc_other", leaver, a.acme, a.now.Add(-5*time.Minute), 30*day)
	a.must(a.store.DeleteMembership(a.ctx, a.acme.ID, leaver.ID))

	list := func(u *keygate.User, org *keygate.Organization) []string {
		t.Helper()
		got, err := manage.ListConnectedApps(a.ctx, a.store, manage.Caller{User: u}, a.access(u, org), a.now)
		a.must(err)
		return grantIDs(got)
	}
	if got, want := list(a.member, a.acme), []string{mine.ID}; !slices.Equal(got, want) {
		t.Errorf("a member sees %v, want only their own %v", got, want)
	}
	if got, want := list(a.owner, a.acme), []string{theirs.ID, mine.ID}; !slices.Equal(got, want) {
		t.Errorf("the owner sees %v, want every grant in force %v", got, want)
	}
	if got := list(a.outsider, a.globex); !slices.Equal(got, []string{elsewhere.ID}) {
		t.Errorf("globex's owner sees %v, want only globex's %v", got, elsewhere.ID)
	}

	mineAll, err := manage.ListMyConnectedApps(a.ctx, a.store, manage.Caller{User: a.member}, a.now)
	a.must(err)
	if got, want := grantIDs(mineAll), []string{elsewhere.ID, mine.ID}; !slices.Equal(got, want) {
		t.Errorf("the member's own grants: %v, want %v", got, want)
	}
	if mineAll[0].Organization.ID != a.globex.ID || mineAll[1].Organization.ID != a.acme.ID {
		t.Errorf("organizations %s, %s", mineAll[0].Organization.Slug, mineAll[1].Organization.Slug)
	}
	app := mineAll[1]
	if app.ClientHost != "client.example.com" || app.RedirectHosts != nil || app.User.ID != a.member.ID ||
		!app.Grant.ExpiresAt.Equal(mine.CreatedAt.Add(30*day)) {
		t.Errorf("metadata document client shown as %+v", app)
	}
	if _, err := manage.ListMyConnectedApps(a.ctx, a.store, manage.Caller{AdminKey: &keygate.AdminKey{ID: "adm_1"}}, a.now); keygate.ErrorCode(err) != keygate.EFORBIDDEN {
		t.Errorf("an admin key's own grants: %v, want EFORBIDDEN", err)
	}
}

func TestConnectedAppsRegisteredClientShowsRedirectHosts(t *testing.T) {
	a := newApps(t)
	client := &keygate.OAuthClient{
		Name: "Editor", RedirectURIs: []string{"http://127.0.0.1:33418/cb", "https://editor.example.com/cb", "https://editor.example.com/other"},
		TokenEndpointAuthMethod: keygate.OAuthAuthNone, Source: keygate.OAuthClientRegistered,
	}
	a.must(a.store.CreateOAuthClient(a.ctx, client))
	g := a.grant(client.ID, a.member, a.acme, a.now, time.Hour)
	app, err := manage.FindConnectedApp(a.ctx, a.store, manage.Caller{User: a.member}, a.access(a.member, a.acme), g.ID)
	a.must(err)
	if app.ClientHost != "" || !slices.Equal(app.RedirectHosts, []string{"127.0.0.1:33418", "editor.example.com"}) {
		t.Errorf("hosts %q and %q", app.ClientHost, app.RedirectHosts)
	}
	// A client from config has no stored registration: no hosts, no error.
	cfg := a.grant("claude", a.member, a.acme, a.now, time.Hour)
	app, err = manage.FindConnectedApp(a.ctx, a.store, manage.Caller{User: a.member}, a.access(a.member, a.acme), cfg.ID)
	a.must(err)
	if app.ClientHost != "" || app.RedirectHosts != nil {
		t.Errorf("config client hosts %q and %q", app.ClientHost, app.RedirectHosts)
	}
}

func TestRevokeConnectedApp(t *testing.T) {
	a := newApps(t)
	g := a.grant("kgc_client", a.member, a.acme, a.now, time.Hour)
	notFound := func(what string, err error) {
		t.Helper()
		if keygate.ErrorCode(err) != keygate.ENOTFOUND || keygate.ErrorMessage(err) != `Connected app "`+g.ID+`" not found.` {
			t.Errorf("%s: %v, want ENOTFOUND", what, err)
		}
	}
	// Another member, the owner of another organization (through theirs),
	// and the member through their other organization cannot reach it.
	_, err := manage.RevokeConnectedApp(a.ctx, a.store, manage.Caller{User: a.other}, a.access(a.other, a.acme), g.ID, a.now)
	notFound("another member", err)
	_, err = manage.RevokeConnectedApp(a.ctx, a.store, manage.Caller{User: a.outsider}, a.access(a.outsider, a.globex), g.ID, a.now)
	notFound("another organization's owner", err)
	_, err = manage.RevokeConnectedApp(a.ctx, a.store, manage.Caller{User: a.member}, a.access(a.member, a.globex), g.ID, a.now)
	notFound("the approver, through another organization", err)
	_, err = manage.RevokeMyConnectedApp(a.ctx, a.store, manage.Caller{User: a.other}, g.ID, a.now)
	notFound("another user's own", err)
	if got, _ := a.store.FindOAuthGrant(a.ctx, g.ID); got.RevokedAt != nil {
		t.Fatal("revoked by someone who may not")
	}

	// The organization's owner may.
	app, err := manage.RevokeConnectedApp(a.ctx, a.store, manage.Caller{User: a.owner}, a.access(a.owner, a.acme), g.ID, a.now)
	a.must(err)
	if app.Grant.RevokedAt == nil || !app.Grant.RevokedAt.Equal(a.now) {
		t.Errorf("returned RevokedAt %v", app.Grant.RevokedAt)
	}
	if got, _ := a.store.FindOAuthGrant(a.ctx, g.ID); got.RevokedAt == nil || !got.RevokedAt.Equal(a.now) {
		t.Errorf("stored RevokedAt %v", got.RevokedAt)
	}
	_, err = manage.RevokeMyConnectedApp(a.ctx, a.store, manage.Caller{User: a.member}, g.ID, a.now)
	notFound("revoking twice", err)

	// The approver revokes their own from anywhere.
	g2 := a.grant("kgc_client", a.member, a.globex, a.now, time.Hour)
	if _, err := manage.RevokeMyConnectedApp(a.ctx, a.store, manage.Caller{User: a.member}, g2.ID, a.now); err != nil {
		t.Fatal(err)
	}
}
