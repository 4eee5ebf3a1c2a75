package keygate

import (
	"context"
	"errors"
	"time"
)

// Store is everything keygate keeps. sqlite.Store and postgres.Store
// implement it and pass the same contract suite (storetest).
type Store interface {
	OrganizationService
	UserService
	TokenService
	SessionService
	AdminKeyService
	SigningKeyService
	UsageService
	ChangeFeed
	OAuthStore      // OAuth clients, codes, grants and tokens (oauth.go)
	WebhookStore    // webhook endpoints, deliveries and token notices (webhook.go)
	AuditLog        // the append-only audit log (audit.go)
	InvitationStore // invitations to organizations (invitation.go)
	EmailStore      // the email outbox and each organization's email settings (email.go)
	InstanceService // the keygate instances sharing the database (store.go)
	// Ping reports whether the database answers; /readyz uses it.
	Ping(ctx context.Context) error
	Close() error
}

// InstanceService counts the keygate instances sharing a database: each
// announces itself every few seconds. Rate limiting in shared-split mode
// divides a limit by this count while Redis, which keeps the same count,
// is unreachable, so instances that die during a Redis outage stop
// counting and new ones start to.
type InstanceService interface {
	// BeatInstance records the instance as alive now, by the database's
	// clock, forgets instances not seen within expiry, and returns how
	// many are alive, this one included.
	BeatInstance(ctx context.Context, instance string, expiry time.Duration) (int, error)
	// WithdrawInstance forgets the instance at once: a graceful shutdown.
	// Forgetting one that is not there is no error.
	WithdrawInstance(ctx context.Context, instance string) error
}

// OrganizationService stores organizations. Updates and deletes publish a
// Change so every instance's caches drop the old plan and entitlements.
type OrganizationService interface {
	// CreateOrganization fails with ECONFLICT when the slug is taken.
	CreateOrganization(ctx context.Context, org *Organization) error
	FindOrganizationByID(ctx context.Context, id string) (*Organization, error)
	FindOrganizationBySlug(ctx context.Context, slug string) (*Organization, error)
	ListOrganizations(ctx context.Context) ([]*Organization, error)
	// UpdateOrganization replaces name, plan, entitlements and the token limit.
	UpdateOrganization(ctx context.Context, org *Organization) error
	// DeleteOrganization removes the organization, its memberships, and
	// revokes its tokens.
	DeleteOrganization(ctx context.Context, id string) error
}

// UserService stores users and their memberships.
type UserService interface {
	// CreateUser fails with ECONFLICT when the email is taken.
	CreateUser(ctx context.Context, user *User) error
	FindUserByID(ctx context.Context, id string) (*User, error)
	// FindUserByEmail matches case-insensitively.
	FindUserByEmail(ctx context.Context, email string) (*User, error)
	ListUsers(ctx context.Context) ([]*User, error)
	// UpdateUser replaces name, password hash and admin flag.
	UpdateUser(ctx context.Context, user *User) error
	// SetMembership adds the user to the organization or changes the role.
	// Taking the owner role from the organization's only owner fails with
	// OnlyOwnerError, as does DeleteMembership of the only owner: the check
	// and the change are one atomic step, so two owners demoting or
	// removing each other at once cannot both succeed.
	SetMembership(ctx context.Context, m *Membership) error
	DeleteMembership(ctx context.Context, organizationID, userID string) error
	ListMemberships(ctx context.Context, filter MembershipFilter) ([]*Membership, error)
}

// MembershipFilter selects memberships; empty fields match everything.
type MembershipFilter struct {
	OrganizationID string
	UserID         string
}

// TokenService stores API tokens by hash.
type TokenService interface {
	// CreateToken stores tok unless the organization already has maxActive
	// active tokens for tok.API (maxActive 0: no limit), in which case it
	// fails with ECONFLICT. The check and the insert are one atomic step:
	// concurrent creates cannot pass the limit together. It publishes a
	// Change, so caches that hold the new hash as unknown drop it.
	CreateToken(ctx context.Context, tok *Token, maxActive int) error
	// FindTokenByHash returns revoked and expired tokens too, so the caller
	// can tell "expired" from "invalid"; ENOTFOUND when unknown. It finds a
	// token by its previous hash too, even after the grace period: the
	// caller checks Token.AcceptsHash.
	FindTokenByHash(ctx context.Context, hash string) (*Token, error)
	FindTokenByID(ctx context.Context, id string) (*Token, error)
	// ListTokens returns matching tokens, newest first, without revoked ones
	// unless asked.
	ListTokens(ctx context.Context, filter TokenFilter) ([]*Token, error)
	// RevokeToken marks the token revoked at at and publishes a Change;
	// ENOTFOUND when unknown or already revoked.
	RevokeToken(ctx context.Context, id string, at time.Time) error
	// RotateToken gives the token a new secret (rot.Hash, rot.Hint) and
	// keeps the current one working until rot.PreviousHashExpiresAt, in
	// one atomic step that publishes a Change; the hash a previous
	// rotation kept is dropped. The token keeps its id, so it still counts
	// once against the active-token limit. It returns the token as
	// updated. ENOTFOUND when unknown or revoked (also when a revoke wins
	// a race with it); ECONFLICT when expired at rot.At.
	RotateToken(ctx context.Context, rot TokenRotation) (*Token, error)
	// TouchTokens records last use, token id to time (already truncated to
	// the minute). A stored time is never moved backwards.
	TouchTokens(ctx context.Context, lastUsed map[string]time.Time) error
}

