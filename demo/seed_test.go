package demo

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/sqlite"
)

// fakeHash stands in for argon2id, whose cost has no place in this test;
// what matters is that the stored hash is the function's output.
func fakeHash(pw string) (string, error) { return "hashed:" + pw, nil }

func demoAPIs(t *testing.T) []*keygate.API {
	t.Helper()
	cfg, err := config.Parse("demo.yaml", Config(ConfigParams{}))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.APIs()
}

func TestSeed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keygate.db")
	store, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	apis := demoAPIs(t)

	res, err := Seed(ctx, store, apis, fakeHash)
	if err != nil {
		t.Fatal(err)
	}
	org := res.Organization
	if !res.Created || org.Slug != "demo" || org.Name != "Demo Dispensary Group" || org.Plan != PlanFree ||
		!reflect.DeepEqual(org.Entitlements.States, []string{"California", "Colorado", "Michigan"}) ||
		len(org.Entitlements.Brands) != 0 || len(org.Entitlements.Dispensaries) != 0 {
		t.Fatalf("demo organization: %+v (created %v)", org, res.Created)
	}
	stored, err := store.FindOrganizationBySlug(ctx, "demo")
	if err != nil || stored.ID != org.ID || !reflect.DeepEqual(stored.Entitlements.States, org.Entitlements.States) {
		t.Fatalf("stored demo organization: %+v, %v", stored, err)
	}

	user, err := store.FindUserByEmail(ctx, "demo@example.com")
	if err != nil || user.ID != res.User.ID || !user.IsAdmin || user.PasswordHash != "hashed:demo" {
		t.Fatalf("demo user: %+v, %v", user, err)
	}
	ms, err := store.ListMemberships(ctx, keygate.MembershipFilter{UserID: user.ID})
	if err != nil || len(ms) != 1 || ms[0].OrganizationID != org.ID || ms[0].Role != keygate.RoleOwner {
		t.Fatalf("memberships: %+v, %v", ms, err)
	}

	// One token per API, with all its scopes, expiring in 90 days, whose
	// secret is handed back once and works against the store.
	if len(res.Tokens) != len(apis) {
		t.Fatalf("tokens for %d APIs, want %d", len(res.Tokens), len(apis))
	}
	for _, api := range apis {
		secret := res.Tokens[api.Name]
		if !keygate.WellFormedToken(secret, api.TokenPrefixes()...) {
			t.Fatalf("%s token is not a well-formed %s token", api.Name, api.Tokens.BasePrefix)
		}
		tok, err := store.FindTokenByHash(ctx, keygate.HashToken(secret))
		if err != nil {
			t.Fatalf("%s token is not stored: %v", api.Name, err)
		}
		if tok.OrganizationID != org.ID || tok.API != api.Name || !reflect.DeepEqual(tok.Scopes, ScopesFor(api.Name)) ||
			tok.ExpiresAt == nil || tok.CreatedBy != user.ID {
			t.Fatalf("%s token: %+v", api.Name, tok)
		}
		if left := time.Until(*tok.ExpiresAt); left < 89*24*time.Hour || left > 90*24*time.Hour {
			t.Fatalf("%s token expires in %v, want 90 days", api.Name, left)
		}
	}

	pro := res.Pro
	if pro.Slug != "acme" || pro.Plan != PlanPro || len(pro.Entitlements.States)+len(pro.Entitlements.Brands)+len(pro.Entitlements.Dispensaries) != 0 {
		t.Fatalf("acme: %+v", pro)
	}
	if toks, err := store.ListTokens(ctx, keygate.TokenFilter{OrganizationID: pro.ID}); err != nil || len(toks) != 0 {
		t.Fatalf("acme tokens: %d, %v", len(toks), err)
	}

	// Seeding again, as a restarted `keygate demo` does, changes nothing
	// (not even a role changed since) and makes no new token. The demo
	// user is made a member; another owner keeps the organization owned.
	other := &keygate.User{ID: keygate.NewID("usr"), Email: "other-owner@example.com", Name: "Other Owner", PasswordHash: "x", CreatedAt: time.Now()}
	if err := store.CreateUser(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := store.SetMembership(ctx, &keygate.Membership{OrganizationID: org.ID, UserID: other.ID, Role: keygate.RoleOwner, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := store.SetMembership(ctx, &keygate.Membership{OrganizationID: org.ID, UserID: user.ID, Role: keygate.RoleMember, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	again, err := Seed(ctx, store, apis, fakeHash)
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || len(again.Tokens) != 0 || again.Organization.ID != org.ID || again.User.ID != user.ID || again.Pro.ID != pro.ID {
		t.Fatalf("second seed: created %v, %d tokens, org %s user %s", again.Created, len(again.Tokens), again.Organization.ID, again.User.ID)
	}
	toks, err := store.ListTokens(ctx, keygate.TokenFilter{OrganizationID: org.ID})
	if err != nil || len(toks) != len(apis) {
		t.Fatalf("after the second seed the demo org has %d tokens (%v), want %d", len(toks), err, len(apis))
	}
	if ms, _ := store.ListMemberships(ctx, keygate.MembershipFilter{UserID: user.ID}); len(ms) != 1 || ms[0].Role != keygate.RoleMember {
		t.Fatalf("second seed changed the membership: %+v", ms)
	}
	orgs, err := store.ListOrganizations(ctx)
	if err != nil || len(orgs) != 2 {
		t.Fatalf("%d organizations after two seeds (%v), want 2", len(orgs), err)
	}
}
