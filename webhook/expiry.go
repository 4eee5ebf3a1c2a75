package webhook

import (
	"context"
	"errors"
	"time"

	"github.com/keygate/keygate"
)

// notice is a token and a once-per-token event.
type notice struct {
	tokenID, event string
}

// ScanExpiries emits token.expiring for tokens that expire within
// keygate.TokenExpiringWindow and token.expired for tokens that expired
// within ExpiredLookback, once per token and event across every instance
// (the store records each notice with its deliveries, atomically). Only
// organizations with an enabled endpoint for the event are scanned;
// deleted tokens get neither event. token.expired goes only to endpoints
// that existed when the token expired, so a new endpoint does not receive
// old news.
func (d *Dispatcher) ScanExpiries(ctx context.Context) error {
	hooks, err := d.store.ListWebhooks(ctx, "")
	if err != nil {
		return err
	}
	byOrganization := map[string][]*keygate.Webhook{}
	for _, h := range hooks {
		byOrganization[h.OrganizationID] = append(byOrganization[h.OrganizationID], h)
	}
	done := map[notice]bool{}
	var errs []error
	for orgID, hooks := range byOrganization {
		expiring := subscribed(hooks, keygate.EventTokenExpiring)
		expired := subscribed(hooks, keygate.EventTokenExpired)
		if len(expiring) == 0 && len(expired) == 0 {
			continue
		}
		if err := d.scanOrganization(ctx, orgID, expiring, expired, done); err != nil {
			errs = append(errs, err)
		}
	}
	// Remember what went out, and forget tokens no longer in a window, so
	// later scans touch the store only for new candidates.
	d.mu.Lock()
	d.noticed = done
	d.mu.Unlock()
	return errors.Join(errs...)
}

func (d *Dispatcher) scanOrganization(ctx context.Context, orgID string, expiring, expired []*keygate.Webhook, done map[notice]bool) error {
	tokens, err := d.store.ListTokens(ctx, keygate.TokenFilter{OrganizationID: orgID})
	if err != nil {
		return err
	}
	now := d.now()
	var org *keygate.Organization
	for _, tok := range tokens {
		if tok.ExpiresAt == nil || tok.RevokedAt != nil {
			continue
		}
		var event string
		var targets []*keygate.Webhook
		switch until := tok.ExpiresAt.Sub(now); {
		case until <= 0 && -until <= d.lookback && len(expired) > 0:
			event, targets = keygate.EventTokenExpired, createdBy(expired, *tok.ExpiresAt)
		case until > 0 && until <= keygate.TokenExpiringWindow && len(expiring) > 0:
			event, targets = keygate.EventTokenExpiring, expiring
		default:
			continue
		}
		key := notice{tok.ID, event}
		if d.wasNoticed(key) {
			done[key] = true
			continue
		}
		if org == nil {
			if org, err = d.store.FindOrganizationByID(ctx, orgID); err != nil {
				return err
			}
		}
		switch err := d.sendNotice(ctx, tok, org, event, targets); keygate.ErrorCode(err) {
		case "", keygate.ECONFLICT: // sent now, or already by someone
			done[key] = true
		default:
			return err
		}
	}
	return nil
}

func (d *Dispatcher) wasNoticed(key notice) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.noticed[key]
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
		d.wakeWorkers()
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