// TokenFilter selects tokens; empty fields match everything.
type TokenFilter struct {
	OrganizationID string
	API            string
	IncludeRevoked bool
}

// SessionService stores dashboard sessions by the hash of their cookie.
type SessionService interface {
	CreateSession(ctx context.Context, s *Session) error
	// FindSession returns ENOTFOUND for unknown or expired sessions.
	FindSession(ctx context.Context, id string) (*Session, error)
	DeleteSession(ctx context.Context, id string) error
	DeleteUserSessions(ctx context.Context, userID string) error
}

// AdminKeyService stores management API keys by hash.
type AdminKeyService interface {
	CreateAdminKey(ctx context.Context, k *AdminKey) error
	// FindAdminKeyByHash returns ENOTFOUND for unknown or revoked keys.
	FindAdminKeyByHash(ctx context.Context, hash string) (*AdminKey, error)
	ListAdminKeys(ctx context.Context) ([]*AdminKey, error)
	RevokeAdminKey(ctx context.Context, id string, at time.Time) error
}

// SigningKey signs identity JWTs (EdDSA). It lives in the store so every
// instance signs with the same key and the JWKS stays stable across restarts.
type SigningKey struct {
	ID         string // the JWT "kid"
	PrivateKey []byte // Ed25519 seed (32 bytes)
	CreatedAt  time.Time
}

// SigningKeyService keeps the current signing key.
type SigningKeyService interface {
	// SigningKey returns the current key, storing newKey first when there is
	// none; concurrent callers on any instance all get the same key.
	SigningKey(ctx context.Context, newKey *SigningKey) (*SigningKey, error)
}

// UsageCount is the traffic of one token (or of an organization's OAuth
// clients, with TokenID "") in one hour.
type UsageCount struct {
	OrganizationID string
	TokenID        string
	Hour           time.Time // truncated to the hour, UTC
	Requests       int64
	Errors         int64 // 4xx/5xx other than 429
	RateLimited    int64 // 429s
}

// UsageService stores per-hour usage counters, written in batches.
type UsageService interface {
	// RecordUsage adds the counts to what is stored for each (org, token,
	// hour). A batchID that is not "" is recorded in the same transaction,
	// and a batch whose id is already recorded adds nothing: a writer that
	// saw a write fail after its commit (a timeout) can try it again
	// safely. Ids are remembered for a day at least.
	RecordUsage(ctx context.Context, batchID string, counts []UsageCount) error
	// ListUsage returns counts with Hour in [From, To), oldest first.
	ListUsage(ctx context.Context, q UsageQuery) ([]UsageCount, error)
}

// UsageQuery selects usage; TokenID "" means every token of the organization.
type UsageQuery struct {
	OrganizationID string
	TokenID        string
	From, To       time.Time
}

// Change kinds published by stores.
const (
	ChangeToken = "token" // ID is a token id: rotated or revoked
	// ChangeTokenCreated: ID is a new token's id. Nothing cached of it can
	// be stale, but its hash may be cached as unknown. Instances that do
	// not know the kind drop their whole cache, which is safe.
	ChangeTokenCreated = "token_created"
	ChangeOrganization = "organization" // ID is an organization id: plan, entitlements, deleted
)

// Change says that something cached elsewhere is stale.
type Change struct {
	Seq  int64
	Kind string
	ID   string
}

// ChangeFeed delivers changes committed by any process sharing the store,
// so a token deleted through one instance (or the CLI) is refused by all.
type ChangeFeed interface {
	// WatchChanges calls following(true) once it knows where it begins,
	// then fn, in order, for every change committed after that (and none
	// committed before the call), until ctx ends.
	//
	// Where it begins is read from the store, which takes a moment (and
	// longer while the store is away): a cache must not keep anything it
	// read before the first following(true), since a change committed in
	// between would never reach it.
	//
	// It keeps retrying through connection loss and catches up on what it
	// missed. While it cannot read the store it calls following(false):
	// changes committed from then on reach fn only once it is back, so a
	// cache must not answer from what it holds meanwhile (a token revoked
	// then would keep working). Once it has delivered every change
	// committed while it was away it calls following(true) again; what a
	// cache read in between stays good, since any change to it was among
	// those delivered. following may be nil.
	//
	// If changes it had not yet delivered were pruned before it could
	// read them (it was away, or stalled, for longer than the store keeps
	// changes), it returns ErrChangesPruned instead of saying it follows
	// again: those changes can never be delivered.
	WatchChanges(ctx context.Context, following func(bool), fn func(Change)) error
}

// ErrChangesPruned is returned by WatchChanges when changes it had not
// yet delivered were pruned before it could read them. A cache must then
// drop everything it holds, as when a feed begins: any entry may be one
// of those changes' targets.
var ErrChangesPruned = errors.New("changes committed while the feed was away were pruned before it could read them")

// DefaultStoreTimeout bounds one store call on a request's path when
// nothing else is configured (cache.store_timeout).
const DefaultStoreTimeout = 2 * time.Second

// StoreContext bounds one store call made on a request's path by timeout
// (DefaultStoreTimeout when not positive), on top of the request's own
// context: a database that stops answering, connections open and nothing
// coming back, then fails the request with EUNAVAILABLE within timeout
// instead of holding it for as long as the client waits.
func StoreContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		timeout = DefaultStoreTimeout
	}
	return context.WithTimeout(ctx, timeout)
}

// StoreTimedOut reports whether err is a store call's deadline passing
// while the request itself is still waiting, ctx being the request's own
// context: an outage to answer 503, not a client that went away.
func StoreTimedOut(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded)
}
