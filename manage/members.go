package manage

import (
	"context"
	"net/mail"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/password"
)

// MaxUserNameLength bounds a person's display name.
const MaxUserNameLength = 100

// NewUser is what is needed to create a login.
type NewUser struct {
	Email    string
	Name     string // defaults to the part of the email before '@'
	Password string
	IsAdmin  bool
}

// CreateUser validates u, hashes the password with argon2id and stores the
// user; ECONFLICT when the email is taken.
func CreateUser(ctx context.Context, users keygate.UserService, u NewUser, now time.Time) (*keygate.User, error) {
	email, err := cleanEmail(u.Email)
	if err != nil {
		return nil, err
	}
	name := strings.TrimSpace(u.Name)
	if name == "" {
		name = email[:strings.IndexByte(email, '@')]
	}
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxUserNameLength {
		return nil, keygate.Errorf(keygate.EINVALID, "Name must be at most %d characters.", MaxUserNameLength)
	}
	if keygate.HasHiddenCharacters(name) {
		return nil, keygate.Errorf(keygate.EINVALID, "Name must not hold control characters (line breaks, tabs, escapes) or marks that reorder text.")
	}
	if err := password.CheckPolicy(u.Password); err != nil {
		return nil, err
	}
	hash, err := password.Hash(u.Password)
	if err != nil {
		return nil, err
	}
	user := &keygate.User{
		ID:           keygate.NewID("usr"),
		Email:        email,
		Name:         name,
		PasswordHash: hash,
		IsAdmin:      u.IsAdmin,
		CreatedAt:    now.UTC(),
	}
	if err := users.CreateUser(ctx, user); err != nil {
		return nil, err
	}
	return user, nil
}

// cleanEmail lower-cases an address and refuses anything that is not a bare
// address (no display name, no spaces).
func cleanEmail(s string) (string, error) {
	email := strings.ToLower(strings.TrimSpace(s))
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || len(email) > 254 || !strings.Contains(email, "@") {
		return "", keygate.Errorf(keygate.EINVALID, "Enter a valid email address.")
	}
	return email, nil
}

// Member is a user's membership of an organization.
type Member struct {
	User  *keygate.User
	Role  string
	Since time.Time
}

// ListMembers returns org's members ordered by email.
func ListMembers(ctx context.Context, users keygate.UserService, org *keygate.Organization) ([]Member, error) {
	ms, err := users.ListMemberships(ctx, keygate.MembershipFilter{OrganizationID: org.ID})
	if err != nil {
		return nil, err
	}
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		u, err := users.FindUserByID(ctx, m.UserID)
		if keygate.ErrorCode(err) == keygate.ENOTFOUND {
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, Member{User: u, Role: m.Role, Since: m.CreatedAt})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User.Email < out[j].User.Email })
	return out, nil
}

// NewMember is a direct add, the site operator's power (owners invite
// instead, see Invitations): an existing user is added by email; for a new
// email a user is created with the given name and password.
type NewMember struct {
	Email    string
	Name     string
	Password string
	Role     string
}

