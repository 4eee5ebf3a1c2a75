package email

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/detach"
)

// threshold is one expiry email: sent when a token's expiry comes within
// Before, unless the token never lived longer than that (a 7-day token
// gets only the 1-day email).
type threshold struct {
	event  string // its token notice
	in     string
	before time.Duration
	after  time.Duration // the next, nearer threshold's Before
}

var thresholds = []threshold{
	{event: "email.token.expiring.7d", in: "7 days", before: 7 * 24 * time.Hour, after: 24 * time.Hour},
	{event: "email.token.expiring.1d", in: "1 day", before: 24 * time.Hour},
}

// ScanExpiring queues the expiry emails that are due: for each token whose
// expiry falls within 7 days (but more than 1 day away), and again within
// 1 day, one email to its creator and one to each of the organization's
// owners. Each (token, threshold) is claimed in the store with its emails
// in one step, so of several instances scanning at once exactly one
// queues them. Revoked tokens get none.
func (o *Outbox) ScanExpiring(ctx context.Context) error {
	if !o.Enabled() {
		return nil
	}
	now := o.now().UTC()
	orgs := map[string]*orgInfo{}
	for _, th := range thresholds {
		q := keygate.TokenNoticeQuery{Event: th.event, Field: keygate.TokenExpiresAt, From: now.Add(th.after), To: now.Add(th.before)}
		err := keygate.EachTokenForNotice(ctx, o.store, q, func(tok *keygate.Token) error {
			return o.expiring(ctx, tok, th, orgs)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// orgInfo is what one scan reads once per organization.
type orgInfo struct {
	org      *keygate.Organization
	settings *keygate.EmailSettings
}

func (o *Outbox) orgInfo(ctx context.Context, id string, cache map[string]*orgInfo) (*orgInfo, error) {
	if info, ok := cache[id]; ok {
		return info, nil
	}
	org, err := o.store.FindOrganizationByID(ctx, id)
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		cache[id] = nil // deleted: its tokens are revoked too
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	settings, err := o.store.FindEmailSettings(ctx, id)
	if err != nil {
		return nil, err
	}
	info := &orgInfo{org: org, settings: settings}
	cache[id] = info
	return info, nil
}

func (o *Outbox) expiring(ctx context.Context, tok *keygate.Token, th threshold, orgs map[string]*orgInfo) error {
	info, err := o.orgInfo(ctx, tok.OrganizationID, orgs)
	if err != nil {
		return err
	}
	var emails []*keygate.Email
	// A notice turned off, or for a token too short-lived for it, is
	// still recorded, so the token is not looked at again.
	if info != nil && info.settings.Enabled(keygate.EmailTokenExpiring) && tok.ExpiresAt.Sub(tok.CreatedAt) > th.before {
		people, err := o.people(ctx, info.org.ID, tok.CreatedBy, true)
		if err != nil {
			return err
		}
		for _, p := range people {
			d := o.tokenData(ctx, info.org, tok, p)
			d.In = th.in
			e, err := o.email("token_expiring", keygate.EmailTokenExpiring, info.org.ID, p, d)
			if err != nil {
				return err
			}
			emails = append(emails, e)
		}
	}
	err = o.enqueue(ctx, &keygate.TokenNotice{TokenID: tok.ID, Event: th.event}, emails)
	if keygate.ErrorCode(err) == keygate.ECONFLICT {
		return nil // another instance queued them
	}
	return err
}

// NotifyAudit queues the emails an audit entry calls for: token.created
// (a security notice to the token's creator) and member.added (to the new
// member). The audit log calls it for every entry it stores, so every
// path that creates tokens or adds members (dashboard, API, CLI,
// invitations) sends the same emails. A failure is logged, not returned:
// the action already happened.
func (o *Outbox) NotifyAudit(ctx context.Context, e *keygate.AuditEntry) {
	if !o.Enabled() || e.OrganizationID == "" {
		return
	}
	ctx, cancel := detach.Context(ctx)
	defer cancel()
	var err error
	switch e.Action {
	case keygate.AuditTokenCreated:
		err = o.tokenCreated(ctx, e)
	case keygate.AuditMemberAdded:
		err = o.memberAdded(ctx, e)
	default:
		return
	}
	if err != nil {
		o.logger.ErrorContext(ctx, "email: could not queue the email for an audit entry; it will not be sent",
			"action", e.Action, "org_id", e.OrganizationID, "target_id", e.TargetID, "error", err)
	}
}

func (o *Outbox) tokenCreated(ctx context.Context, e *keygate.AuditEntry) error {
	info, err := o.orgInfo(ctx, e.OrganizationID, map[string]*orgInfo{})
	if err != nil || info == nil || !info.settings.Enabled(keygate.EmailTokenCreated) {
		return err
	}
	tok, err := o.store.FindTokenByID(ctx, e.TargetID)
	if err != nil {
		return err
	}
	people, err := o.people(ctx, info.org.ID, tok.CreatedBy, false)
	if err != nil || len(people) == 0 {
		return err // made by the CLI or an admin key: nobody to tell
	}
	m, err := o.email("token_created", keygate.EmailTokenCreated, info.org.ID, people[0], o.tokenData(ctx, info.org, tok, people[0]))
	if err != nil {
		return err
	}
	return o.enqueue(ctx, nil, []*keygate.Email{m})
}

func (o *Outbox) memberAdded(ctx context.Context, e *keygate.AuditEntry) error {
	info, err := o.orgInfo(ctx, e.OrganizationID, map[string]*orgInfo{})
	if err != nil || info == nil || !info.settings.Enabled(keygate.EmailMemberAdded) {
		return err
	}
	user, err := o.store.FindUserByID(ctx, e.TargetID)
	if err != nil {
		return err
	}
	role := keygate.RoleMember
	if ms, err := o.store.ListMemberships(ctx, keygate.MembershipFilter{OrganizationID: info.org.ID, UserID: user.ID}); err == nil && len(ms) == 1 {
		role = ms[0].Role
	}
	d := o.baseData(info.org, user)
	d.Role = role
	if e.Actor.Type == keygate.ActorUser && e.Actor.ID != user.ID {
		d.Actor = e.Actor.Name
	}
	m, err := o.email("member_added", keygate.EmailMemberAdded, info.org.ID, user, d)
	if err != nil {
		return err
	}
	return o.enqueue(ctx, nil, []*keygate.Email{m})
}

// people returns the token's creator, when it was made by a user who is
// still a member of the organization or a site administrator (someone
// removed from it hears nothing more of its tokens), and with owners the
// organization's owners, each once.
func (o *Outbox) people(ctx context.Context, orgID, creatorID string, owners bool) ([]*keygate.User, error) {
	ms, err := o.store.ListMemberships(ctx, keygate.MembershipFilter{OrganizationID: orgID})
	if err != nil {
		return nil, err
	}
	member := map[string]bool{}
	for _, m := range ms {
		member[m.UserID] = true
	}
	var out []*keygate.User
	seen := map[string]bool{}
	add := func(id string) error {
		if id == "" || seen[id] {
			return nil
		}
		seen[id] = true
		u, err := o.store.FindUserByID(ctx, id)
		if keygate.ErrorCode(err) == keygate.ENOTFOUND {
			return nil // "cli", "admin-key:…", or a deleted user
		} else if err != nil {
			return err
		}
		if member[u.ID] || u.IsAdmin {
			out = append(out, u)
		}
		return nil
	}
	if err := add(creatorID); err != nil {
		return nil, err
	}
	if owners {
		for _, m := range ms {
			if m.Role == keygate.RoleOwner {
				if err := add(m.UserID); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// data is what the templates see. It holds no secret: a token is shown by
// name, hint and scopes.
type data struct {
	Recipient    string
	Organization *keygate.Organization
	Token        *keygate.Token
	Scopes       string
	ExpiresAt    string
	CreatedAt    string
	Creator      string
	In           string
	Actor        string
	Role         string
	DashboardURL string
	TokensURL    string
	SettingsURL  string
	// InvitationURL is an invitation's link, secret included: rendered
	// only when the email is sent, never stored.
	InvitationURL string
}

func (o *Outbox) baseData(org *keygate.Organization, to *keygate.User) *data {
	d := &data{Recipient: to.Name, Organization: org}
	if o.publicURL != "" {
		d.DashboardURL = o.publicURL + "/"
		d.SettingsURL = o.publicURL + "/orgs/" + url.PathEscape(org.Slug) + "/settings"
		d.TokensURL = o.publicURL + "/orgs/" + url.PathEscape(org.Slug) + "/tokens"
	}
	return d
}

func (o *Outbox) tokenData(ctx context.Context, org *keygate.Organization, tok *keygate.Token, to *keygate.User) *data {
	d := o.baseData(org, to)
	// Only the stored description: id-free name, hint, scopes, times.
	d.Token = &keygate.Token{Name: tok.Name, Hint: tok.Hint, API: tok.API, Environment: tok.Environment}
	d.Scopes = strings.Join(tok.Scopes, ", ")
	d.ExpiresAt = "never"
	if tok.ExpiresAt != nil {
		d.ExpiresAt = tok.ExpiresAt.UTC().Format("Mon, 2 Jan 2006 15:04 MST")
	}
	d.CreatedAt = tok.CreatedAt.UTC().Format("Mon, 2 Jan 2006 15:04 MST")
	if u, err := o.store.FindUserByID(ctx, tok.CreatedBy); err == nil {
		d.Creator = u.Name
		if d.Creator == "" {
			d.Creator = u.Email
		}
	}
	return d
}

// email renders one email of the template to one person.
func (o *Outbox) email(name, kind, orgID string, to *keygate.User, d *data) (*keygate.Email, error) {
	subject, text, html, err := render(name, d)
	if err != nil {
		return nil, fmt.Errorf("email: rendering %s: %w", name, err)
	}
	return &keygate.Email{OrganizationID: orgID, Kind: kind, To: []string{to.Email}, Subject: subject, Text: text, HTML: html}, nil
}
