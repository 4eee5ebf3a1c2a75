package manage

import (
	"context"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keygate/keygate"
)

// Limits on what a person may type into an organization.
const (
	MaxOrganizationNameLength = 100
	MaxPlanLength             = 50
	MaxEntitlementValues      = 500
	MaxEntitlementLength      = 100
	DefaultPlan               = "free"
)

// slugPattern keeps slugs usable in URLs and shell commands unquoted.
var slugPattern = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

// CreateOrganization validates org, fills in defaults (plan "free") and
// stores it; ECONFLICT when the slug is taken.
func CreateOrganization(ctx context.Context, orgs keygate.OrganizationService, org *keygate.Organization, now time.Time) error {
	org.Slug = strings.TrimSpace(org.Slug)
	if !slugPattern.MatchString(org.Slug) {
		return keygate.Errorf(keygate.EINVALID, "Slug must be 1 to 63 lower-case letters, digits or dashes, starting and ending with a letter or digit.")
	}
	if strings.TrimSpace(org.Name) == "" {
		org.Name = org.Slug
	}
	if strings.TrimSpace(org.Plan) == "" {
		org.Plan = DefaultPlan
	}
	if err := cleanOrganization(org); err != nil {
		return err
	}
	if org.CreatedAt.IsZero() {
		org.CreatedAt = now.UTC()
	}
	return orgs.CreateOrganization(ctx, org)
}

// UpdateOrganization validates and stores org's name, plan, entitlements
// and token limit. Every instance drops its cached copy of the old ones.
func UpdateOrganization(ctx context.Context, orgs keygate.OrganizationService, org *keygate.Organization) error {
	if err := cleanOrganization(org); err != nil {
		return err
	}
	return orgs.UpdateOrganization(ctx, org)
}

// cleanOrganization trims what people type and refuses what would not fit.
func cleanOrganization(org *keygate.Organization) error {
	org.Name = strings.TrimSpace(org.Name)
	org.Plan = strings.TrimSpace(org.Plan)
	if org.Name == "" || !utf8.ValidString(org.Name) || utf8.RuneCountInString(org.Name) > MaxOrganizationNameLength {
		return keygate.Errorf(keygate.EINVALID, "Organization name must be 1 to %d characters.", MaxOrganizationNameLength)
	}
	if org.Plan == "" || len(org.Plan) > MaxPlanLength || strings.ContainsAny(org.Plan, " \t\r\n") {
		return keygate.Errorf(keygate.EINVALID, "Plan must be 1 to %d characters without spaces.", MaxPlanLength)
	}
	if org.MaxActiveTokens < 0 {
		return keygate.Errorf(keygate.EINVALID, "The active-token limit cannot be negative; use 0 for the API's own limit.")
	}
	e := &org.Entitlements
	for _, list := range []struct {
		kind   string
		values *[]string
	}{
		{keygate.EntitlementStates, &e.States},
		{keygate.EntitlementBrands, &e.Brands},
		{keygate.EntitlementDispensaries, &e.Dispensaries},
	} {
		cleaned, err := cleanEntitlements(list.kind, *list.values)
		if err != nil {
			return err
		}
		*list.values = cleaned
	}
	return nil
}

// cleanEntitlements trims values and drops blanks and duplicates
// (case-insensitively, as the gateway compares them).
func cleanEntitlements(kind string, values []string) ([]string, error) {
	out := []string{}
	seen := map[string]bool{}
	for _, v := range values {
		v = strings.TrimSpace(v)
		key := strings.ToLower(v)
		if v == "" || seen[key] {
			continue
		}
		if !utf8.ValidString(v) || utf8.RuneCountInString(v) > MaxEntitlementLength {
			return nil, keygate.Errorf(keygate.EINVALID, "Each of the %s must be at most %d characters.", kind, MaxEntitlementLength)
		}
		seen[key] = true
		out = append(out, v)
	}
	if len(out) > MaxEntitlementValues {
		return nil, keygate.Errorf(keygate.EINVALID, "At most %d %s may be listed.", MaxEntitlementValues, kind)
	}
	return out, nil
}

// SplitList reads a comma- or newline-separated list as typed into a form.
func SplitList(s string) []string {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' })
	out := make([]string, 0, len(fields))
	for _, f := range fields {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
