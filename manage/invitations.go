package manage

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate"
)

// Invitations: an owner adds a person by inviting their email with a role.
// Nobody is attached to an organization without accepting, and inviting
// never reads the users table, so every answer to an owner is the same
// whether or not an account has that email. The link's secret exists in
// the one return value of Invite (and in what Notifier is handed); only
// its hash is stored. A Notifier that sends the link later (the email
// outbox, which must not store it) chooses the secret: one it can derive
// again from the invitation's id.

// LinkBase is the dashboard's address that invitation links start with:
// publicURL (admin.public_url) when set, or else the address the request
// creating the invitation was sent to, its host and whether it came over
// TLS.
func LinkBase(publicURL, host string, overTLS bool) string {
	if publicURL != "" {
		return publicURL
	}
	if overTLS {
		return "https://" + host
	}
	return "http://" + host
}

// Bounds on the invitations of one organization, for callers other than
// site administrators and the CLI: each may be an email keygate sends and
// a row it keeps, so an owner can neither fill the outbox and the
// database nor flood one inbox by inviting it again and again (each new
// invitation revokes the last one and sends a new link). Both count every
// invitation created in the last 24 hours, whatever became of it.
const (
	MaxInvitationsPerDay         = 100
	MaxInvitationsPerEmailPerDay = 5
)

// inviting serializes the check of those bounds and the insert that
// follows it on this instance, so invitations sent at once cannot all
// pass a bound each would pass alone. Instances check on their own: N
// instances may let N-1 more through.
var inviting sync.Mutex

// InvitationPathPrefix is where invitation links point on the dashboard's
// listener: InvitationPathPrefix + secret.
const InvitationPathPrefix = "/invitations/"

// NewInvitation is what an owner fills in.
type NewInvitation struct {
	Email string
	Role  string
}

// CreatedInvitation is a new invitation and its link, which holds the
// secret: shown once to the inviter, never stored or logged.
type CreatedInvitation struct {
	Invitation *keygate.Invitation
	// Link is "" when keygate emails it and the inviter is an owner (see
	// Invite): then only the invitee's mailbox holds it.
	Link string
	// Emailed says that keygate sends the link to the invitee itself: the
	// Notifier chose its secret and took the invitation.
	Emailed bool
}

// InvitationNotice is what a Notifier is told of a new invitation.
type InvitationNotice struct {
	Invitation   *keygate.Invitation
	Organization *keygate.Organization
	// InvitedBy names the inviter as pages do: an email or a key's name.
	InvitedBy string
	// Link is the invitation's link, secret included: send it to the
	// invitee only, never log it.
	Link string
}

// InvitationNotifier hears of every invitation right after it is stored,
// to pass the link on (by email). An error is logged, without the link,
// and does not undo the invitation: the inviter still sees the link.
type InvitationNotifier interface {
	// InvitationSecret returns the secret for the link of the invitation
	// about to be created with this id, or "" for a random one. A
	// notifier that rebuilds the link when it sends returns one derived
	// from the id with a key outside the database.
	InvitationSecret(invitationID string) string
	InvitationCreated(ctx context.Context, n InvitationNotice) error
}

// InvitationStore is what inviting needs from the store.
type InvitationStore interface {
	keygate.InvitationStore
	FindOrganizationByID(ctx context.Context, id string) (*keygate.Organization, error)
}

// Invitations creates and revokes invitations.
type Invitations struct {
	Store InvitationStore
	// Notifier, when set, is handed each new invitation's link; nil: the
	// inviter passes the link on themselves.
	Notifier InvitationNotifier
	Logger   *slog.Logger
}

