package audit

import (
	"context"
	"net/url"
	"slices"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/detach"
)

// Store is a keygate.Store that records every audited change made through
// it, with the actor of the call's context, in the change's own
// transaction (keygate.AuditLog.RecordChange): the change and its entries
// commit together or not at all, and Log's Shipper hears of the entries
// once they have. Reads and everything not audited pass straight through.
//
// What an entry says of the state before the change (a previous role, the
// revoked token's name) is read before the transaction begins, so a change
// holds no second connection while its transaction is open; what it says
// of the change itself (a new id, the rotated token, whether accepting an
// invitation added a member) is what the store did in that transaction.
type Store struct {
	keygate.Store
	Log *Log
}

// Wrap returns store recording into log; a store already wrapped is
// returned as it is.
func Wrap(store keygate.Store, log *Log) keygate.Store {
	if _, ok := store.(*Store); ok {
		return store
	}
	return &Store{Store: store, Log: log}
}

// record runs apply, which makes one change through the context it is
// given and returns the entries that describe it, in one transaction with
// those entries, then ships them.
func (s *Store) record(ctx context.Context, apply func(ctx context.Context) ([]*keygate.AuditEntry, error)) error {
	var entries []*keygate.AuditEntry
	err := s.Store.RecordChange(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		var err error
		entries, err = apply(ctx)
		return entries, err
	})
	if err != nil {
		return err
	}
	// As Record: shipped even if the client has left meanwhile.
	ctx, cancel := detach.Context(ctx)
	defer cancel()
	s.Log.ship(ctx, entries...)
	return nil
}

// one is the single entry most changes are described by.
func (s *Store) one(ctx context.Context, action, organizationID, targetID string, details any) ([]*keygate.AuditEntry, error) {
	return []*keygate.AuditEntry{s.Log.entry(ctx, action, organizationID, targetID, details)}, nil
}

// tokenDetails describes a token without its secret.
func tokenDetails(t *keygate.Token) map[string]any {
	return map[string]any{
		"name": t.Name, "hint": t.Hint, "api": t.API, "environment": t.Environment,
		"scopes": nonNil(t.Scopes), "expires_at": t.ExpiresAt,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Store) CreateToken(ctx context.Context, tok *keygate.Token, maxActive int) error {
	return s.record(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := s.Store.CreateToken(ctx, tok, maxActive); err != nil {
			return nil, err
		}
		return s.one(ctx, keygate.AuditTokenCreated, tok.OrganizationID, tok.ID, tokenDetails(tok))
	})
}

func (s *Store) RotateToken(ctx context.Context, rot keygate.TokenRotation) (*keygate.Token, error) {
	var tok *keygate.Token
	err := s.record(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		var err error
		if tok, err = s.Store.RotateToken(ctx, rot); err != nil {
			return nil, err
		}
		d := tokenDetails(tok)
		d["previous_secret_expires_at"] = tok.PreviousHashExpiresAt
		return s.one(ctx, keygate.AuditTokenRotated, tok.OrganizationID, tok.ID, d)
	})
	if err != nil {
		return nil, err
	}
	return tok, nil
}

func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	tok, err := s.Store.FindTokenByID(ctx, id)
	if err != nil {
		tok = &keygate.Token{ID: id}
	}
	return s.record(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := s.Store.RevokeToken(ctx, id, at); err != nil {
			return nil, err
		}
		return s.one(ctx, keygate.AuditTokenDeleted, tok.OrganizationID, id, tokenDetails(tok))
	})
}

func (s *Store) CreateAdminKey(ctx context.Context, k *keygate.AdminKey) error {
	return s.record(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := s.Store.CreateAdminKey(ctx, k); err != nil {
			return nil, err
		}
		return s.one(ctx, keygate.AuditAdminKeyCreated, "", k.ID, map[string]any{"name": k.Name, "hint": k.Hint})
	})
}

