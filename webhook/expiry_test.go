package webhook_test

import (
	"context"
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/sqlite"
	"github.com/keygate/keygate/webhook"
)

const day = 24 * time.Hour

// noticesSent returns "event token-name" for each delivery in the log to
// the endpoint, sorted.
func noticesSent(t *testing.T, f *fixture, w *keygate.Webhook) []string {
	t.Helper()
	var out []string
	for _, d := range f.deliveries(keygate.WebhookDeliveryFilter{WebhookID: w.ID}) {
		var m struct {
			Type string
			Data webhook.TokenData
		}
		if err := json.Unmarshal(d.Payload, &m); err != nil {
			t.Fatal(err)
		}
		if m.Type != d.Event {
			t.Errorf("delivery %s: event %s, body type %s", d.ID, d.Event, m.Type)
		}
		out = append(out, m.Type+" "+m.Data.Name)
	}
	sort.Strings(out)
	return out
}

func equalStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %q, want %q", what, got, want)
		return
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("%s: got %q, want %q", what, got, want)
			return
		}
	}
}

func TestExpiryScannerEmitsOncePerToken(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t, f.clock.Now)
	both := f.endpointAt(r, f.clock.Now().Add(-60*day), keygate.EventTokenExpiring, keygate.EventTokenExpired)
	createdOnly := f.endpoint(newReceiver(t, f.clock.Now), keygate.EventTokenCreated)

	now := f.clock.Now()
	soon, _ := f.token("expires in 3 days", ptr(now.Add(3*day)))
	f.token("expires in 30 days", ptr(now.Add(30*day)))
	f.token("expired an hour ago", ptr(now.Add(-time.Hour)))
	f.token("expired 30 days ago", ptr(now.Add(-30*day)))
	f.token("never expires", nil)
	deleted, _ := f.token("deleted, expires in 2 days", ptr(now.Add(2*day)))
	if err := f.store.RevokeToken(f.ctx, deleted.ID, now.Add(-day)); err != nil {
		t.Fatal(err)
	}

	if err := f.d.ScanTokens(f.ctx); err != nil {
		t.Fatalf("ScanTokens: %v", err)
	}
	equalStrings(t, "first scan", noticesSent(t, f, both), []string{
		"token.expired expired an hour ago",
		"token.expiring expires in 3 days",
	})
	equalStrings(t, "endpoint for token.created only", noticesSent(t, f, createdOnly), nil)

	// Again, from this instance and from another on the same database.
	if err := f.d.ScanTokens(f.ctx); err != nil {
		t.Fatal(err)
	}
	other := f.dispatcher(f.open())
	if err := other.ScanTokens(f.ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(noticesSent(t, f, both)); n != 2 {
		t.Errorf("after scanning three times %d notices, want 2", n)
	}

	// Delivered, they carry the token's description and verify.
	f.deliverDue()
	got := r.requests()
	if len(got) != 2 {
		t.Fatalf("receiver got %d requests, want 2", len(got))
	}
	for _, req := range got {
		if req.verifyErr != nil {
			t.Errorf("notice does not verify: %v", req.verifyErr)
		}
		var m struct {
			Type string
			Data webhook.TokenData
		}
		json.Unmarshal(req.body, &m)
		if m.Type == keygate.EventTokenExpiring && (m.Data.ID != soon.ID || m.Data.Hint != soon.Hint ||
			m.Data.ExpiresAt == nil || !m.Data.ExpiresAt.Equal(*soon.ExpiresAt) || m.Data.Organization.Slug != "acme") {
			t.Errorf("token.expiring data %+v", m.Data)
		}
	}

	// Six days on, the 30-day token is still out of the window; the 3-day
	// one has expired.
	f.clock.Advance(6 * day)
	if err := f.d.ScanTokens(f.ctx); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "six days later", noticesSent(t, f, both), []string{
		"token.expired expired an hour ago",
		"token.expired expires in 3 days",
		"token.expiring expires in 3 days",
	})
	f.clock.Advance(17 * day)
	if err := other.ScanTokens(f.ctx); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "23 days later", noticesSent(t, f, both), []string{
		"token.expired expired an hour ago",
		"token.expired expires in 3 days",
		"token.expiring expires in 3 days",
		"token.expiring expires in 30 days",
	})
}

// TestExpiredGoesOnlyToEndpointsThatExisted adds an endpoint after a token
// expired: it gets no news of that expiry, but does hear of tokens about
// to expire.
func TestExpiredGoesOnlyToEndpointsThatExisted(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	f.token("expired two hours ago", ptr(now.Add(-2*time.Hour)))
	f.token("expires tomorrow", ptr(now.Add(day)))
	late := f.endpoint(newReceiver(t, f.clock.Now)) // created an hour ago: after the expiry
	if err := f.d.ScanTokens(f.ctx); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "new endpoint", noticesSent(t, f, late), []string{"token.expiring expires tomorrow"})
}

