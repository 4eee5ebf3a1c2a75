package api

import (
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
)

// Wire shapes. Field names are the API's contract; the OpenAPI document
// describes each of them.

type tokenJSON struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	API         string     `json:"api"`
	Hint        string     `json:"hint"`
	Scopes      []string   `json:"scopes"`
	Environment string     `json:"environment"`
	CreatedAt   time.Time  `json:"created_at"`
	CreatedBy   string     `json:"created_by"`
	LastUsedAt  *time.Time `json:"last_used_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	Expired     bool       `json:"expired"`
	// RotatedAt is when the secret was last replaced; null when never.
	RotatedAt *time.Time `json:"rotated_at"`
	// PreviousSecretExpiresAt is when the secret the last rotation
	// replaced stops (or stopped) working; null when never rotated.
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
}

// newTokenJSON adds the secret, present only in the create response.
type newTokenJSON struct {
	tokenJSON
	Token string `json:"token"`
}

func toTokenJSON(t *keygate.Token, now time.Time) tokenJSON {
	scopes := t.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return tokenJSON{
		ID: t.ID, Name: t.Name, API: t.API, Hint: t.Hint, Scopes: scopes,
		Environment: t.Environment, CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy,
		LastUsedAt: t.LastUsedAt, ExpiresAt: t.ExpiresAt, Expired: t.Expired(now),
		RotatedAt: t.RotatedAt, PreviousSecretExpiresAt: t.PreviousHashExpiresAt,
	}
}

type tokenLimitJSON struct {
	API    string `json:"api"`
	Active int    `json:"active"`
	Max    int    `json:"max"` // 0: no limit
}

type organizationJSON struct {
	ID              string               `json:"id"`
	Slug            string               `json:"slug"`
	Name            string               `json:"name"`
	Plan            string               `json:"plan"`
	Entitlements    keygate.Entitlements `json:"entitlements"`
	MaxActiveTokens int                  `json:"max_active_tokens"`
	CreatedAt       time.Time            `json:"created_at"`
	// Role is the caller's role; "" for a site administrator who is not a member.
	Role string `json:"role"`
}

func toOrganizationJSON(a *manage.Access) organizationJSON {
	o := a.Organization
	return organizationJSON{
		ID: o.ID, Slug: o.Slug, Name: o.Name, Plan: o.Plan,
		Entitlements:    nonNilEntitlements(o.Entitlements),
		MaxActiveTokens: o.MaxActiveTokens, CreatedAt: o.CreatedAt, Role: a.Role,
	}
}

func nonNilEntitlements(e keygate.Entitlements) keygate.Entitlements {
	for _, l := range []*[]string{&e.States, &e.Brands, &e.Dispensaries} {
		if *l == nil {
			*l = []string{}
		}
	}
	return e
}

type memberJSON struct {
	UserID string    `json:"user_id"`
	Email  string    `json:"email"`
	Name   string    `json:"name"`
	Role   string    `json:"role"`
	Since  time.Time `json:"since"`
}

func toMemberJSON(m *manage.Member) memberJSON {
	return memberJSON{UserID: m.User.ID, Email: m.User.Email, Name: m.User.Name, Role: m.Role, Since: m.Since}
}

type usageCountJSON struct {
	Hour        *time.Time `json:"hour,omitempty"`
	Requests    int64      `json:"requests"`
	Errors      int64      `json:"errors"`
	RateLimited int64      `json:"rate_limited"`
}

func toUsageCountJSON(c keygate.UsageCount, withHour bool) usageCountJSON {
	out := usageCountJSON{Requests: c.Requests, Errors: c.Errors, RateLimited: c.RateLimited}
	if withHour {
		h := c.Hour
		out.Hour = &h
	}
	return out
}