func (s *Store) RevokeAdminKey(ctx context.Context, id string, at time.Time) error {
	return s.record(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := s.Store.RevokeAdminKey(ctx, id, at); err != nil {
			return nil, err
		}
		return s.one(ctx, keygate.AuditAdminKeyRevoked, "", id, nil)
	})
}

// memberDetails names the user a membership change is about.
func (s *Store) memberDetails(ctx context.Context, userID string) map[string]any {
	d := map[string]any{"user_id": userID}
	if u, err := s.Store.FindUserByID(ctx, userID); err == nil {
		d["email"] = u.Email
	}
	return d
}

// SetMembership records member.added, or member.role_changed with the
// previous role, reading the membership first to tell which.
func (s *Store) SetMembership(ctx context.Context, m *keygate.Membership) error {
	previous := ""
	if ms, err := s.Store.ListMemberships(ctx, keygate.MembershipFilter{OrganizationID: m.OrganizationID, UserID: m.UserID}); err == nil && len(ms) > 0 {
		previous = ms[0].Role
	}
	d := s.memberDetails(ctx, m.UserID)
	d["role"] = m.Role
	return s.record(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := s.Store.SetMembership(ctx, m); err != nil {
			return nil, err
		}
		switch previous {
		case "":
			return s.one(ctx, keygate.AuditMemberAdded, m.OrganizationID, m.UserID, d)
		case m.Role:
			return nil, nil
		default:
			d["previous_role"] = previous
			return s.one(ctx, keygate.AuditMemberRoleChanged, m.OrganizationID, m.UserID, d)
		}
	})
}

func (s *Store) DeleteMembership(ctx context.Context, organizationID, userID string) error {
	d := s.memberDetails(ctx, userID)
	return s.record(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := s.Store.DeleteMembership(ctx, organizationID, userID); err != nil {
			return nil, err
		}
		return s.one(ctx, keygate.AuditMemberRemoved, organizationID, userID, d)
	})
}

func (s *Store) CreateOrganization(ctx context.Context, org *keygate.Organization) error {
	return s.record(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := s.Store.CreateOrganization(ctx, org); err != nil {
			return nil, err
		}
		return s.one(ctx, keygate.AuditOrganizationCreated, org.ID, org.ID, organizationDetails(org))
	})
}

func organizationDetails(o *keygate.Organization) map[string]any {
	return map[string]any{
		"slug": o.Slug, "name": o.Name, "plan": o.Plan, "entitlements": o.Entitlements,
		"max_active_tokens": o.MaxActiveTokens,
	}
}

// UpdateOrganization records plan.changed when the plan, entitlements or
// token limit changed, settings.changed when only other settings did,
// each with the changed fields' old and new values.
func (s *Store) UpdateOrganization(ctx context.Context, org *keygate.Organization) error {
	before, _ := s.Store.FindOrganizationByID(ctx, org.ID)
	return s.record(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := s.Store.UpdateOrganization(ctx, org); err != nil {
			return nil, err
		}
		if before == nil {
			return s.one(ctx, keygate.AuditPlanChanged, org.ID, org.ID, organizationDetails(org))
		}
		action, changed := organizationChange(before, org)
		if len(changed) == 0 {
			return nil, nil
		}
		return s.one(ctx, action, org.ID, org.ID, changed)
	})
}

// organizationChange is the action and the changed fields' old and new
// values of an update from before to after.
func organizationChange(before, after *keygate.Organization) (string, map[string]any) {
	changed := map[string]any{}
	old, now := organizationDetails(before), organizationDetails(after)
	for _, field := range []string{"plan", "entitlements", "max_active_tokens", "name"} {
		if !sameJSON(old[field], now[field]) {
			changed[field] = map[string]any{"from": old[field], "to": now[field]}
		}
	}
	action := keygate.AuditSettingsChanged
	for _, field := range []string{"plan", "entitlements", "max_active_tokens"} {
		if _, ok := changed[field]; ok {
			action = keygate.AuditPlanChanged
		}
	}
	return action, changed
}

