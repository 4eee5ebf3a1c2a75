package manage

import (
	"context"
	"sort"

	"github.com/keygate/keygate"
)

// Access is a caller's standing in one organization.
type Access struct {
	Organization *keygate.Organization
	// Role is the caller's membership role, "" for a site administrator who
	// is not a member.
	Role  string
	Admin bool
}

// CanManageMembers reports whether the caller may add, change and remove
// members: the organization's owners and site administrators.
func (a *Access) CanManageMembers() bool {
	return a.Admin || a.Role == keygate.RoleOwner
}

// CanManageWebhooks reports whether the caller may see and change the
// organization's webhook endpoints and their delivery log: owners and site
// administrators. Members may not: an endpoint's URL often carries the
// receiver's own secret.
func (a *Access) CanManageWebhooks() bool {
	return a.Admin || a.Role == keygate.RoleOwner
}

// CanManageOrganization reports whether the caller may change the plan,
// entitlements and token limit, or delete the organization: site
// administrators only, since these decide what the organization pays for.
func (a *Access) CanManageOrganization() bool {
	return a.Admin
}

// RequireMemberManager returns EFORBIDDEN unless CanManageMembers.
func (a *Access) RequireMemberManager() error {
	if !a.CanManageMembers() {
		return keygate.Errorf(keygate.EFORBIDDEN, "Only the organization's owners can manage its members.")
	}
	return nil
}

// RequireWebhookManager returns EFORBIDDEN unless CanManageWebhooks.
func (a *Access) RequireWebhookManager() error {
	if !a.CanManageWebhooks() {
		return keygate.Errorf(keygate.EFORBIDDEN, "Only the organization's owners can manage its webhooks.")
	}
	return nil
}

// RequireOrganizationManager returns EFORBIDDEN unless CanManageOrganization.
func (a *Access) RequireOrganizationManager() error {
	if !a.CanManageOrganization() {
		return keygate.Errorf(keygate.EFORBIDDEN, "Only site administrators can change an organization's plan, entitlements and limits.")
	}
	return nil
}

// RequireAdmin returns EFORBIDDEN unless c is a site administrator.
func RequireAdmin(c Caller) error {
	if !c.IsAdmin() {
		return keygate.Errorf(keygate.EFORBIDDEN, "Only site administrators can do this.")
	}
	return nil
}

// OrganizationAccess finds the organization by slug and the caller's
// standing in it. A user who is not a member gets ENOTFOUND, the same answer
// as for a slug that does not exist, so other organizations' names do not
// leak.
func OrganizationAccess(ctx context.Context, store keygate.Store, c Caller, slug string) (*Access, error) {
	notFound := keygate.Errorf(keygate.ENOTFOUND, "Organization %q not found.", slug)
	if c.User == nil && c.AdminKey == nil {
		return nil, keygate.Errorf(keygate.EUNAUTHORIZED, "Log in to continue.")
	}
	org, err := store.FindOrganizationBySlug(ctx, slug)
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return nil, notFound
	} else if err != nil {
		return nil, err
	}
	a := &Access{Organization: org, Admin: c.IsAdmin()}
	if c.User != nil {
		ms, err := store.ListMemberships(ctx, keygate.MembershipFilter{OrganizationID: org.ID, UserID: c.User.ID})
		if err != nil {
			return nil, err
		}
		if len(ms) > 0 {
			a.Role = ms[0].Role
		}
	}
	if a.Role == "" && !a.Admin {
		return nil, notFound
	}
	return a, nil
}

// Organizations lists the organizations the caller can open, ordered by
// name: every one for a site administrator, the caller's memberships
// otherwise.
func Organizations(ctx context.Context, store keygate.Store, c Caller) ([]*Access, error) {
	roles := map[string]string{}
	if c.User != nil {
		ms, err := store.ListMemberships(ctx, keygate.MembershipFilter{UserID: c.User.ID})
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			roles[m.OrganizationID] = m.Role
		}
	}
	var out []*Access
	if c.IsAdmin() {
		orgs, err := store.ListOrganizations(ctx)
		if err != nil {
			return nil, err
		}
		for _, org := range orgs {
			out = append(out, &Access{Organization: org, Role: roles[org.ID], Admin: true})
		}
	} else {
		for id, role := range roles {
			org, err := store.FindOrganizationByID(ctx, id)
			if keygate.ErrorCode(err) == keygate.ENOTFOUND {
				continue
			} else if err != nil {
				return nil, err
			}
			out = append(out, &Access{Organization: org, Role: role})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Organization, out[j].Organization
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Slug < b.Slug
	})
	return out, nil
}