// Invite creates an invitation to org for the email with the role and
// returns it with its link under baseURL (the dashboard's address, no
// trailing slash), unless keygate emails the link and c is an owner.
// Earlier pending invitations of the same email to org are revoked, so
// inviting again replaces a lost link. Nothing here looks at whether the
// email has an account or is already a member: the answer must not tell.
func (i Invitations) Invite(ctx context.Context, c Caller, org *keygate.Organization, n NewInvitation, baseURL string, now time.Time) (*CreatedInvitation, error) {
	if err := validRole(n.Role); err != nil {
		return nil, err
	}
	email, err := cleanEmail(n.Email)
	if err != nil {
		return nil, err
	}
	owner := c.User != nil && !c.IsAdmin()
	if owner {
		inviting.Lock()
		defer inviting.Unlock()
		if err := i.checkBounds(ctx, org, email, now); err != nil {
			return nil, err
		}
	}
	pending, err := i.Store.ListInvitations(ctx, keygate.InvitationFilter{OrganizationID: org.ID, PendingAt: now})
	if err != nil {
		return nil, err
	}
	for _, p := range pending {
		if p.Email == email {
			if err := i.Store.RevokeInvitation(ctx, org.ID, p.ID, now.UTC()); err != nil && keygate.ErrorCode(err) != keygate.ENOTFOUND {
				return nil, err
			}
		}
	}
	id := keygate.NewID("inv")
	secret := ""
	if i.Notifier != nil {
		secret = i.Notifier.InvitationSecret(id)
	}
	sentByKeygate := secret != ""
	if secret == "" {
		secret = newInvitationSecret()
	}
	invitedBy := c.CreatedBy()
	if invitedBy == "" {
		invitedBy = "cli"
	}
	inv := &keygate.Invitation{
		ID:             id,
		OrganizationID: org.ID,
		Email:          email,
		Role:           n.Role,
		Hash:           keygate.HashToken(secret),
		InvitedBy:      invitedBy,
		CreatedAt:      now.UTC().Truncate(time.Millisecond),
		ExpiresAt:      now.UTC().Truncate(time.Millisecond).Add(keygate.InvitationLifetime),
	}
	if err := i.Store.CreateInvitation(ctx, inv); err != nil {
		return nil, err
	}
	link := strings.TrimRight(baseURL, "/") + InvitationPathPrefix + secret
	if i.Notifier != nil {
		name := c.Name()
		if name == "" {
			name = "an administrator"
		}
		if err := i.Notifier.InvitationCreated(ctx, InvitationNotice{Invitation: inv, Organization: org, InvitedBy: name, Link: link}); err != nil {
			i.logger().ErrorContext(ctx, "invitation notice failed", "org", org.Slug, "invitation_id", inv.ID, "error", err)
			sentByKeygate = false
		}
	}
	created := &CreatedInvitation{Invitation: inv, Link: link, Emailed: sentByKeygate}
	// The link also creates the invited email's login when it has none.
	// An owner holding it could create that login with a password of
	// their own and keep the address from then on: whatever it is later
	// added or invited to would be theirs. So when keygate emails the
	// link, an owner does not get it, and only the mailbox can use it.
	// Site administrators and the CLI, who create logins anyway, do.
	if created.Emailed && owner {
		created.Link = ""
	}
	return created, nil
}

// checkBounds returns ECONFLICT when org has had MaxInvitationsPerDay
// invitations in the last 24 hours, or email MaxInvitationsPerEmailPerDay.
func (i Invitations) checkBounds(ctx context.Context, org *keygate.Organization, email string, now time.Time) error {
	recent, err := i.Store.ListInvitations(ctx, keygate.InvitationFilter{OrganizationID: org.ID, CreatedSince: now.Add(-24 * time.Hour)})
	if err != nil {
		return err
	}
	if len(recent) >= MaxInvitationsPerDay {
		return keygate.Errorf(keygate.ECONFLICT, "This organization sent %d invitations in the last 24 hours, the most allowed. Try again later, or ask a site administrator.", MaxInvitationsPerDay)
	}
	same := 0
	for _, inv := range recent {
		if inv.Email == email {
			same++
		}
	}
	if same >= MaxInvitationsPerEmailPerDay {
		return keygate.Errorf(keygate.ECONFLICT, "%s was invited %d times in the last 24 hours, the most allowed; its latest link still works. Try again tomorrow.", email, MaxInvitationsPerEmailPerDay)
	}
	return nil
}

func (i Invitations) logger() *slog.Logger {
	if i.Logger == nil {
		return slog.Default()
	}
	return i.Logger
}

// newInvitationSecret returns 32 random bytes, base64url: as hard to guess
// as a token.
func newInvitationSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("manage: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// ListInvitations returns org's pending invitations, newest first.
func ListInvitations(ctx context.Context, store keygate.InvitationStore, org *keygate.Organization, now time.Time) ([]*keygate.Invitation, error) {
	return store.ListInvitations(ctx, keygate.InvitationFilter{OrganizationID: org.ID, PendingAt: now})
}

// RevokeInvitation revokes org's pending invitation; ENOTFOUND when there
// is none with this id.
func RevokeInvitation(ctx context.Context, store keygate.InvitationStore, org *keygate.Organization, id string, now time.Time) error {
	err := store.RevokeInvitation(ctx, org.ID, id, now.UTC())
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return keygate.Errorf(keygate.ENOTFOUND, "Invitation %q not found or no longer pending.", id)
	}
	return err
}

// ErrInvitationNotValid is the one answer for an invitation link that is
// unknown, used, revoked or expired, or whose organization is gone: the
// page cannot tell them apart for whoever holds the link.
func ErrInvitationNotValid() error {
	return keygate.Errorf(keygate.ENOTFOUND, "This invitation is not valid: it may have been used, revoked or have expired. Ask the organization's owner for a new one.")
}

