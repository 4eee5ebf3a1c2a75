package storetest

import (
	"testing"
	"time"

	"github.com/keygate/keygate"
)

var organizationTests = []test{
	{"CreateAndFind", testOrganizationCreateAndFind},
	{"CreateFillsIDAndCreatedAt", testOrganizationCreateFills},
	{"SlugConflict", testOrganizationSlugConflict},
	{"NotFound", testOrganizationNotFound},
	{"List", testOrganizationList},
	{"Update", testOrganizationUpdate},
	{"DeleteRevokesTokens", testOrganizationDelete},
}

func testOrganizationCreateAndFind(t *testing.T, e *env) {
	org := &keygate.Organization{
		ID:   "org_acme",
		Slug: "acme",
		Name: "Acme Dispensary Data",
		Plan: "pro",
		Entitlements: keygate.Entitlements{
			States: []string{"California", "New York"},
			Brands: []string{"Stiiizy"},
		},
		MaxActiveTokens: 5,
		CreatedAt:       e.at(-time.Hour),
	}
	must(t, "CreateOrganization", e.store.CreateOrganization(e.ctx, org))
	want := *org

	got, err := e.store.FindOrganizationByID(e.ctx, "org_acme")
	must(t, "FindOrganizationByID", err)
	equal(t, "FindOrganizationByID", got, &want)

	got, err = e.store.FindOrganizationBySlug(e.ctx, "acme")
	must(t, "FindOrganizationBySlug", err)
	equal(t, "FindOrganizationBySlug", got, &want)
}

func testOrganizationCreateFills(t *testing.T, e *env) {
	before := time.Now()
	org := &keygate.Organization{Slug: "filled", Name: "Filled", Plan: "free"}
	must(t, "CreateOrganization", e.store.CreateOrganization(e.ctx, org))
	after := time.Now()
	if org.ID == "" {
		t.Fatal("CreateOrganization left ID empty")
	}
	got, err := e.store.FindOrganizationByID(e.ctx, org.ID)
	must(t, "FindOrganizationByID", err)
	if got.CreatedAt.Before(before.Truncate(time.Millisecond)) || got.CreatedAt.After(after) {
		t.Errorf("CreatedAt = %s, want between %s and %s", got.CreatedAt, before, after)
	}
	if len(got.Entitlements.States) != 0 {
		t.Errorf("Entitlements.States = %v, want none", got.Entitlements.States)
	}
}

func testOrganizationSlugConflict(t *testing.T, e *env) {
	e.createOrganization("acme")
	dup := &keygate.Organization{ID: "org_other", Slug: "acme", Name: "Other", Plan: "free", CreatedAt: e.now}
	wantCode(t, "CreateOrganization with a taken slug", e.store.CreateOrganization(e.ctx, dup), keygate.ECONFLICT)

	orgs, err := e.store.ListOrganizations(e.ctx)
	must(t, "ListOrganizations", err)
	if len(orgs) != 1 {
		t.Errorf("ListOrganizations returned %d organizations after a refused create, want 1", len(orgs))
	}
}

func testOrganizationNotFound(t *testing.T, e *env) {
	e.createOrganization("acme")
	_, err := e.store.FindOrganizationByID(e.ctx, "org_missing")
	wantCode(t, "FindOrganizationByID", err, keygate.ENOTFOUND)
	_, err = e.store.FindOrganizationBySlug(e.ctx, "missing")
	wantCode(t, "FindOrganizationBySlug", err, keygate.ENOTFOUND)
	err = e.store.UpdateOrganization(e.ctx, &keygate.Organization{ID: "org_missing", Name: "x", Plan: "free"})
	wantCode(t, "UpdateOrganization", err, keygate.ENOTFOUND)
	wantCode(t, "DeleteOrganization", e.store.DeleteOrganization(e.ctx, "org_missing"), keygate.ENOTFOUND)
}

func testOrganizationList(t *testing.T, e *env) {
	orgs, err := e.store.ListOrganizations(e.ctx)
	must(t, "ListOrganizations on an empty store", err)
	if len(orgs) != 0 {
		t.Fatalf("ListOrganizations on an empty store returned %d organizations", len(orgs))
	}
	b := e.createOrganization("bravo")
	a := e.createOrganization("alpha")
	c := e.createOrganization("charlie")

	orgs, err = e.store.ListOrganizations(e.ctx)
	must(t, "ListOrganizations", err)
	equal(t, "ListOrganizations", orgs, []*keygate.Organization{a, b, c})
}