// TestScannerWaitsForSubscribers leaves organizations without a subscribed
// endpoint alone, so that a later subscriber still hears of tokens within
// the window.
func TestScannerWaitsForSubscribers(t *testing.T) {
	f := newFixture(t)
	f.token("expires in 5 days", ptr(f.clock.Now().Add(5*day)))
	off := f.endpoint(newReceiver(t, f.clock.Now), keygate.EventTokenExpiring)
	off.Disabled = true
	if err := f.store.UpdateWebhook(f.ctx, off); err != nil {
		t.Fatal(err)
	}
	if err := f.d.ScanTokens(f.ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(f.deliveries(keygate.WebhookDeliveryFilter{})); n != 0 {
		t.Fatalf("%d deliveries with only a disabled endpoint, want 0", n)
	}
	off.Disabled = false
	if err := f.store.UpdateWebhook(f.ctx, off); err != nil {
		t.Fatal(err)
	}
	if err := f.d.ScanTokens(f.ctx); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "once enabled", noticesSent(t, f, off), []string{"token.expiring expires in 5 days"})
}

// token.created and token.deleted go out once per token: EmitToken sends
// them at once, and the scan sends those an instance stopped before
// sending, to the endpoints that existed when they happened.
func TestCreatedAndDeletedGoOutOnceEvenAfterACrash(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t, f.clock.Now)
	f.endpoint(r, keygate.EventTokenCreated, keygate.EventTokenDeleted)
	now := f.clock.Now()
	recent := func(name string) *keygate.Token {
		tok, _, err := keygate.NewToken(keygate.TokenPolicy{BasePrefix: "cm_", AllowNever: true},
			keygate.TokenRequest{OrganizationID: f.org.ID, API: "cannmenus", Name: name, Expiry: keygate.ExpiryNever}, now.Add(-time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.store.CreateToken(f.ctx, tok, 0); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	sent := recent("sent at once")
	if err := f.d.EmitToken(f.ctx, keygate.EventTokenCreated, sent, f.org); err != nil {
		t.Fatal(err)
	}
	if err := f.d.EmitToken(f.ctx, keygate.EventTokenCreated, sent, f.org); err != nil {
		t.Fatal(err)
	}
	lost := recent("created by an instance that stopped before sending")
	revoked := recent("deleted by an instance that stopped before sending")
	if err := f.store.RevokeToken(f.ctx, revoked.ID, now); err != nil {
		t.Fatal(err)
	}
	late := f.endpointAt(newReceiver(t, f.clock.Now), now.Add(time.Second), keygate.EventTokenCreated)

	if err := f.d.ScanTokens(f.ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.dispatcher(f.open()).ScanTokens(f.ctx); err != nil {
		t.Fatal(err)
	}
	equalStrings(t, "notices", noticesSent(t, f, f.endpointsOf(t)[0]), []string{
		"token.created " + lost.Name,
		"token.created " + revoked.Name,
		"token.created " + sent.Name,
		"token.deleted " + revoked.Name,
	})
	equalStrings(t, "endpoint added after the events", noticesSent(t, f, late), nil)
}

func (f *fixture) endpointsOf(t *testing.T) []*keygate.Webhook {
	t.Helper()
	hooks, err := f.store.ListWebhooks(f.ctx, f.org.ID)
	if err != nil {
		t.Fatal(err)
	}
	return hooks
}

// countingStore counts the tokens the store hands the scan, and fails the
// test if the scan lists every token.
type countingStore struct {
	*sqlite.Store
	t    *testing.T
	read int
}

func (c *countingStore) ListTokensForNotice(ctx context.Context, q keygate.TokenNoticeQuery) ([]*keygate.Token, error) {
	toks, err := c.Store.ListTokensForNotice(ctx, q)
	c.read += len(toks)
	return toks, err
}

func (c *countingStore) ListTokens(ctx context.Context, f keygate.TokenFilter) ([]*keygate.Token, error) {
	c.t.Error("the scan listed every token")
	return c.Store.ListTokens(ctx, f)
}

// TestScanReadsOnlyNewCandidates: a scan reads the tokens with an event
// due and no notice yet, not the organization's other tokens; once the
// notices are recorded, scans on any instance read none.
func TestScanReadsOnlyNewCandidates(t *testing.T) {
	f := newFixture(t)
	f.endpointAt(newReceiver(t, f.clock.Now), f.clock.Now().Add(-200*day))
	now := f.clock.Now()
	for range 30 {
		f.token("old and never expiring", nil)
	}
	f.token("expires in 3 days", ptr(now.Add(3*day)))
	f.token("expired an hour ago", ptr(now.Add(-time.Hour)))
	a := &countingStore{Store: f.store, t: t}
	b := &countingStore{Store: f.open(), t: t}
	if err := f.dispatcher(a).ScanTokens(f.ctx); err != nil {
		t.Fatal(err)
	}
	if a.read != 2 {
		t.Errorf("the first scan read %d tokens, want the 2 with an event due", a.read)
	}
	a.read = 0
	for _, s := range []*countingStore{a, b} {
		if err := f.dispatcher(s).ScanTokens(f.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if a.read+b.read != 0 {
		t.Errorf("later scans read %d tokens, want 0", a.read+b.read)
	}
	equalStrings(t, "notices", noticesSent(t, f, f.endpointsOf(t)[0]), []string{
		"token.expired expired an hour ago",
		"token.expiring expires in 3 days",
	})
}
