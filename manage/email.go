package manage

import (
	"context"
	"time"

	"github.com/keygate/keygate"
)

// CanManageEmails reports whether the caller may choose which emails
// keygate sends about the organization: owners and site administrators.
func (a *Access) CanManageEmails() bool {
	return a.Admin || a.Role == keygate.RoleOwner
}

// RequireEmailManager returns EFORBIDDEN unless CanManageEmails.
func (a *Access) RequireEmailManager() error {
	if !a.CanManageEmails() {
		return keygate.Errorf(keygate.EFORBIDDEN, "Only the organization's owners can choose its emails.")
	}
	return nil
}

// EmailSettings returns the organization's email settings.
func EmailSettings(ctx context.Context, store keygate.EmailStore, a *Access) (*keygate.EmailSettings, error) {
	if err := a.RequireEmailManager(); err != nil {
		return nil, err
	}
	return store.FindEmailSettings(ctx, a.Organization.ID)
}

// SetEmailKinds turns the named kinds on (true) or off (false), leaving
// the others as they are, and returns the settings as stored. EINVALID
// for an unknown kind, with nothing changed.
func SetEmailKinds(ctx context.Context, store keygate.EmailStore, a *Access, kinds map[string]bool, now time.Time) (*keygate.EmailSettings, error) {
	current, err := EmailSettings(ctx, store, a)
	if err != nil {
		return nil, err
	}
	var names []string
	for k := range kinds {
		names = append(names, k)
	}
	if _, err := keygate.CleanEmailKinds(names); err != nil {
		return nil, err
	}
	disabled := []string{}
	for _, k := range keygate.EmailKinds {
		on, given := kinds[k]
		if !given {
			on = current.Enabled(k)
		}
		if !on {
			disabled = append(disabled, k)
		}
	}
	next := &keygate.EmailSettings{OrganizationID: a.Organization.ID, Disabled: disabled, UpdatedAt: now.UTC().Truncate(time.Millisecond)}
	if err := store.UpdateEmailSettings(ctx, next); err != nil {
		return nil, err
	}
	return next, nil
}
