package webhook

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/keygate/keygate"
)

// scan is one once-per-token event the scan looks for: tokens whose field
// lies in a window and that have no notice for the event yet.
type scan struct {
	event string
	field string
	from  time.Time
	to    time.Time
}

// ScanTokens sends every once-per-token event that is due and not yet
// sent, once per token and event across every instance (the store records
// each notice with its deliveries, atomically):
//
//   - token.expiring for tokens that expire within keygate.TokenExpiringWindow,
//   - token.expired for tokens that expired within ExpiredLookback,
//   - token.created and token.deleted for tokens created or deleted within
//     ExpiredLookback whose event has not gone out — EmitToken sends them
//     at once, and this catches the ones an instance stopped before sending.
//
// It asks the store only for tokens in each event's window that have no
// notice yet, of organizations with an enabled endpoint for the event, a
// page at a time (keygate.EachTokenForNotice): a scan that finds nothing
// new reads an index range, whatever the number of tokens, so every
// instance can run it every minute. Deleted tokens get no expiry events.
// Each event goes only to endpoints that existed when it happened, so a
// new endpoint does not receive old news.
func (d *Dispatcher) ScanTokens(ctx context.Context) error {
	hooks, err := d.store.ListWebhooks(ctx, "")
	if err != nil {
		return err
	}
	byOrganization := map[string][]*keygate.Webhook{}
	for _, h := range hooks {
		byOrganization[h.OrganizationID] = append(byOrganization[h.OrganizationID], h)
	}
	now := d.now()
	scans := []scan{
		{keygate.EventTokenCreated, keygate.TokenCreatedAt, now.Add(-d.lookback), now},
		{keygate.EventTokenDeleted, keygate.TokenRevokedAt, now.Add(-d.lookback), now},
		{keygate.EventTokenExpired, keygate.TokenExpiresAt, now.Add(-d.lookback), now},
		{keygate.EventTokenExpiring, keygate.TokenExpiresAt, now, now.Add(keygate.TokenExpiringWindow)},
	}
	orgs := map[string]*keygate.Organization{}
	var errs []error
	for _, s := range scans {
		var subscribers []string
		for orgID, hooks := range byOrganization {
			if len(subscribed(hooks, s.event)) > 0 {
				subscribers = append(subscribers, orgID)
			}
		}
		for chunk := range chunks(subscribers, 500) {
			q := keygate.TokenNoticeQuery{Event: s.event, Field: s.field, From: s.from, To: s.to,
				IncludeRevoked: s.field != keygate.TokenExpiresAt, OrganizationIDs: chunk}
			err := keygate.EachTokenForNotice(ctx, d.store, q, func(tok *keygate.Token) error {
				return d.notice(ctx, tok, s.event, byOrganization[tok.OrganizationID], orgs, now)
			})
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// notice sends one token's event to the organization's endpoints that
// existed when it happened (for token.expiring: now).
func (d *Dispatcher) notice(ctx context.Context, tok *keygate.Token, event string, hooks []*keygate.Webhook, orgs map[string]*keygate.Organization, now time.Time) error {
	at := now
	if event != keygate.EventTokenExpiring {
		at = *tok.NoticeTime(fieldOf(event))
	}
	targets := createdBy(subscribed(hooks, event), at)
	if len(targets) == 0 {
		if slices.ContainsFunc(createdBy(hooks, at), func(h *keygate.Webhook) bool { return h.Subscribes(event) }) {
			// An endpoint that existed then is disabled now: wait, so it
			// hears of the event once enabled again.
			return nil
		}
		// No endpoint existed then and none created later ever will
		// have: record the notice with no deliveries, so the token is
		// not looked at again.
	}
	org, ok := orgs[tok.OrganizationID]
	if !ok {
		var err error
		if org, err = d.store.FindOrganizationByID(ctx, tok.OrganizationID); err != nil {
			return err
		}
		orgs[tok.OrganizationID] = org
	}
	switch err := d.sendNotice(ctx, tok, org, event, targets); keygate.ErrorCode(err) {
	case "", keygate.ECONFLICT: // sent now, or already by someone
		return nil
	default:
		return err
	}
}

// fieldOf is the token time an event happened at.
func fieldOf(event string) string {
	switch event {
	case keygate.EventTokenCreated:
		return keygate.TokenCreatedAt
	case keygate.EventTokenDeleted:
		return keygate.TokenRevokedAt
	}
	return keygate.TokenExpiresAt
}

// chunks yields list in pieces of at most n (none for an empty list).
func chunks(list []string, n int) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(list) > 0 {
			k := min(n, len(list))
			if !yield(list[:k]) {
				return
			}
			list = list[k:]
		}
	}
}

// sendNotice records the token's notice with its deliveries in one step.
func (d *Dispatcher) sendNotice(ctx context.Context, tok *keygate.Token, org *keygate.Organization, event string, targets []*keygate.Webhook) error {
	deliveries, err := d.deliveries(event, NewTokenData(tok, org), targets)
	if err != nil {
		return err
	}
	n := &keygate.TokenNotice{TokenID: tok.ID, Event: event, CreatedAt: d.now()}
	if err := d.store.EnqueueTokenNotice(ctx, n, deliveries); err != nil {
		return err
	}
	if len(deliveries) > 0 {
		d.workers.Wake()
	}
	return nil
}

// createdBy returns the endpoints that existed at t.
func createdBy(hooks []*keygate.Webhook, t time.Time) []*keygate.Webhook {
	var out []*keygate.Webhook
	for _, h := range hooks {
		if !h.CreatedAt.After(t) {
			out = append(out, h)
		}
	}
	return out
}
