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

// tokenEvents are the once-per-token events: each goes out at most once per
// token, whichever instance or path notices it first.
var tokenEvents = []string{keygate.EventTokenCreated, keygate.EventTokenDeleted, keygate.EventTokenExpiring, keygate.EventTokenExpired}

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
// Only organizations with an enabled endpoint for one of these events are
// scanned; deleted tokens get no expiry events. Each event goes only to
// endpoints that existed when it happened, so a new endpoint does not
// receive old news.
func (d *Dispatcher) ScanTokens(ctx context.Context) error {
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
		targets := map[string][]*keygate.Webhook{}
		for _, event := range tokenEvents {
			if s := subscribed(hooks, event); len(s) > 0 {
				targets[event] = s
			}
		}
		if len(targets) == 0 {
			continue
		}
		if err := d.scanOrganization(ctx, orgID, targets, done); err != nil {
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

func (d *Dispatcher) scanOrganization(ctx context.Context, orgID string, targets map[string][]*keygate.Webhook, done map[notice]bool) error {
	tokens, err := d.store.ListTokens(ctx, keygate.TokenFilter{OrganizationID: orgID, IncludeRevoked: true})
	if err != nil {
		return err
	}
	now := d.now()
	var org *keygate.Organization
	for _, tok := range tokens {
		for event, at := range d.dueEvents(tok, now) {
			hooks := createdBy(targets[event], at)
			if len(hooks) == 0 {
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
			switch err := d.sendNotice(ctx, tok, org, event, hooks); keygate.ErrorCode(err) {
			case "", keygate.ECONFLICT: // sent now, or already by someone
				done[key] = true
			default:
				return err
			}
		}
	}
	return nil
}

// dueEvents returns the once-per-token events due for tok at now, each with
// the moment it happened (or, for token.expiring, now).
func (d *Dispatcher) dueEvents(tok *keygate.Token, now time.Time) map[string]time.Time {
	due := map[string]time.Time{}
	if now.Sub(tok.CreatedAt) <= d.lookback {
		due[keygate.EventTokenCreated] = tok.CreatedAt
	}
	if tok.RevokedAt != nil {
		if now.Sub(*tok.RevokedAt) <= d.lookback {
			due[keygate.EventTokenDeleted] = *tok.RevokedAt
		}
		return due
	}
	if tok.ExpiresAt == nil {
		return due
	}
	switch until := tok.ExpiresAt.Sub(now); {
	case until <= 0 && -until <= d.lookback:
		due[keygate.EventTokenExpired] = *tok.ExpiresAt
	case until > 0 && until <= keygate.TokenExpiringWindow:
		due[keygate.EventTokenExpiring] = now
	}
	return due
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
