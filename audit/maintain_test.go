package audit_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/sqlite"
)

// countingStore counts the tokens the store hands the scan.
type countingStore struct {
	*sqlite.Store
	mu   sync.Mutex
	read int
}

func (c *countingStore) ListTokensForNotice(ctx context.Context, q keygate.TokenNoticeQuery) ([]*keygate.Token, error) {
	toks, err := c.Store.ListTokensForNotice(ctx, q)
	c.mu.Lock()
	c.read += len(toks)
	c.mu.Unlock()
	return toks, err
}

// TestExpiriesAreRecordedOnceAndIncrementally runs the expiry scan of two
// instances on one database, twice: each token that expired within the
// last 7 days gets one token.expired entry by the system, and the scans
// read only those tokens, once.
func TestExpiriesAreRecordedOnceAndIncrementally(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "keygate.db")
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	open := func() *countingStore {
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return &countingStore{Store: s}
	}
	a, b := open(), open()
	org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free", CreatedAt: now.Add(-100 * 24 * time.Hour)}
	if err := a.CreateOrganization(ctx, org); err != nil {
		t.Fatal(err)
	}
	token := func(name string, expires *time.Time) *keygate.Token {
		tok, _, err := keygate.NewToken(keygate.TokenPolicy{BasePrefix: "cm_", AllowNever: true},
			keygate.TokenRequest{OrganizationID: org.ID, API: "cannmenus", Name: name, Expiry: keygate.ExpiryNever, CreatedBy: "usr_1"},
			now.Add(-60*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		tok.ExpiresAt = expires
		if err := a.CreateToken(ctx, tok, 0); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	expired := token("expired an hour ago", at(-time.Hour))
	token("expired ten days ago", at(-10*24*time.Hour))
	token("expires tomorrow", at(24*time.Hour))
	for i := range 20 {
		token("never expires "+string(rune('a'+i)), nil)
	}
	revoked := token("revoked, expired yesterday", at(-24*time.Hour))
	if err := a.RevokeToken(ctx, revoked.ID, now.Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}

	maintainer := func(s *countingStore) *audit.Maintainer {
		return &audit.Maintainer{Store: s, Log: &audit.Log{Store: s, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }},
			Now: func() time.Time { return now }}
	}
	ma, mb := maintainer(a), maintainer(b)
	var wg sync.WaitGroup
	for _, m := range []*audit.Maintainer{ma, mb, ma, mb} {
		wg.Go(func() {
			if err := m.RecordExpiries(ctx); err != nil {
				t.Errorf("RecordExpiries: %v", err)
			}
		})
	}
	wg.Wait()
	entries, err := a.ListAuditEntries(ctx, keygate.AuditFilter{Action: keygate.AuditTokenExpired})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].TargetID != expired.ID || entries[0].Actor.Type != keygate.ActorSystem {
		t.Fatalf("token.expired entries %+v, want one for %s by the system", entries, expired.ID)
	}
	// Once recorded, the token is no longer read by any scan.
	a.read, b.read = 0, 0
	if err := ma.RecordExpiries(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mb.RecordExpiries(ctx); err != nil {
		t.Fatal(err)
	}
	if a.read+b.read != 0 {
		t.Errorf("scans after the expiry was recorded read %d tokens, want 0", a.read+b.read)
	}
}

// TestEmailSettingsChangesAreAudited: turning an email kind off is a
// settings.changed entry with the kinds before and after; saving the same
// choice again is none.
func TestEmailSettingsChangesAreAudited(t *testing.T) {
	ctx := t.Context()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	store := audit.Wrap(s, &audit.Log{Store: s, Logger: slog.New(slog.DiscardHandler)})
	org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free"}
	if err := s.CreateOrganization(ctx, org); err != nil {
		t.Fatal(err)
	}
	ctx = keygate.WithActor(ctx, keygate.Actor{Type: keygate.ActorUser, ID: "usr_ann", Name: "ann@acme.test"})
	for range 2 {
		if err := store.UpdateEmailSettings(ctx, &keygate.EmailSettings{OrganizationID: org.ID, Disabled: []string{keygate.EmailTokenCreated}}); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := s.ListAuditEntries(ctx, keygate.AuditFilter{Action: keygate.AuditSettingsChanged})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Actor.Name != "ann@acme.test" ||
		string(entries[0].Details) != `{"emails_disabled":{"from":[],"to":["token.created"]}}` {
		t.Fatalf("entries %+v", entries)
	}
}