// UpdateEmailSettings records settings.changed with the email kinds
// turned off before and after, when they changed.
func (s *Store) UpdateEmailSettings(ctx context.Context, es *keygate.EmailSettings) error {
	var old []string
	if before, _ := s.Store.FindEmailSettings(ctx, es.OrganizationID); before != nil {
		old = before.Disabled
	}
	return s.record(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := s.Store.UpdateEmailSettings(ctx, es); err != nil {
			return nil, err
		}
		if sameJSON(nonNil(old), nonNil(es.Disabled)) {
			return nil, nil
		}
		return s.one(ctx, keygate.AuditSettingsChanged, es.OrganizationID, es.OrganizationID, map[string]any{
			"emails_disabled": map[string]any{"from": nonNil(old), "to": nonNil(es.Disabled)},
		})
	})
}

func (s *Store) DeleteOrganization(ctx context.Context, id string) error {
	var d map[string]any
	if before, _ := s.Store.FindOrganizationByID(ctx, id); before != nil {
		d = map[string]any{"slug": before.Slug, "name": before.Name}
	}
	return s.record(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := s.Store.DeleteOrganization(ctx, id); err != nil {
			return nil, err
		}
		return s.one(ctx, keygate.AuditOrganizationDeleted, id, id, d)
	})
}

// consentingUser returns ctx with the user as its actor when its actor is
// keygate itself: the consent page's request does not name who approves.
func (s *Store) consentingUser(ctx context.Context, userID string) context.Context {
	a := keygate.ActorFrom(ctx)
	if a.Type != keygate.ActorSystem {
		return ctx
	}
	a.Type, a.ID = keygate.ActorUser, userID
	if u, err := s.Store.FindUserByID(ctx, userID); err == nil {
		a.Name, a.SiteAdmin = u.Email, u.IsAdmin
	}
	return keygate.WithActor(ctx, a)
}

// CreateOAuthCode is the user approving a client on the consent page; the
// grant the code is redeemed for gets the id recorded here.
func (s *Store) CreateOAuthCode(ctx context.Context, code *keygate.OAuthCode) error {
	actor := s.consentingUser(ctx, code.UserID)
	return s.record(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := s.Store.CreateOAuthCode(ctx, code); err != nil {
			return nil, err
		}
		d := map[string]any{"client_id": code.ClientID, "scopes": nonNil(code.Scopes), "resource": code.Resource}
		return s.one(actor, keygate.AuditOAuthGrantApproved, code.OrganizationID, code.GrantID, d)
	})
}

func (s *Store) RevokeOAuthGrant(ctx context.Context, id string, at time.Time) error {
	g, err := s.Store.FindOAuthGrant(ctx, id)
	if err != nil {
		g = &keygate.OAuthGrant{ID: id}
	}
	return s.record(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := s.Store.RevokeOAuthGrant(ctx, id, at); err != nil {
			return nil, err
		}
		return s.one(ctx, keygate.AuditOAuthGrantRevoked, g.OrganizationID, id,
			map[string]any{"client_id": g.ClientID, "client_name": g.ClientName, "user_id": g.UserID})
	})
}

// webhookDetails names an endpoint by its host only: the rest of its URL
// often carries the receiver's own secret.
func webhookDetails(w *keygate.Webhook) map[string]any {
	host := ""
	if u, err := url.Parse(w.URL); err == nil {
		host = u.Host
	}
	return map[string]any{"host": host, "events": nonNil(w.Events), "disabled": w.Disabled}
}

func (s *Store) CreateWebhook(ctx context.Context, w *keygate.Webhook, maxPerOrganization int) error {
	return s.record(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := s.Store.CreateWebhook(ctx, w, maxPerOrganization); err != nil {
			return nil, err
		}
		return s.one(ctx, keygate.AuditWebhookCreated, w.OrganizationID, w.ID, webhookDetails(w))
	})
}

