package keygate

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"time"
)

// Invitation asks a person, named by email, to join an organization with
// a role. Nobody becomes a member until they open the invitation's link,
// logged in with that email, and accept: an owner cannot attach someone
// else's account, and inviting says nothing about whether the email has
// an account. Only the SHA-256 of the link's secret is stored.
type Invitation struct {
	ID             string // "inv_…"
	OrganizationID string
	Email          string // stored lower-case
	Role           string
	Hash           string // hex SHA-256 of the link's secret
	// InvitedBy is who invited, as Caller.CreatedBy says it: a user id, or
	// "admin-key:<id>", or "cli".
	InvitedBy  string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	AcceptedAt *time.Time
	AcceptedBy string // the user who accepted; "" until then
	RevokedAt  *time.Time
}

// InvitationLifetime is how long an invitation's link works.
const InvitationLifetime = 7 * 24 * time.Hour

// PendingAt reports whether the invitation can still be accepted at t:
// neither accepted nor revoked, and not expired.
func (i *Invitation) PendingAt(t time.Time) bool {
	return i.AcceptedAt == nil && i.RevokedAt == nil && t.Before(i.ExpiresAt)
}

// InvitationFilter selects invitations; empty fields match everything.
type InvitationFilter struct {
	OrganizationID string
	// PendingAt, when set, keeps only the invitations pending at that time.
	PendingAt time.Time
	// CreatedSince, when set, keeps only the invitations created at or
	// after it, whatever became of them.
	CreatedSince time.Time
}

// InvitationStore keeps invitations to organizations.
type InvitationStore interface {
	// CreateInvitation stores inv, filling in an empty ID and a zero
	// CreatedAt, with its email lower-cased. ENOTFOUND when the
	// organization does not exist; ECONFLICT when the id or hash is taken.
	CreateInvitation(ctx context.Context, inv *Invitation) error
	// FindInvitationByHash returns the invitation whatever its state;
	// ENOTFOUND when no invitation has this hash.
	FindInvitationByHash(ctx context.Context, hash string) (*Invitation, error)
	// ListInvitations returns matching invitations, newest first.
	ListInvitations(ctx context.Context, filter InvitationFilter) ([]*Invitation, error)
	// AcceptInvitation, in one atomic step, marks the invitation with this
	// hash accepted by userID at at and makes that user a member of its
	// organization with its role; a user who already is a member keeps
	// the role they have. It returns the invitation as accepted and
	// whether a membership was added. An invitation that is unknown,
	// accepted, revoked or expired at at is ENOTFOUND, all alike, so of
	// two concurrent accepts exactly one succeeds. ENOTFOUND too when the
	// user does not exist.
	AcceptInvitation(ctx context.Context, hash, userID string, at time.Time) (*Invitation, bool, error)
	// RevokeInvitation marks the organization's invitation revoked at at;
	// ENOTFOUND when it is unknown, another organization's, already
	// accepted or already revoked.
	RevokeInvitation(ctx context.Context, organizationID, id string, at time.Time) error
}

// InvitationSecret derives the secret of the invitation id's link from
// key (email.link_key): HMAC-SHA256 of the id, base64url, as long as a
// random secret. It lets the email sender rebuild a link when it sends,
// on any instance and after a restart, while the database holds only the
// invitation's id and the secret's hash: reading the database alone does
// not give the link.
func InvitationSecret(key []byte, invitationID string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("keygate invitation link\x00"))
	m.Write([]byte(invitationID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
