package audit

import (
	"context"
	"net/url"
	"slices"
	"time"

	"github.com/keygate/keygate"
)

// Store is a keygate.Store that records every audited change made through
// it, after the change commits, with the actor of the call's context.
// Reads and everything not audited pass straight through.
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
	if err := s.Store.CreateToken(ctx, tok, maxActive); err != nil {
		return err
	}
	s.Log.Record(ctx, keygate.AuditTokenCreated, tok.OrganizationID, tok.ID, tokenDetails(tok))
	return nil
}

func (s *Store) RotateToken(ctx context.Context, rot keygate.TokenRotation) (*keygate.Token, error) {
	tok, err := s.Store.RotateToken(ctx, rot)
	if err != nil {
		return nil, err
	}
	d := tokenDetails(tok)
	d["previous_secret_expires_at"] = tok.PreviousHashExpiresAt
	s.Log.Record(ctx, keygate.AuditTokenRotated, tok.OrganizationID, tok.ID, d)
	return tok, nil
}

func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	if err := s.Store.RevokeToken(ctx, id, at); err != nil {
		return err
	}
	tok, err := s.Store.FindTokenByID(ctx, id)
	if err != nil {
		tok = &keygate.Token{ID: id}
	}
	s.Log.Record(ctx, keygate.AuditTokenDeleted, tok.OrganizationID, id, tokenDetails(tok))
	return nil
}

func (s *Store) CreateAdminKey(ctx context.Context, k *keygate.AdminKey) error {
	if err := s.Store.CreateAdminKey(ctx, k); err != nil {
		return err
	}
	s.Log.Record(ctx, keygate.AuditAdminKeyCreated, "", k.ID, map[string]any{"name": k.Name, "hint": k.Hint})
	return nil
}

func (s *Store) RevokeAdminKey(ctx context.Context, id string, at time.Time) error {
	if err := s.Store.RevokeAdminKey(ctx, id, at); err != nil {
		return err
	}
	s.Log.Record(ctx, keygate.AuditAdminKeyRevoked, "", id, nil)
	return nil
}

// SetMembership records member.added, or member.role_changed with the
// previous role, reading the membership first to tell which.
func (s *Store) SetMembership(ctx context.Context, m *keygate.Membership) error {
	previous := ""
	if ms, err := s.Store.ListMemberships(ctx, keygate.MembershipFilter{OrganizationID: m.OrganizationID, UserID: m.UserID}); err == nil && len(ms) > 0 {
		previous = ms[0].Role
	}
	if err := s.Store.SetMembership(ctx, m); err != nil {
		return err
	}
	d := map[string]any{"user_id": m.UserID, "role": m.Role}
	if u, err := s.Store.FindUserByID(ctx, m.UserID); err == nil {
		d["email"] = u.Email
	}
	switch previous {
	case "":
		s.Log.Record(ctx, keygate.AuditMemberAdded, m.OrganizationID, m.UserID, d)
	case m.Role:
	default:
		d["previous_role"] = previous
		s.Log.Record(ctx, keygate.AuditMemberRoleChanged, m.OrganizationID, m.UserID, d)
	}
	return nil
}

func (s *Store) DeleteMembership(ctx context.Context, organizationID, userID string) error {
	if err := s.Store.DeleteMembership(ctx, organizationID, userID); err != nil {
		return err
	}
	d := map[string]any{"user_id": userID}
	if u, err := s.Store.FindUserByID(ctx, userID); err == nil {
		d["email"] = u.Email
	}
	s.Log.Record(ctx, keygate.AuditMemberRemoved, organizationID, userID, d)
	return nil
}

func (s *Store) CreateOrganization(ctx context.Context, org *keygate.Organization) error {
	if err := s.Store.CreateOrganization(ctx, org); err != nil {
		return err
	}
	s.Log.Record(ctx, keygate.AuditOrganizationCreated, org.ID, org.ID, organizationDetails(org))
	return nil
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
	if err := s.Store.UpdateOrganization(ctx, org); err != nil {
		return err
	}
	if before == nil {
		s.Log.Record(ctx, keygate.AuditPlanChanged, org.ID, org.ID, organizationDetails(org))
		return nil
	}
	changed := map[string]any{}
	old, now := organizationDetails(before), organizationDetails(org)
	for _, field := range []string{"plan", "entitlements", "max_active_tokens", "name"} {
		if !sameJSON(old[field], now[field]) {
			changed[field] = map[string]any{"from": old[field], "to": now[field]}
		}
	}
	if len(changed) == 0 {
		return nil
	}
	action := keygate.AuditSettingsChanged
	for _, field := range []string{"plan", "entitlements", "max_active_tokens"} {
		if _, ok := changed[field]; ok {
			action = keygate.AuditPlanChanged
		}
	}
	s.Log.Record(ctx, action, org.ID, org.ID, changed)
	return nil
}

// UpdateEmailSettings records settings.changed with the email kinds
// turned off before and after, when they changed.
func (s *Store) UpdateEmailSettings(ctx context.Context, es *keygate.EmailSettings) error {
	before, _ := s.Store.FindEmailSettings(ctx, es.OrganizationID)
	if err := s.Store.UpdateEmailSettings(ctx, es); err != nil {
		return err
	}
	var old []string
	if before != nil {
		old = before.Disabled
	}
	if sameJSON(nonNilStrings(old), nonNilStrings(es.Disabled)) {
		return nil
	}
	s.Log.Record(ctx, keygate.AuditSettingsChanged, es.OrganizationID, es.OrganizationID, map[string]any{
		"emails_disabled": map[string]any{"from": nonNilStrings(old), "to": nonNilStrings(es.Disabled)},
	})
	return nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Store) DeleteOrganization(ctx context.Context, id string) error {
	before, _ := s.Store.FindOrganizationByID(ctx, id)
	if err := s.Store.DeleteOrganization(ctx, id); err != nil {
		return err
	}
	var d map[string]any
	if before != nil {
		d = map[string]any{"slug": before.Slug, "name": before.Name}
	}
	s.Log.Record(ctx, keygate.AuditOrganizationDeleted, id, id, d)
	return nil
}