func testOrganizationUpdate(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	other := e.createOrganization("other")

	update := &keygate.Organization{
		ID:              org.ID,
		Slug:            "renamed-slug-is-ignored",
		Name:            "Acme Inc.",
		Plan:            "enterprise",
		Entitlements:    keygate.Entitlements{Dispensaries: []string{"disp_1", "disp_2"}},
		MaxActiveTokens: 10,
	}
	must(t, "UpdateOrganization", e.store.UpdateOrganization(e.ctx, update))

	want := *org
	want.Name = "Acme Inc."
	want.Plan = "enterprise"
	want.Entitlements = keygate.Entitlements{Dispensaries: []string{"disp_1", "disp_2"}}
	want.MaxActiveTokens = 10
	got, err := e.store.FindOrganizationByID(e.ctx, org.ID)
	must(t, "FindOrganizationByID", err)
	equal(t, "updated organization", got, &want)

	got, err = e.store.FindOrganizationByID(e.ctx, other.ID)
	must(t, "FindOrganizationByID(other)", err)
	equal(t, "other organization", got, other)
}

func testOrganizationDelete(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	other := e.createOrganization("other")
	user := e.createUser("member@example.com")
	must(t, "SetMembership", e.store.SetMembership(e.ctx, &keygate.Membership{
		OrganizationID: org.ID, UserID: user.ID, Role: keygate.RoleOwner, CreatedAt: e.now,
	}))
	must(t, "SetMembership(other)", e.store.SetMembership(e.ctx, &keygate.Membership{
		OrganizationID: other.ID, UserID: user.ID, Role: keygate.RoleMember, CreatedAt: e.now,
	}))
	active := e.createToken(org.ID, "cannmenus", e.at(-2*time.Hour))
	earlier := e.createToken(org.ID, "cannmenus", e.at(-time.Hour))
	revokedAt := e.at(-30 * time.Minute)
	must(t, "RevokeToken", e.store.RevokeToken(e.ctx, earlier.ID, revokedAt))
	otherToken := e.createToken(other.ID, "cannmenus", e.now)

	before := time.Now()
	must(t, "DeleteOrganization", e.store.DeleteOrganization(e.ctx, org.ID))
	after := time.Now()

	_, err := e.store.FindOrganizationByID(e.ctx, org.ID)
	wantCode(t, "FindOrganizationByID after delete", err, keygate.ENOTFOUND)
	_, err = e.store.FindOrganizationBySlug(e.ctx, "acme")
	wantCode(t, "FindOrganizationBySlug after delete", err, keygate.ENOTFOUND)
	wantCode(t, "DeleteOrganization twice", e.store.DeleteOrganization(e.ctx, org.ID), keygate.ENOTFOUND)

	members, err := e.store.ListMemberships(e.ctx, keygate.MembershipFilter{UserID: user.ID})
	must(t, "ListMemberships", err)
	if len(members) != 1 || members[0].OrganizationID != other.ID {
		t.Errorf("memberships after delete = %+v, want only the one in %s", members, other.ID)
	}

	got, err := e.store.FindTokenByHash(e.ctx, active.Hash)
	must(t, "FindTokenByHash(active)", err)
	if got.RevokedAt == nil {
		t.Error("token of a deleted organization is not revoked")
	} else if got.RevokedAt.Before(before.Truncate(time.Millisecond)) || got.RevokedAt.After(after) {
		t.Errorf("RevokedAt = %s, want between %s and %s", got.RevokedAt, before, after)
	}
	got, err = e.store.FindTokenByID(e.ctx, earlier.ID)
	must(t, "FindTokenByID(earlier)", err)
	equal(t, "RevokedAt of a token revoked before the delete", got.RevokedAt, &revokedAt)

	tokens, err := e.store.ListTokens(e.ctx, keygate.TokenFilter{OrganizationID: org.ID})
	must(t, "ListTokens", err)
	if len(tokens) != 0 {
		t.Errorf("ListTokens of a deleted organization returned %d tokens, want 0", len(tokens))
	}
	got, err = e.store.FindTokenByID(e.ctx, otherToken.ID)
	must(t, "FindTokenByID(other organization's token)", err)
	if got.RevokedAt != nil {
		t.Error("deleting one organization revoked another organization's token")
	}
}