// PendingInvitation is an invitation as the invitee's page shows it.
type PendingInvitation struct {
	Invitation   *keygate.Invitation
	Organization *keygate.Organization
}

// FindInvitation returns the pending invitation the link's secret opens,
// or ErrInvitationNotValid.
func FindInvitation(ctx context.Context, store InvitationStore, secret string, now time.Time) (*PendingInvitation, error) {
	if !wellFormedInvitationSecret(secret) {
		return nil, ErrInvitationNotValid()
	}
	inv, err := store.FindInvitationByHash(ctx, keygate.HashToken(secret))
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return nil, ErrInvitationNotValid()
	} else if err != nil {
		return nil, err
	}
	if !inv.PendingAt(now) {
		return nil, ErrInvitationNotValid()
	}
	org, err := store.FindOrganizationByID(ctx, inv.OrganizationID)
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return nil, ErrInvitationNotValid()
	} else if err != nil {
		return nil, err
	}
	return &PendingInvitation{Invitation: inv, Organization: org}, nil
}

// wellFormedInvitationSecret checks the secret's shape before any lookup.
func wellFormedInvitationSecret(s string) bool {
	if len(s) != 43 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ErrInvitationForAnotherEmail refuses an accept by a user whose email is
// not the invited one.
func ErrInvitationForAnotherEmail(email string) error {
	return keygate.Errorf(keygate.EFORBIDDEN, "This invitation was sent to %s. Log out and log in with that email to accept it.", email)
}

// IsInvitee reports whether user's email is the one inv was sent to, both
// as keygate stores addresses (trimmed, lower-cased): exactly, never by
// Unicode case folding, under which "ſam" (long s) would match "sam" and
// micro "µ" Greek "μ", other mailboxes than the invited one.
func IsInvitee(inv *keygate.Invitation, user *keygate.User) bool {
	norm := func(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
	return norm(inv.Email) == norm(user.Email)
}

// AcceptInvitation makes user a member of the invitation's organization
// with its role, if user's email is the invited one (IsInvitee), and uses the invitation up. It returns the
// organization and whether the user was added (false when they already
// were a member: their role stays).
func AcceptInvitation(ctx context.Context, store InvitationStore, user *keygate.User, secret string, now time.Time) (*keygate.Organization, bool, error) {
	p, err := FindInvitation(ctx, store, secret, now)
	if err != nil {
		return nil, false, err
	}
	if !IsInvitee(p.Invitation, user) {
		return nil, false, ErrInvitationForAnotherEmail(p.Invitation.Email)
	}
	_, added, err := store.AcceptInvitation(ctx, keygate.HashToken(secret), user.ID, now.UTC())
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return nil, false, ErrInvitationNotValid()
	} else if err != nil {
		return nil, false, err
	}
	return p.Organization, added, nil
}

// DeclineInvitation revokes the invitation for its invitee.
func DeclineInvitation(ctx context.Context, store InvitationStore, user *keygate.User, secret string, now time.Time) (*keygate.Organization, error) {
	p, err := FindInvitation(ctx, store, secret, now)
	if err != nil {
		return nil, err
	}
	if !IsInvitee(p.Invitation, user) {
		return nil, ErrInvitationForAnotherEmail(p.Invitation.Email)
	}
	if err := store.RevokeInvitation(ctx, p.Invitation.OrganizationID, p.Invitation.ID, now.UTC()); keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return nil, ErrInvitationNotValid()
	} else if err != nil {
		return nil, err
	}
	return p.Organization, nil
}

// InvitationSignupStore is what creating an account from an invitation
// needs.
type InvitationSignupStore interface {
	InvitationStore
	keygate.UserService
}

// AcceptInvitationAsNewUser creates the account of the invited email, with
// the password the invitee chose (the password policy applies), and
// accepts the invitation as that user. keygate has no other sign-up: an
// invitation is the only way in without an administrator. ECONFLICT when
// the email already has an account: then the invitee logs in instead.
func AcceptInvitationAsNewUser(ctx context.Context, store InvitationSignupStore, secret, name, password string, now time.Time) (*keygate.User, *keygate.Organization, error) {
	p, err := FindInvitation(ctx, store, secret, now)
	if err != nil {
		return nil, nil, err
	}
	user, err := CreateUser(ctx, store, NewUser{Email: p.Invitation.Email, Name: name, Password: password}, now)
	if keygate.ErrorCode(err) == keygate.ECONFLICT {
		return nil, nil, keygate.Errorf(keygate.ECONFLICT, "An account with this email already exists: log in with its password to accept.")
	} else if err != nil {
		return nil, nil, err
	}
	org, _, err := AcceptInvitation(ctx, store, user, secret, now)
	if err != nil {
		return nil, nil, err
	}
	return user, org, nil
}