func (s *Store) UpdateWebhook(ctx context.Context, w *keygate.Webhook) error {
	before, _ := s.Store.FindWebhook(ctx, w.ID)
	return s.record(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := s.Store.UpdateWebhook(ctx, w); err != nil {
			return nil, err
		}
		d := webhookDetails(w)
		if before != nil {
			d["url_changed"] = before.URL != w.URL
			if !slices.Equal(before.Events, w.Events) {
				d["previous_events"] = nonNil(before.Events)
			}
			if before.Disabled != w.Disabled {
				d["previous_disabled"] = before.Disabled
			}
		}
		return s.one(ctx, keygate.AuditWebhookChanged, w.OrganizationID, w.ID, d)
	})
}

func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	org, d := "", map[string]any(nil)
	if before, _ := s.Store.FindWebhook(ctx, id); before != nil {
		org, d = before.OrganizationID, webhookDetails(before)
	}
	return s.record(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := s.Store.DeleteWebhook(ctx, id); err != nil {
			return nil, err
		}
		return s.one(ctx, keygate.AuditWebhookDeleted, org, id, d)
	})
}

// CreateSession is a successful login (dashboard or OAuth login page).
func (s *Store) CreateSession(ctx context.Context, sess *keygate.Session) error {
	a := keygate.ActorFrom(ctx)
	a.Type, a.ID = keygate.ActorUser, sess.UserID
	if u, err := s.Store.FindUserByID(ctx, sess.UserID); err == nil {
		a.Name, a.SiteAdmin = u.Email, u.IsAdmin
	}
	actor := keygate.WithActor(ctx, a)
	return s.record(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := s.Store.CreateSession(ctx, sess); err != nil {
			return nil, err
		}
		return s.one(actor, keygate.AuditLoginSucceeded, "", sess.UserID, nil)
	})
}

// invitationDetails describes an invitation without its secret.
func invitationDetails(inv *keygate.Invitation) map[string]any {
	return map[string]any{"email": inv.Email, "role": inv.Role, "expires_at": inv.ExpiresAt}
}

func (s *Store) CreateInvitation(ctx context.Context, inv *keygate.Invitation) error {
	return s.record(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := s.Store.CreateInvitation(ctx, inv); err != nil {
			return nil, err
		}
		return s.one(ctx, keygate.AuditInvitationCreated, inv.OrganizationID, inv.ID, invitationDetails(inv))
	})
}

// AcceptInvitation records invitation.accepted, and member.added when the
// acceptance made the user a member.
func (s *Store) AcceptInvitation(ctx context.Context, hash, userID string, at time.Time) (*keygate.Invitation, bool, error) {
	var (
		inv   *keygate.Invitation
		added bool
	)
	err := s.record(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		var err error
		if inv, added, err = s.Store.AcceptInvitation(ctx, hash, userID, at); err != nil {
			return nil, err
		}
		d := invitationDetails(inv)
		d["user_id"] = userID
		d["membership_added"] = added
		entries := []*keygate.AuditEntry{s.Log.entry(ctx, keygate.AuditInvitationAccepted, inv.OrganizationID, inv.ID, d)}
		if added {
			entries = append(entries, s.Log.entry(ctx, keygate.AuditMemberAdded, inv.OrganizationID, userID,
				map[string]any{"user_id": userID, "role": inv.Role, "email": inv.Email, "invitation_id": inv.ID}))
		}
		return entries, nil
	})
	if err != nil {
		return nil, false, err
	}
	return inv, added, nil
}

func (s *Store) RevokeInvitation(ctx context.Context, organizationID, id string, at time.Time) error {
	d := map[string]any{}
	if list, err := s.Store.ListInvitations(ctx, keygate.InvitationFilter{OrganizationID: organizationID}); err == nil {
		for _, inv := range list {
			if inv.ID == id {
				d = invitationDetails(inv)
			}
		}
	}
	return s.record(ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
		if err := s.Store.RevokeInvitation(ctx, organizationID, id, at); err != nil {
			return nil, err
		}
		return s.one(ctx, keygate.AuditInvitationRevoked, organizationID, id, d)
	})
}