// AddMember adds a user to org with a role, creating the user when the
// email is new. ECONFLICT when they are already a member. Its refusals tell
// whether the email has an account, so only site administrators reach it:
// owners invite.
func AddMember(ctx context.Context, users keygate.UserService, org *keygate.Organization, m NewMember, now time.Time) (*Member, error) {
	if err := validRole(m.Role); err != nil {
		return nil, err
	}
	email, err := cleanEmail(m.Email)
	if err != nil {
		return nil, err
	}
	user, err := users.FindUserByEmail(ctx, email)
	switch keygate.ErrorCode(err) {
	case "":
		// An owner must not be able to set the password of someone else's
		// existing account.
		if m.Password != "" {
			return nil, keygate.Errorf(keygate.EINVALID, "A user with this email already exists: leave the password empty to add them.")
		}
		ms, err := users.ListMemberships(ctx, keygate.MembershipFilter{OrganizationID: org.ID, UserID: user.ID})
		if err != nil {
			return nil, err
		} else if len(ms) > 0 {
			return nil, keygate.Errorf(keygate.ECONFLICT, "%s is already a member.", user.Email)
		}
	case keygate.ENOTFOUND:
		if m.Password == "" {
			return nil, keygate.Errorf(keygate.EINVALID, "No user has this email: set a password to create their login.")
		}
		if user, err = CreateUser(ctx, users, NewUser{Email: email, Name: m.Name, Password: m.Password}, now); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	ms := &keygate.Membership{OrganizationID: org.ID, UserID: user.ID, Role: m.Role, CreatedAt: now.UTC()}
	if err := users.SetMembership(ctx, ms); err != nil {
		return nil, err
	}
	return &Member{User: user, Role: ms.Role, Since: ms.CreatedAt}, nil
}

// SetRole changes a member's role. Demoting the only owner is refused
// (keygate.OnlyOwnerError) so an organization is never left without
// someone to manage it; the store makes that check with the change, so two
// owners demoting each other at once cannot both succeed. An owner made a
// member loses the invitations they sent that are still pending (revoked
// at now), as they could no longer send them.
func SetRole(ctx context.Context, users MemberStore, org *keygate.Organization, userID, role string, now time.Time) (*Member, error) {
	if err := validRole(role); err != nil {
		return nil, err
	}
	member, _, err := findMember(ctx, users, org, userID)
	if err != nil {
		return nil, err
	}
	ms := &keygate.Membership{OrganizationID: org.ID, UserID: userID, Role: role, CreatedAt: member.Since}
	if err := users.SetMembership(ctx, ms); err != nil {
		return nil, err
	}
	if member.Role == keygate.RoleOwner && role != keygate.RoleOwner {
		if err := revokeInvitationsBy(ctx, users, org.ID, userID, now); err != nil {
			return nil, err
		}
	}
	member.Role = role
	return member, nil
}

// MemberStore is what changing and removing a member needs: the
// memberships, and the OAuth grants and invitations the member made for
// the organization.
type MemberStore interface {
	keygate.UserService
	keygate.InvitationStore
	ListOAuthGrants(ctx context.Context, filter keygate.OAuthGrantFilter) ([]*keygate.OAuthGrant, error)
	RevokeOAuthGrant(ctx context.Context, id string, at time.Time) error
}

// RemoveMember takes a user out of org and revokes the OAuth grants they
// made for it, so their MCP clients lose access at once and adding them
// again later does not bring that access back without a new consent, and
// the invitations they sent that are still pending, so that no address
// of theirs joins after they are gone.
// Their tokens stay, as they belong to the organization. Removing the only
// owner is refused (keygate.OnlyOwnerError): here before any grant is
// revoked, and by the store with the removal itself, so two owners
// removing each other at once cannot both succeed.
func RemoveMember(ctx context.Context, store MemberStore, org *keygate.Organization, userID string, now time.Time) error {
	member, owners, err := findMember(ctx, store, org, userID)
	if err != nil {
		return err
	}
	if member.Role == keygate.RoleOwner && owners == 1 {
		return keygate.OnlyOwnerError(member.User.Email)
	}
	// Revoking before and after the removal leaves no grant behind, even
	// one approved while the removal ran; once the membership is gone no
	// new one can be approved.
	if err := revokeMemberGrants(ctx, store, org.ID, userID, now); err != nil {
		return err
	}
	if err := store.DeleteMembership(ctx, org.ID, userID); err != nil {
		return err
	}
	if err := revokeInvitationsBy(ctx, store, org.ID, userID, now); err != nil {
		return err
	}
	return revokeMemberGrants(ctx, store, org.ID, userID, now)
}

// revokeInvitationsBy revokes the organization's pending invitations that
// the user sent.
func revokeInvitationsBy(ctx context.Context, store keygate.InvitationStore, orgID, userID string, now time.Time) error {
	pending, err := store.ListInvitations(ctx, keygate.InvitationFilter{OrganizationID: orgID, PendingAt: now})
	if err != nil {
		return err
	}
	for _, inv := range pending {
		if inv.InvitedBy != userID {
			continue
		}
		if err := store.RevokeInvitation(ctx, orgID, inv.ID, now.UTC()); err != nil && keygate.ErrorCode(err) != keygate.ENOTFOUND {
			return err
		}
	}
	return nil
}

func revokeMemberGrants(ctx context.Context, store MemberStore, orgID, userID string, now time.Time) error {
	grants, err := store.ListOAuthGrants(ctx, keygate.OAuthGrantFilter{OrganizationID: orgID, UserID: userID})
	if err != nil {
		return err
	}
	for _, g := range grants {
		if err := store.RevokeOAuthGrant(ctx, g.ID, now.UTC()); err != nil && keygate.ErrorCode(err) != keygate.ENOTFOUND {
			return err
		}
	}
	return nil
}

// findMember returns the member and how many owners org has.
func findMember(ctx context.Context, users keygate.UserService, org *keygate.Organization, userID string) (*Member, int, error) {
	members, err := ListMembers(ctx, users, org)
	if err != nil {
		return nil, 0, err
	}
	var found *Member
	owners := 0
	for i, m := range members {
		if m.Role == keygate.RoleOwner {
			owners++
		}
		if m.User.ID == userID {
			found = &members[i]
		}
	}
	if found == nil {
		return nil, 0, keygate.Errorf(keygate.ENOTFOUND, "Member %q not found.", userID)
	}
	return found, owners, nil
}

func validRole(role string) error {
	if role != keygate.RoleOwner && role != keygate.RoleMember {
		return keygate.Errorf(keygate.EINVALID, "Role must be %q or %q.", keygate.RoleOwner, keygate.RoleMember)
	}
	return nil
}
