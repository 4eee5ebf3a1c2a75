// Package manage is what the dashboard, the management API and the CLI do to
// organizations, members, tokens, webhooks and admin keys, written once so
// all three validate, authorize and word their refusals the same way, and
// send the same webhook events. It holds no HTTP: callers pass who is asking
// (a Caller) and get domain errors back.
//
// It never logs, stores or returns a token or admin key secret except in the
// one return value of the call that created it. Endpoints it returns carry
// their signing secret (the dispatcher needs it); callers show it only in
// the answer to the request that created the endpoint.
package manage

import (
	"context"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/audit"
)

// Caller is who asks for a change: a dashboard user, or an admin key (which
// acts as a site administrator). The CLI, which already holds the database,
// calls the functions below directly and needs no Caller.
type Caller struct {
	User     *keygate.User
	AdminKey *keygate.AdminKey
}

// IsAdmin reports whether the caller manages every organization.
func (c Caller) IsAdmin() bool {
	return c.AdminKey != nil || (c.User != nil && c.User.IsAdmin)
}

// CreatedBy is what a token records as its creator: the user's id, or
// "admin-key:<id>" for automation.
func (c Caller) CreatedBy() string {
	switch {
	case c.User != nil:
		return c.User.ID
	case c.AdminKey != nil:
		return "admin-key:" + c.AdminKey.ID
	}
	return ""
}

// Name is how logs and pages refer to the caller: an email or a key name,
// never a secret.
func (c Caller) Name() string {
	switch {
	case c.User != nil:
		return c.User.Email
	case c.AdminKey != nil:
		return "admin key " + c.AdminKey.Name
	}
	return ""
}

// Audited returns ctx naming the caller as the actor of what the audit log
// records, keeping the request's address and user agent.
func (c Caller) Audited(ctx context.Context) context.Context {
	switch {
	case c.User != nil:
		return audit.AsUser(ctx, c.User)
	case c.AdminKey != nil:
		return audit.AsAdminKey(ctx, c.AdminKey)
	}
	return ctx
}
