package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/keygate/keygate"
)

// The demo's people and organizations.
const (
	DemoOrgSlug = "demo"
	DemoOrgName = "Demo Dispensary Group"
	DemoEmail   = "demo@example.com"
	// DemoPassword is shorter than password.CheckPolicy allows: the demo
	// seeds its user straight into its own throwaway store, so the
	// quickstart stays easy to type. Passwords set through the CLI, the
	// management API and the dashboard follow the policy.
	DemoPassword  = "demo"
	DemoTokenName = "Demo token"

	// The second organization is on plan pro with no restrictions, to show
	// what the plan and entitlement checks let through.
	ProOrgSlug = "acme"
	ProOrgName = "Acme Cannabis Co."
)

// DemoStates are the states the demo organization is entitled to; the menus
// dataset has others (New York, Oregon, …) that it must never see.
var DemoStates = []string{stateCalifornia, stateColorado, stateMichigan}

// SeedResult is what Seed found or made.
type SeedResult struct {
	Organization *keygate.Organization // the demo organization
	Pro          *keygate.Organization // the unrestricted organization on plan pro
	User         *keygate.User
	// Tokens maps an API name to the secret of the token made for it. It
	// is filled only on the run that created the organization: secrets are
	// shown once and never stored.
	Tokens map[string]string
	// Created reports whether this run created the demo organization.
	Created bool
}

// Seed makes the demo data if it is missing and leaves existing data alone,
// so `keygate demo` can start again on the same data dir: the demo
// organization (plan free, entitled to California, Colorado and Michigan),
// the user demo@example.com (password "demo", owner of it, site admin), the
// unrestricted organization acme on plan pro, and — only when the demo
// organization is new — one token per API carrying all of that API's scopes.
// hashPassword hashes the demo password for storage.
func Seed(ctx context.Context, store keygate.Store, apis []*keygate.API, hashPassword func(string) (string, error)) (*SeedResult, error) {
	org, created, err := ensureOrganization(ctx, store, &keygate.Organization{
		Slug: DemoOrgSlug, Name: DemoOrgName, Plan: PlanFree,
		Entitlements: keygate.Entitlements{States: append([]string(nil), DemoStates...)},
	})
	if err != nil {
		return nil, err
	}
	pro, _, err := ensureOrganization(ctx, store, &keygate.Organization{Slug: ProOrgSlug, Name: ProOrgName, Plan: PlanPro})
	if err != nil {
		return nil, err
	}
	user, err := ensureUser(ctx, store, hashPassword)
	if err != nil {
		return nil, err
	}
	if err := ensureOwner(ctx, store, org, user); err != nil {
		return nil, err
	}

	res := &SeedResult{Organization: org, Pro: pro, User: user, Tokens: map[string]string{}, Created: created}
	if !created {
		return res, nil
	}
	for _, api := range apis {
		secret, err := createToken(ctx, store, api, org, user)
		if err != nil {
			return nil, err
		}
		res.Tokens[api.Name] = secret
	}
	return res, nil
}

// ensureOrganization finds the organization by slug or creates it. A
// concurrent creator winning the race is not an error.
func ensureOrganization(ctx context.Context, store keygate.Store, want *keygate.Organization) (*keygate.Organization, bool, error) {
	org, err := store.FindOrganizationBySlug(ctx, want.Slug)
	if err == nil {
		return org, false, nil
	} else if keygate.ErrorCode(err) != keygate.ENOTFOUND {
		return nil, false, fmt.Errorf("demo: finding organization %s: %w", want.Slug, err)
	}
	want.ID = keygate.NewID("org")
	want.CreatedAt = time.Now().UTC()
	err = store.CreateOrganization(ctx, want)
	if keygate.ErrorCode(err) == keygate.ECONFLICT {
		org, err = store.FindOrganizationBySlug(ctx, want.Slug)
		if err != nil {
			return nil, false, fmt.Errorf("demo: finding organization %s: %w", want.Slug, err)
		}
		return org, false, nil
	} else if err != nil {
		return nil, false, fmt.Errorf("demo: creating organization %s: %w", want.Slug, err)
	}
	return want, true, nil
}

// ensureUser finds the demo user or creates it. An existing user is kept as
// it is, password included.
func ensureUser(ctx context.Context, store keygate.Store, hashPassword func(string) (string, error)) (*keygate.User, error) {
	user, err := store.FindUserByEmail(ctx, DemoEmail)
	if err == nil {
		return user, nil
	} else if keygate.ErrorCode(err) != keygate.ENOTFOUND {
		return nil, fmt.Errorf("demo: finding user %s: %w", DemoEmail, err)
	}
	hash, err := hashPassword(DemoPassword)
	if err != nil {
		return nil, fmt.Errorf("demo: hashing the demo password: %w", err)
	}
	user = &keygate.User{
		ID: keygate.NewID("usr"), Email: DemoEmail, Name: "Demo User",
		PasswordHash: hash, IsAdmin: true, CreatedAt: time.Now().UTC(),
	}
	err = store.CreateUser(ctx, user)
	if keygate.ErrorCode(err) == keygate.ECONFLICT {
		return store.FindUserByEmail(ctx, DemoEmail)
	} else if err != nil {
		return nil, fmt.Errorf("demo: creating user %s: %w", DemoEmail, err)
	}
	return user, nil
}

// ensureOwner makes the user an owner of org unless they are already a
// member: a role changed since the first run is kept.
func ensureOwner(ctx context.Context, store keygate.Store, org *keygate.Organization, user *keygate.User) error {
	ms, err := store.ListMemberships(ctx, keygate.MembershipFilter{OrganizationID: org.ID, UserID: user.ID})
	if err != nil {
		return fmt.Errorf("demo: listing memberships: %w", err)
	} else if len(ms) > 0 {
		return nil
	}
	if err := store.SetMembership(ctx, &keygate.Membership{
		OrganizationID: org.ID, UserID: user.ID, Role: keygate.RoleOwner, CreatedAt: time.Now().UTC(),
	}); err != nil {
		return fmt.Errorf("demo: adding %s to %s: %w", user.Email, org.Slug, err)
	}
	return nil
}

// createToken makes the demo token for api, with every scope the API has.
func createToken(ctx context.Context, store keygate.Store, api *keygate.API, org *keygate.Organization, user *keygate.User) (string, error) {
	scopes := api.Tokens.Scopes
	if len(scopes) == 0 {
		scopes = ScopesFor(api.Name)
	}
	tok, secret, err := keygate.NewToken(api.Tokens, keygate.TokenRequest{
		OrganizationID: org.ID,
		API:            api.Name,
		Name:           DemoTokenName,
		Scopes:         scopes,
		Expiry:         keygate.Expiry90Days,
		CreatedBy:      user.ID,
	}, time.Now())
	if err != nil {
		return "", fmt.Errorf("demo: making the %s token: %w", api.Name, err)
	}
	if err := store.CreateToken(ctx, tok, api.MaxActiveTokensFor(org)); err != nil {
		return "", fmt.Errorf("demo: storing the %s token: %w", api.Name, err)
	}
	return secret, nil
}