// CreateOAuthCode is the user approving a client on the consent page; the
// grant the code is redeemed for gets the id recorded here.
func (s *Store) CreateOAuthCode(ctx context.Context, code *keygate.OAuthCode) error {
	if err := s.Store.CreateOAuthCode(ctx, code); err != nil {
		return err
	}
	if a := keygate.ActorFrom(ctx); a.Type == keygate.ActorSystem {
		a.Type, a.ID = keygate.ActorUser, code.UserID
		if u, err := s.Store.FindUserByID(ctx, code.UserID); err == nil {
			a.Name, a.SiteAdmin = u.Email, u.IsAdmin
		}
		ctx = keygate.WithActor(ctx, a)
	}
	d := map[string]any{"client_id": code.ClientID, "scopes": nonNil(code.Scopes), "resource": code.Resource}
	s.Log.Record(ctx, keygate.AuditOAuthGrantApproved, code.OrganizationID, code.GrantID, d)
	return nil
}

func (s *Store) RevokeOAuthGrant(ctx context.Context, id string, at time.Time) error {
	if err := s.Store.RevokeOAuthGrant(ctx, id, at); err != nil {
		return err
	}
	g, err := s.Store.FindOAuthGrant(ctx, id)
	if err != nil {
		g = &keygate.OAuthGrant{ID: id}
	}
	s.Log.Record(ctx, keygate.AuditOAuthGrantRevoked, g.OrganizationID, id,
		map[string]any{"client_id": g.ClientID, "client_name": g.ClientName, "user_id": g.UserID})
	return nil
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
	if err := s.Store.CreateWebhook(ctx, w, maxPerOrganization); err != nil {
		return err
	}
	s.Log.Record(ctx, keygate.AuditWebhookCreated, w.OrganizationID, w.ID, webhookDetails(w))
	return nil
}

func (s *Store) UpdateWebhook(ctx context.Context, w *keygate.Webhook) error {
	before, _ := s.Store.FindWebhook(ctx, w.ID)
	if err := s.Store.UpdateWebhook(ctx, w); err != nil {
		return err
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
	s.Log.Record(ctx, keygate.AuditWebhookChanged, w.OrganizationID, w.ID, d)
	return nil
}

func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	before, _ := s.Store.FindWebhook(ctx, id)
	if err := s.Store.DeleteWebhook(ctx, id); err != nil {
		return err
	}
	org, d := "", map[string]any(nil)
	if before != nil {
		org, d = before.OrganizationID, webhookDetails(before)
	}
	s.Log.Record(ctx, keygate.AuditWebhookDeleted, org, id, d)
	return nil
}

// CreateSession is a successful login (dashboard or OAuth login page).
func (s *Store) CreateSession(ctx context.Context, sess *keygate.Session) error {
	if err := s.Store.CreateSession(ctx, sess); err != nil {
		return err
	}
	a := keygate.ActorFrom(ctx)
	a.Type, a.ID = keygate.ActorUser, sess.UserID
	if u, err := s.Store.FindUserByID(ctx, sess.UserID); err == nil {
		a.Name, a.SiteAdmin = u.Email, u.IsAdmin
	}
	s.Log.Record(keygate.WithActor(ctx, a), keygate.AuditLoginSucceeded, "", sess.UserID, nil)
	return nil
}

// invitationDetails describes an invitation without its secret.
func invitationDetails(inv *keygate.Invitation) map[string]any {
	return map[string]any{"email": inv.Email, "role": inv.Role, "expires_at": inv.ExpiresAt}
}

func (s *Store) CreateInvitation(ctx context.Context, inv *keygate.Invitation) error {
	if err := s.Store.CreateInvitation(ctx, inv); err != nil {
		return err
	}
	s.Log.Record(ctx, keygate.AuditInvitationCreated, inv.OrganizationID, inv.ID, invitationDetails(inv))
	return nil
}

// AcceptInvitation records invitation.accepted, and member.added when the
// acceptance made the user a member.
func (s *Store) AcceptInvitation(ctx context.Context, hash, userID string, at time.Time) (*keygate.Invitation, bool, error) {
	inv, added, err := s.Store.AcceptInvitation(ctx, hash, userID, at)
	if err != nil {
		return nil, false, err
	}
	d := invitationDetails(inv)
	d["user_id"] = userID
	d["membership_added"] = added
	s.Log.Record(ctx, keygate.AuditInvitationAccepted, inv.OrganizationID, inv.ID, d)
	if added {
		s.Log.Record(ctx, keygate.AuditMemberAdded, inv.OrganizationID, userID,
			map[string]any{"user_id": userID, "role": inv.Role, "email": inv.Email, "invitation_id": inv.ID})
	}
	return inv, added, nil
}

func (s *Store) RevokeInvitation(ctx context.Context, organizationID, id string, at time.Time) error {
	if err := s.Store.RevokeInvitation(ctx, organizationID, id, at); err != nil {
		return err
	}
	d := map[string]any{}
	if list, err := s.Store.ListInvitations(ctx, keygate.InvitationFilter{OrganizationID: organizationID}); err == nil {
		for _, inv := range list {
			if inv.ID == id {
				d = invitationDetails(inv)
			}
		}
	}
	s.Log.Record(ctx, keygate.AuditInvitationRevoked, organizationID, id, d)
	return nil
}
