package audit

import (
	"context"
	"time"

	"github.com/keygate/keygate"
)

// Maintainer records token expiries and purges entries past the retention
// period. Every instance runs one; each expiry is recorded once across
// them.
type Maintainer struct {
	Store interface {
		keygate.AuditLog
		ListTokensForNotice(ctx context.Context, q keygate.TokenNoticeQuery) ([]*keygate.Token, error)
		EnqueueTokenNotice(ctx context.Context, n *keygate.TokenNotice, deliveries []*keygate.WebhookDelivery) error
	}
	Log       *Log
	Retention time.Duration // 0: DefaultRetention
	Now       func() time.Time
}

// expiryNotice marks a token's expiry as recorded in the audit log, in the
// same once-per-token bookkeeping as the token.expired webhook.
const expiryNotice = keygate.AuditEventPrefix + keygate.AuditTokenExpired

// expiryLookback is how long after a token expired its entry may still be
// written, e.g. when keygate was down at the time.
const expiryLookback = 7 * 24 * time.Hour

// Run scans for expiries every minute and purges every hour until ctx ends.
func (m *Maintainer) Run(ctx context.Context) {
	scan := time.NewTicker(time.Minute)
	defer scan.Stop()
	purge := time.NewTicker(time.Hour)
	defer purge.Stop()
	m.purge(ctx)
	for {
		if err := m.RecordExpiries(ctx); err != nil && ctx.Err() == nil {
			m.Log.logger().Error("audit: token expiry scan failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-scan.C:
		case <-purge.C:
			m.purge(ctx)
		}
	}
}

func (m *Maintainer) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Maintainer) purge(ctx context.Context) {
	retention := m.Retention
	if retention <= 0 {
		retention = DefaultRetention
	}
	n, err := m.Store.PurgeAuditEntries(ctx, m.now().Add(-retention))
	switch {
	case err != nil && ctx.Err() == nil:
		m.Log.logger().Error("audit: purging old entries failed", "error", err)
	case n > 0:
		m.Log.logger().Info("audit: purged entries past the retention period", "entries", n, "retention", retention.String())
	}
}

// RecordExpiries writes token.expired, by the system, for every token that
// expired within the last 7 days and has no such entry yet. It reads only
// tokens in that window without the entry's notice, a page at a time, and
// claims each in the store before writing, so every instance can run it
// and each expiry is recorded once.
func (m *Maintainer) RecordExpiries(ctx context.Context) error {
	now := m.now()
	ctx = keygate.WithActor(ctx, keygate.Actor{Type: keygate.ActorSystem})
	q := keygate.TokenNoticeQuery{Event: expiryNotice, Field: keygate.TokenExpiresAt, From: now.Add(-expiryLookback), To: now}
	return keygate.EachTokenForNotice(ctx, m.Store, q, func(tok *keygate.Token) error {
		err := m.Store.EnqueueTokenNotice(ctx, &keygate.TokenNotice{TokenID: tok.ID, Event: expiryNotice, CreatedAt: now}, nil)
		switch keygate.ErrorCode(err) {
		case "":
			m.Log.Record(ctx, keygate.AuditTokenExpired, tok.OrganizationID, tok.ID, tokenDetails(tok))
		case keygate.ECONFLICT: // another instance recorded it
		default:
			return err
		}
		return nil
	})
}
