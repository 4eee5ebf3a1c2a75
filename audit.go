package keygate

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// The audit log records who did what, security-wise: one entry per action
// below, append-only. Entries describe what changed with ids, names, hints
// and hosts, never with a secret (no token, admin key, password, session,
// signing secret or full webhook URL, which may carry the receiver's own
// secret).

// Audit actions.
const (
	AuditTokenCreated        = "token.created"
	AuditTokenRotated        = "token.rotated"
	AuditTokenDeleted        = "token.deleted"
	AuditTokenExpired        = "token.expired"
	AuditAdminKeyCreated     = "admin_key.created"
	AuditAdminKeyRevoked     = "admin_key.revoked"
	AuditMemberAdded         = "member.added"
	AuditMemberRemoved       = "member.removed"
	AuditMemberRoleChanged   = "member.role_changed"
	AuditInvitationCreated   = "invitation.created"
	AuditInvitationAccepted  = "invitation.accepted"
	AuditInvitationRevoked   = "invitation.revoked"
	AuditOrganizationCreated = "organization.created"
	AuditOrganizationDeleted = "organization.deleted"
	// AuditPlanChanged: plan, entitlements or the token limit changed.
	AuditPlanChanged = "plan.changed"
	// AuditSettingsChanged: an organization's other settings (its name,
	// its email notices) changed.
	AuditSettingsChanged    = "settings.changed"
	AuditOAuthGrantApproved = "oauth_grant.approved"
	AuditOAuthGrantRevoked  = "oauth_grant.revoked"
	AuditWebhookCreated     = "webhook.created"
	AuditWebhookChanged     = "webhook.changed"
	AuditWebhookDeleted     = "webhook.deleted"
	AuditLoginSucceeded     = "login.succeeded"
	AuditLoginFailed        = "login.failed"
	AuditLoginThrottled     = "login.throttled"
)

// AuditActions lists every action, in the order filters show them.
var AuditActions = []string{
	AuditTokenCreated, AuditTokenRotated, AuditTokenDeleted, AuditTokenExpired,
	AuditAdminKeyCreated, AuditAdminKeyRevoked,
	AuditMemberAdded, AuditMemberRemoved, AuditMemberRoleChanged,
	AuditInvitationCreated, AuditInvitationAccepted, AuditInvitationRevoked,
	AuditOrganizationCreated, AuditOrganizationDeleted, AuditPlanChanged, AuditSettingsChanged,
	AuditOAuthGrantApproved, AuditOAuthGrantRevoked,
	AuditWebhookCreated, AuditWebhookChanged, AuditWebhookDeleted,
	AuditLoginSucceeded, AuditLoginFailed, AuditLoginThrottled,
}

// Kinds of actor.
const (
	ActorUser     = "user"      // a dashboard user (ID is the user id)
	ActorAdminKey = "admin_key" // the management API with an admin key
	ActorCLI      = "cli"       // a keygate command on the server's machine
	ActorSystem   = "system"    // keygate itself: expiry, retries
)

// Actor is who did an audited action and from where. Address and
// UserAgent are set for actions that came over HTTP.
type Actor struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name"` // an email, a key's name; never a secret
	// SiteAdmin: a site administrator, or an admin key (which acts as
	// one), at the time of the action.
	SiteAdmin bool   `json:"site_admin"`
	Address   string `json:"address"`
	UserAgent string `json:"user_agent"`
}

// ForOrganization is the actor as an organization's own people (its
// owners, its SIEM) see it: a site administrator's address and user agent
// are left out, since where the site's operators work from is not the
// organization's business. Site administrators see every actor whole.
func (a Actor) ForOrganization() Actor {
	if a.SiteAdmin {
		a.Address, a.UserAgent = "", ""
	}
	return a
}

type actorKey struct{}

// WithActor returns ctx carrying a, for the audit log to read where the
// action is recorded.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor ctx carries; keygate itself (ActorSystem)
// when there is none.
func ActorFrom(ctx context.Context) Actor {
	a, _ := ctx.Value(actorKey{}).(Actor)
	if a.Type == "" {
		a.Type = ActorSystem
	}
	return a
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	// Seq orders entries and is the cursor of pagination; the store sets it.
	Seq            int64
	ID             string // "aud_…"
	At             time.Time
	Action         string
	Actor          Actor
	OrganizationID string // "" for site-wide actions (admin keys, logins)
	TargetID       string // the token, member, webhook… acted on
	// Details is a small JSON object of what changed.
	Details json.RawMessage
}

// AuditFilter selects entries, newest first; empty fields match
// everything.
type AuditFilter struct {
	OrganizationID string
	Action         string
	// Actor matches the actor's id exactly, or its name with ASCII letters
	// folded and nothing else ("CI" finds "ci"; "ünal" does not find
	// "Ünal", nor "STRASSE" "straße"), the same on every store. An email
	// is first normalized as sign-in normalizes it (NormalizeActorFilter),
	// so it matches the stored, lower-case address in any case.
	Actor    string
	From, To time.Time // At in [From, To)
	// Before is a cursor: only entries with Seq below it.
	Before int64
	Limit  int // 0: 50
}

// MaxAuditPage bounds one page of entries.
const MaxAuditPage = 200

// AuditLog keeps the audit log. There is no way to change or delete one
// entry: only PurgeAuditEntries, which enforces the retention period.
type AuditLog interface {
	// AppendAuditEntry stores e, filling in ID, Seq and a zero At.
	AppendAuditEntry(ctx context.Context, e *AuditEntry) error
	// RecordChange runs change and appends the entries it returns in one
	// transaction, so a change and its entries commit together or not at
	// all. The store's writes and reads that change makes with the
	// context it is given join that transaction, so its reads see its
	// own uncommitted writes and take no second connection; entries are
	// filled in as AppendAuditEntry fills them. change must write only
	// through that context.
	RecordChange(ctx context.Context, change func(ctx context.Context) ([]*AuditEntry, error)) error
	// ListAuditEntries returns matching entries, newest (highest Seq) first.
	ListAuditEntries(ctx context.Context, f AuditFilter) ([]*AuditEntry, error)
	// PurgeAuditEntries deletes entries older than before and says how many.
	PurgeAuditEntries(ctx context.Context, before time.Time) (int64, error)
}

// IsAuditAction reports whether action is one of AuditActions.
func IsAuditAction(action string) bool {
	return HasAll(AuditActions, []string{action})
}

// NormalizeActorFilter is how stores compare AuditFilter.Actor: emails are
// stored and matched lower-case.
func NormalizeActorFilter(s string) string {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "@") {
		return strings.ToLower(s)
	}
	return s
}
