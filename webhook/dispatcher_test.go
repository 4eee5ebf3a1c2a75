package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/logtest"
	"github.com/keygate/keygate/sqlite"
	"github.com/keygate/keygate/webhook"
)

// start is the test clock's first reading.
var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a test clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// received is one request as the receiver saw it.
type received struct {
	header    http.Header
	body      []byte
	verifyErr error
}

// receiver is a webhook endpoint that verifies every request with
// webhook.VerifyAt against its clock and answers with the statuses it is
// given, in order (the last one repeats; 204 when none).
type receiver struct {
	srv   *httptest.Server
	clock func() time.Time

	mu       sync.Mutex
	secret   string
	statuses []int
	header   http.Header // added to every answer
	body     string      // every answer's body
	delay    time.Duration
	got      []received
}

func newReceiver(t *testing.T, clock func() time.Time, statuses ...int) *receiver {
	r := &receiver{clock: clock, statuses: statuses, header: http.Header{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	err := webhook.VerifyAt(r.secret, req.Header, body, r.clock(), 0)
	r.got = append(r.got, received{header: req.Header.Clone(), body: body, verifyErr: err})
	status := http.StatusNoContent
	if n := len(r.statuses); n > 0 {
		status = r.statuses[min(len(r.got), n)-1]
	}
	for k, v := range r.header {
		w.Header()[k] = v
	}
	delay, answer := r.delay, r.body
	r.mu.Unlock()
	time.Sleep(delay)
	w.WriteHeader(status)
	io.WriteString(w, answer)
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// fixture is a real SQLite store with one organization, a test clock and
// a dispatcher that may reach loopback receivers.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	path  string
	store *sqlite.Store
	clock *clock
	org   *keygate.Organization
	d     *webhook.Dispatcher
}

func newFixture(t *testing.T, opts ...func(*webhook.Options)) *fixture {
	f := &fixture{t: t, ctx: t.Context(), path: filepath.Join(t.TempDir(), "keygate.db"), clock: &clock{t: start}}
	f.store = f.open()
	f.org = &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "pro", CreatedAt: start.Add(-24 * time.Hour)}
	if err := f.store.CreateOrganization(f.ctx, f.org); err != nil {
		t.Fatal(err)
	}
	f.d = f.dispatcher(f.store, opts...)
	return f
}

// open returns another handle on the fixture's database, as another
// instance would have.
func (f *fixture) open() *sqlite.Store {
	s, err := sqlite.Open(context.Background(), f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { s.Close() })
	return s
}

// dispatcher returns a dispatcher on store with the fixture's clock, a
// jitter of exactly zero (Random 0.5) and loopback allowed.
func (f *fixture) dispatcher(store webhook.Store, opts ...func(*webhook.Options)) *webhook.Dispatcher {
	o := webhook.Options{
		Logger:                slog.New(slog.DiscardHandler),
		AllowPrivateAddresses: true,
		Now:                   f.clock.Now,
		Random:                func() float64 { return 0.5 },
	}
	for _, opt := range opts {
		opt(&o)
	}
	return webhook.New(store, o)
}

// endpoint stores an endpoint of the organization for the receiver, created
// an hour before the clock, and gives the receiver its secret.
func (f *fixture) endpoint(r *receiver, events ...string) *keygate.Webhook {
	f.t.Helper()
	return f.endpointAt(r, f.clock.Now().Add(-time.Hour), events...)
}

// endpointAt is endpoint created at the given time.
func (f *fixture) endpointAt(r *receiver, createdAt time.Time, events ...string) *keygate.Webhook {
	f.t.Helper()
	w, err := keygate.NewWebhook(keygate.WebhookRequest{OrganizationID: f.org.ID, URL: r.srv.URL + "/hooks/keygate?key=receiver-secret", Events: events},
		createdAt)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.store.CreateWebhook(f.ctx, w, 0); err != nil {
		f.t.Fatal(err)
	}
	r.mu.Lock()
	r.secret = w.Secret
	r.mu.Unlock()
	return w
}

// token creates a real token of the organization expiring at expires (nil:
// never) and returns it with its secret.
// newToken makes a token of the fixture's organization without storing it.
func (f *fixture) newToken(name string) *keygate.Token {
	f.t.Helper()
	tok, _, err := keygate.NewToken(keygate.TokenPolicy{BasePrefix: "cm_", AllowNever: true},
		keygate.TokenRequest{OrganizationID: f.org.ID, API: "cannmenus", Name: name, Scopes: []string{"products:read"},
			Expiry: keygate.ExpiryNever, CreatedBy: "usr_1"}, f.clock.Now().Add(-100*24*time.Hour))
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

func (f *fixture) token(name string, expires *time.Time) (*keygate.Token, string) {
	f.t.Helper()
	tok, secret, err := keygate.NewToken(keygate.TokenPolicy{BasePrefix: "cm_", AllowNever: true},
		keygate.TokenRequest{OrganizationID: f.org.ID, API: "cannmenus", Name: name, Scopes: []string{"products:read"},
			Expiry: keygate.ExpiryNever, CreatedBy: "usr_1"}, f.clock.Now().Add(-100*24*time.Hour))
	if err != nil {
		f.t.Fatal(err)
	}
	tok.ExpiresAt = expires
	if err := f.store.CreateToken(f.ctx, tok, 0); err != nil {
		f.t.Fatal(err)
	}
	return tok, secret
}

func (f *fixture) deliverDue() int {
	f.t.Helper()
	n, err := f.d.DeliverDue(f.ctx)
	if err != nil {
		f.t.Fatalf("DeliverDue: %v", err)
	}
	return n
}

func (f *fixture) deliveries(filter keygate.WebhookDeliveryFilter) []*keygate.WebhookDelivery {
	f.t.Helper()
	list, err := f.store.ListWebhookDeliveries(f.ctx, filter)
	if err != nil {
		f.t.Fatal(err)
	}
	return list
}

func (f *fixture) delivery(id string) *keygate.WebhookDelivery {
	f.t.Helper()
	d, err := f.store.FindWebhookDelivery(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

// only returns the single delivery in the log.
func (f *fixture) only() *keygate.WebhookDelivery {
	f.t.Helper()
	list := f.deliveries(keygate.WebhookDeliveryFilter{})
	if len(list) != 1 {
		f.t.Fatalf("%d deliveries in the log, want 1", len(list))
	}
	return list[0]
}

func ptr(t time.Time) *time.Time { return &t }

func TestEmitDeliversSignedStandardWebhook(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t, f.clock.Now)
	f.endpoint(r)
	expires := start.Add(90 * 24 * time.Hour)
	tok, secret := f.token("CI deploys", &expires)

	if err := f.d.EmitToken(f.ctx, keygate.EventTokenCreated, tok, f.org); err != nil {
		t.Fatalf("EmitToken: %v", err)
	}
	if n := f.deliverDue(); n != 1 {
		t.Fatalf("DeliverDue made %d attempts, want 1", n)
	}
	got := r.requests()
	if len(got) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(got))
	}
	req := got[0]
	if req.verifyErr != nil {
		t.Errorf("the receiver's Verify refused the delivery: %v", req.verifyErr)
	}
	want := `{"type":"token.created","timestamp":"2026-03-01T12:00:00Z","data":{` +
		`"id":"` + tok.ID + `","name":"CI deploys","hint":"` + tok.Hint + `","api":"cannmenus","environment":"live",` +
		`"scopes":["products:read"],"created_at":"2025-11-21T12:00:00Z","expires_at":"2026-05-30T12:00:00Z",` +
		`"organization":{"id":"` + f.org.ID + `","slug":"acme"}}}`
	if string(req.body) != want {
		t.Errorf("body:\n got %s\nwant %s", req.body, want)
	}
	if strings.Contains(string(req.body), secret) || strings.Contains(string(req.body), secret[len(secret)-12:]) {
		t.Error("the body contains the token's secret")
	}
	d := f.only()
	for name, want := range map[string]string{
		"Content-Type":      "application/json",
		"Webhook-Id":        d.ID,
		"Webhook-Timestamp": "1772366400",
	} {
		if v := req.header.Get(name); v != want {
			t.Errorf("%s = %q, want %q", name, v, want)
		}
	}
	if !strings.HasPrefix(req.header.Get("Webhook-Signature"), "v1,") {
		t.Errorf("Webhook-Signature = %q, want v1,…", req.header.Get("Webhook-Signature"))
	}
	if d.State != keygate.DeliveryDelivered || d.Attempts != 1 || d.LastStatus != 204 || d.LastError != "" ||
		d.DeliveredAt == nil || d.NextAttemptAt != nil || string(d.Payload) != want {
		t.Errorf("log entry: %+v", d)
	}
}

func TestEmitReachesOnlySubscribedEnabledEndpoints(t *testing.T) {
	f := newFixture(t)
	all, created, deleted, off, other := newReceiver(t, f.clock.Now), newReceiver(t, f.clock.Now),
		newReceiver(t, f.clock.Now), newReceiver(t, f.clock.Now), newReceiver(t, f.clock.Now)
	f.endpoint(all)
	f.endpoint(created, keygate.EventTokenCreated)
	f.endpoint(deleted, keygate.EventTokenDeleted)
	disabled := f.endpoint(off)
	disabled.Disabled = true
	if err := f.store.UpdateWebhook(f.ctx, disabled); err != nil {
		t.Fatal(err)
	}
	otherOrg := &keygate.Organization{Slug: "other", Name: "Other", Plan: "free"}
	if err := f.store.CreateOrganization(f.ctx, otherOrg); err != nil {
		t.Fatal(err)
	}
	w, _ := keygate.NewWebhook(keygate.WebhookRequest{OrganizationID: otherOrg.ID, URL: other.srv.URL}, start)
	if err := f.store.CreateWebhook(f.ctx, w, 0); err != nil {
		t.Fatal(err)
	}

	tok, _ := f.token("one", nil)
	if err := f.d.EmitToken(f.ctx, keygate.EventTokenCreated, tok, nil); err != nil {
		t.Fatal(err)
	}
	f.deliverDue()
	for name, tt := range map[string]struct {
		r    *receiver
		want int
	}{"every event": {all, 1}, "token.created": {created, 1}, "token.deleted only": {deleted, 0},
		"disabled": {off, 0}, "another organization's": {other, 0}} {
		if n := len(tt.r.requests()); n != tt.want {
			t.Errorf("%s endpoint got %d requests, want %d", name, n, tt.want)
		}
	}

	if err := f.d.EmitToken(f.ctx, keygate.EventTokenDeleted, tok, nil); err != nil {
		t.Fatal(err)
	}
	f.deliverDue()
	got := deleted.requests()
	if len(got) != 1 {
		t.Fatalf("token.deleted endpoint got %d requests, want 1", len(got))
	}
	var m struct {
		Type string
		Data webhook.TokenData
	}
	if err := json.Unmarshal(got[0].body, &m); err != nil {
		t.Fatal(err)
	}
	if m.Type != "token.deleted" || m.Data.DeletedAt == nil || !m.Data.DeletedAt.Equal(start) {
		t.Errorf("token.deleted message: type %q deleted_at %v, want token.deleted at %v", m.Type, m.Data.DeletedAt, start)
	}
}

func TestEmitRefusesUnknownEvent(t *testing.T) {
	f := newFixture(t)
	for _, event := range []string{"token.updated", keygate.EventWebhookTest, ""} {
		if err := f.d.Emit(f.ctx, f.org.ID, event, nil); keygate.ErrorCode(err) != keygate.EINVALID {
			t.Errorf("Emit(%q) = %v, want EINVALID", event, err)
		}
	}
}

func TestRetriesOn500ThenSucceeds(t *testing.T) {
	var outcomes []string
	f := newFixture(t, func(o *webhook.Options) {
		o.OnAttempt = func(event string, a *keygate.WebhookAttempt) {
			outcomes = append(outcomes, event+" "+a.Error)
		}
	})
	r := newReceiver(t, f.clock.Now, 500, 500, 200)
	r.body = `{"error":"database down"}`
	f.endpoint(r)
	tok, _ := f.token("one", nil)
	if err := f.d.EmitToken(f.ctx, keygate.EventTokenCreated, tok, f.org); err != nil {
		t.Fatal(err)
	}

	f.deliverDue()
	d := f.only()
	if d.State != keygate.DeliveryPending || d.Attempts != 1 || d.LastStatus != 500 || d.LastError != "HTTP 500" ||
		d.LastResponse != `{"error":"database down"}` {
		t.Fatalf("after the first 500: %+v", d)
	}
	if want := start.Add(5 * time.Second); d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(want) {
		t.Fatalf("first retry at %v, want %v", d.NextAttemptAt, want)
	}
	f.clock.Advance(4 * time.Second)
	if n := f.deliverDue(); n != 0 {
		t.Fatalf("%d attempts before the retry was due", n)
	}
	f.clock.Advance(time.Second)
	f.deliverDue()
	if d = f.delivery(d.ID); d.Attempts != 2 || !d.NextAttemptAt.Equal(start.Add(35*time.Second)) {
		t.Fatalf("after the second 500: attempts %d, next %v; want 2, start+35s", d.Attempts, d.NextAttemptAt)
	}
	f.clock.Advance(30 * time.Second)
	f.deliverDue()
	d = f.delivery(d.ID)
	if d.State != keygate.DeliveryDelivered || d.Attempts != 3 || d.LastStatus != 200 || d.LastError != "" ||
		!d.DeliveredAt.Equal(start.Add(35*time.Second)) {
		t.Errorf("after the 200: %+v", d)
	}

	got := r.requests()
	if len(got) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(got))
	}
	for i, req := range got {
		if req.verifyErr != nil {
			t.Errorf("attempt %d does not verify: %v", i+1, req.verifyErr)
		}
		if id := req.header.Get("webhook-id"); id != d.ID {
			t.Errorf("attempt %d webhook-id %q, want the delivery's %q every time", i+1, id, d.ID)
		}
		if string(req.body) != string(got[0].body) {
			t.Errorf("attempt %d body differs from the first", i+1)
		}
	}
	if got[0].header.Get("webhook-timestamp") == got[2].header.Get("webhook-timestamp") {
		t.Error("retries carry the first attempt's timestamp; each attempt signs its own")
	}
	attempts, err := f.store.ListWebhookAttempts(f.ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	var statuses []int
	for _, a := range attempts {
		statuses = append(statuses, a.Status)
	}
	if len(statuses) != 3 || statuses[0] != 500 || statuses[1] != 500 || statuses[2] != 200 {
		t.Errorf("attempt log statuses %v, want [500 500 200]", statuses)
	}
	if want := []string{"token.created HTTP 500", "token.created HTTP 500", "token.created "}; strings.Join(outcomes, "|") != strings.Join(want, "|") {
		t.Errorf("OnAttempt saw %q, want %q", outcomes, want)
	}
}

// failUntilGivenUp delivers one event to an endpoint that always answers
// 500, moving the clock to each retry, and returns the delays between
// attempts.
func failUntilGivenUp(t *testing.T, random float64) ([]time.Duration, *fixture, *receiver) {
	f := newFixture(t, func(o *webhook.Options) { o.Random = func() float64 { return random } })
	r := newReceiver(t, f.clock.Now, 500)
	f.endpoint(r)
	tok, _ := f.token("one", nil)
	if err := f.d.EmitToken(f.ctx, keygate.EventTokenCreated, tok, f.org); err != nil {
		t.Fatal(err)
	}
	var delays []time.Duration
	for range 20 {
		last := f.clock.Now()
		f.deliverDue()
		d := f.only()
		if d.NextAttemptAt == nil {
			break
		}
		delays = append(delays, d.NextAttemptAt.Sub(last))
		f.clock.Set(*d.NextAttemptAt)
	}
	return delays, f, r
}

func TestBackoffSchedule(t *testing.T) {
	for _, tt := range []struct {
		random float64
		factor float64
	}{{0.5, 1}, {0, 0.8}, {0.999999, 1.2}} {
		delays, _, _ := failUntilGivenUp(t, tt.random)
		if len(delays) != len(webhook.DefaultRetries) {
			t.Fatalf("random %v: %d retries, want %d", tt.random, len(delays), len(webhook.DefaultRetries))
		}
		for i, got := range delays {
			want := time.Duration(float64(webhook.DefaultRetries[i]) * tt.factor)
			if diff := (got - want).Abs(); diff > want/10000+time.Millisecond {
				t.Errorf("random %v: delay %d = %v, want %v", tt.random, i+1, got, want)
			}
		}
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	_, f, r := failUntilGivenUp(t, 0.5)
	d := f.only()
	if d.State != keygate.DeliveryFailed || d.Attempts != 8 || d.NextAttemptAt != nil || d.DeliveredAt != nil || d.LastError != "HTTP 500" {
		t.Errorf("given up delivery: %+v", d)
	}
	if n := len(r.requests()); n != 8 || f.d.MaxAttempts() != 8 {
		t.Errorf("receiver got %d requests, MaxAttempts %d; want 8 and 8", n, f.d.MaxAttempts())
	}
	f.clock.Advance(30 * 24 * time.Hour)
	if n := f.deliverDue(); n != 0 || len(r.requests()) != 8 {
		t.Errorf("a failed delivery was tried again: %d attempts", n)
	}

	// A redelivery asked for by the owner gets one more attempt.
	if err := f.store.RedeliverWebhook(f.ctx, d.ID, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	f.deliverDue()
	if d = f.delivery(d.ID); d.State != keygate.DeliveryFailed || d.Attempts != 9 || len(r.requests()) != 9 {
		t.Errorf("redelivery: state %s attempts %d requests %d; want failed, 9, 9", d.State, d.Attempts, len(r.requests()))
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t, f.clock.Now, 503)
	r.header.Set("Retry-After", "120")
	f.endpoint(r)
	tok, _ := f.token("one", nil)
	f.d.EmitToken(f.ctx, keygate.EventTokenCreated, tok, f.org)
	f.deliverDue()
	if d := f.only(); d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(start.Add(120*time.Second)) {
		t.Errorf("retry after a 503 with Retry-After: 120 at %v, want %v", d.NextAttemptAt, start.Add(120*time.Second))
	}
}

func TestGoneDisablesEndpoint(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t, f.clock.Now, http.StatusGone)
	w := f.endpoint(r)
	tok, _ := f.token("one", nil)
	f.d.EmitToken(f.ctx, keygate.EventTokenCreated, tok, f.org)
	f.deliverDue()
	if d := f.only(); d.State != keygate.DeliveryFailed || d.Attempts != 1 || d.NextAttemptAt != nil {
		t.Errorf("after 410: %+v; want failed after one attempt", d)
	}
	got, err := f.store.FindWebhook(f.ctx, w.ID)
	if err != nil || !got.Disabled {
		t.Fatalf("endpoint after 410: disabled %v, %v; want disabled", got.Disabled, err)
	}
	f.d.EmitToken(f.ctx, keygate.EventTokenDeleted, tok, f.org)
	f.deliverDue()
	if n := len(r.requests()); n != 1 {
		t.Errorf("a disabled endpoint got %d requests in all, want 1", n)
	}
}

func TestRedirectIsAFailureAndNotFollowed(t *testing.T) {
	f := newFixture(t)
	target := newReceiver(t, f.clock.Now)
	r := newReceiver(t, f.clock.Now, http.StatusFound)
	r.header.Set("Location", target.srv.URL)
	f.endpoint(r)
	tok, _ := f.token("one", nil)
	f.d.EmitToken(f.ctx, keygate.EventTokenCreated, tok, f.org)
	f.deliverDue()
	if d := f.only(); d.State != keygate.DeliveryPending || d.LastStatus != 302 || d.LastError != "HTTP 302" {
		t.Errorf("after a 302: %+v", d)
	}
	if n := len(target.requests()); n != 0 {
		t.Errorf("the redirect was followed: target got %d requests", n)
	}
}

func TestResponseBodyIsCappedInTheLog(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t, f.clock.Now, 500)
	r.body = strings.Repeat("x", 100_000)
	f.endpoint(r)
	tok, _ := f.token("one", nil)
	f.d.EmitToken(f.ctx, keygate.EventTokenCreated, tok, f.org)
	f.deliverDue()
	d := f.only()
	if d.LastResponse != strings.Repeat("x", webhook.MaxResponseExcerpt) {
		t.Errorf("logged response is %d bytes, want the first %d", len(d.LastResponse), webhook.MaxResponseExcerpt)
	}
}

// A receiver is chosen by an organization's owner; the head of its answer
// is read under egress's bound, not net/http's 10 MiB.
func TestResponseHeadIsBounded(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t, f.clock.Now)
	r.header.Set("X-Padding", strings.Repeat("x", 1<<20))
	f.endpoint(r)
	tok, _ := f.token("one", nil)
	f.d.EmitToken(f.ctx, keygate.EventTokenCreated, tok, f.org)
	f.deliverDue()
	if d := f.only(); d.State != keygate.DeliveryPending || d.LastStatus != 0 || !strings.Contains(d.LastError, "headers exceeded") {
		t.Errorf("after a 1 MiB response head: state %s status %d error %q", d.State, d.LastStatus, d.LastError)
	}
}

func TestSlowEndpointTimesOut(t *testing.T) {
	f := newFixture(t, func(o *webhook.Options) { o.Timeout = 100 * time.Millisecond })
	r := newReceiver(t, f.clock.Now)
	r.delay = 400 * time.Millisecond
	f.endpoint(r)
	tok, _ := f.token("one", nil)
	f.d.EmitToken(f.ctx, keygate.EventTokenCreated, tok, f.org)
	began := time.Now()
	f.deliverDue()
	if took := time.Since(began); took > 350*time.Millisecond {
		t.Errorf("the attempt took %v; the timeout is 100ms", took)
	}
	if d := f.only(); d.State != keygate.DeliveryPending || d.LastStatus != 0 || d.LastError != "no answer within 100ms" {
		t.Errorf("after a timeout: state %s status %d error %q", d.State, d.LastStatus, d.LastError)
	}
}

func TestPrivateAddressRefusedUnlessAllowed(t *testing.T) {
	f := newFixture(t, func(o *webhook.Options) { o.AllowPrivateAddresses = false })
	r := newReceiver(t, f.clock.Now)
	f.endpoint(r)
	tok, _ := f.token("one", nil)
	f.d.EmitToken(f.ctx, keygate.EventTokenCreated, tok, f.org)
	f.deliverDue()
	if n := len(r.requests()); n != 0 {
		t.Fatalf("a loopback endpoint got %d requests", n)
	}
	d := f.only()
	if d.State != keygate.DeliveryPending || !strings.Contains(d.LastError, "private, loopback") {
		t.Errorf("refused delivery: state %s error %q", d.State, d.LastError)
	}
	if strings.Contains(d.LastError, "receiver-secret") || strings.Contains(d.LastError, "/hooks/") {
		t.Errorf("the log's error names the URL: %q", d.LastError)
	}

	for _, u := range []string{"http://127.0.0.1:8080/x", "http://10.1.2.3/", "http://[::1]/", "http://169.254.169.254/latest",
		"http://192.168.0.10/", "http://100.64.0.1/", "http://[fd00::1]/", "http://0.0.0.0/", "http://localhost/",
		"http://[::ffff:127.0.0.1]/", "http://[fe80::1]/"} {
		if err := f.d.CheckURL(f.ctx, u); keygate.ErrorCode(err) != keygate.EINVALID {
			t.Errorf("CheckURL(%s) = %v, want EINVALID", u, err)
		}
	}
	if err := f.d.CheckURL(f.ctx, "https://93.184.215.14/hooks"); err != nil {
		t.Errorf("CheckURL of a public address: %v", err)
	}

	allowed := f.dispatcher(f.store)
	f.clock.Advance(time.Hour)
	if _, err := allowed.DeliverDue(f.ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(r.requests()); n != 1 {
		t.Errorf("with private addresses allowed the endpoint got %d requests, want 1", n)
	}
	if err := allowed.CheckURL(f.ctx, "http://127.0.0.1:8080/x"); err != nil {
		t.Errorf("CheckURL with private addresses allowed: %v", err)
	}
}

func TestSendTest(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t, f.clock.Now)
	w := f.endpoint(r, keygate.EventTokenDeleted)
	d, err := f.d.SendTest(f.ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	f.deliverDue()
	got := r.requests()
	if len(got) != 1 || got[0].verifyErr != nil {
		t.Fatalf("test event: %d requests", len(got))
	}
	if !strings.HasPrefix(string(got[0].body), `{"type":"webhook.test","timestamp":"2026-03-01T12:00:00Z","data":{"webhook_id":"`+w.ID+`"`) {
		t.Errorf("test event body %s", got[0].body)
	}
	if f.delivery(d.ID).State != keygate.DeliveryDelivered {
		t.Error("the test delivery is not marked delivered")
	}
	if _, err := f.d.SendTest(f.ctx, "whk_missing"); keygate.ErrorCode(err) != keygate.ENOTFOUND {
		t.Errorf("SendTest(unknown) = %v, want ENOTFOUND", err)
	}
}

// TestEmittedEventSurvivesRestart emits through one instance that never
// delivers, and delivers through a new one on the same file.
func TestEmittedEventSurvivesRestart(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t, f.clock.Now)
	f.endpoint(r)
	tok, _ := f.token("one", nil)
	if err := f.d.EmitToken(f.ctx, keygate.EventTokenCreated, tok, f.org); err != nil {
		t.Fatal(err)
	}
	f.store.Close()

	next := f.dispatcher(f.open())
	if _, err := next.DeliverDue(f.ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.requests(); len(got) != 1 || got[0].verifyErr != nil {
		t.Errorf("after a restart the endpoint got %d requests", len(got))
	}
}

// TestClaimOfDeadWorkerIsTakenOver claims a delivery as an instance that
// then dies; once the claim's lease runs out another instance delivers it.
func TestClaimOfDeadWorkerIsTakenOver(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t, f.clock.Now)
	f.endpoint(r)
	tok, _ := f.token("one", nil)
	f.d.EmitToken(f.ctx, keygate.EventTokenCreated, tok, f.org)
	dead := f.open()
	if claimed, err := dead.ClaimWebhookDeliveries(f.ctx, f.clock.Now(), webhook.DefaultTimeout+time.Minute, 10); err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %d, %v", len(claimed), err)
	}
	if n := f.deliverDue(); n != 0 {
		t.Fatalf("a claimed delivery was sent by another instance during the lease (%d attempts)", n)
	}
	f.clock.Advance(webhook.DefaultTimeout + time.Minute)
	f.deliverDue()
	d := f.only()
	if d.State != keygate.DeliveryDelivered || d.Attempts != 2 || len(r.requests()) != 1 {
		t.Errorf("after the lease: state %s attempts %d requests %d; want delivered, 2, 1", d.State, d.Attempts, len(r.requests()))
	}
}

// TestRunWithTwoInstancesSendsEachOnce runs two dispatchers on separate
// handles of one database, as two keygate instances, and checks that every
// event reaches the endpoint exactly once.
func TestRunWithTwoInstancesSendsEachOnce(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t, time.Now)
	r.delay = 2 * time.Millisecond
	f.endpoint(r)
	realClock := func(o *webhook.Options) { o.Now = time.Now; o.PollInterval = 20 * time.Millisecond }
	a, b := f.dispatcher(f.open(), realClock), f.dispatcher(f.open(), realClock)
	ctx, cancel := context.WithCancel(f.ctx)
	var wg sync.WaitGroup
	wg.Go(func() { a.Run(ctx) })
	wg.Go(func() { b.Run(ctx) })

	const events = 40
	for i := range events {
		emitter := a
		if i%2 == 1 {
			emitter = b
		}
		// Two dispatchers polling one SQLite file every 20 ms under the
		// race detector can keep it busy past busy_timeout; creating the
		// token and emitting are this test's setup, so they wait their
		// turn (what is tested is that each event is delivered once).
		tok := f.newToken(fmt.Sprintf("token %d", i))
		for deadline := time.Now().Add(20 * time.Second); ; {
			err := f.store.CreateToken(f.ctx, tok, 0)
			if err == nil {
				break
			}
			if keygate.ErrorCode(err) != keygate.EUNAVAILABLE || time.Now().After(deadline) {
				t.Fatal(err)
			}
		}
		for deadline := time.Now().Add(20 * time.Second); ; {
			err := emitter.EmitToken(f.ctx, keygate.EventTokenCreated, tok, f.org)
			if err == nil {
				break
			}
			if keygate.ErrorCode(err) != keygate.EUNAVAILABLE || time.Now().After(deadline) {
				t.Fatal(err)
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(f.deliveries(keygate.WebhookDeliveryFilter{State: keygate.DeliveryDelivered})) < events && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // room for a duplicate to show
	cancel()
	wg.Wait()

	seen := map[string]int{}
	for _, req := range r.requests() {
		if req.verifyErr != nil {
			t.Errorf("a delivery does not verify: %v", req.verifyErr)
		}
		seen[req.header.Get("webhook-id")]++
	}
	if len(seen) != events {
		t.Errorf("%d distinct events arrived, want %d", len(seen), events)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s arrived %d times, want once", id, n)
		}
	}
	for _, d := range f.deliveries(keygate.WebhookDeliveryFilter{}) {
		if d.State != keygate.DeliveryDelivered || d.Attempts != 1 {
			t.Errorf("delivery %s: state %s attempts %d; want delivered after 1", d.ID, d.State, d.Attempts)
		}
	}
}

// TestLogsNameNoSecrets logs every kind of attempt and checks that no token
// secret, signing secret or endpoint path and query reaches the log.
func TestLogsNameNoSecrets(t *testing.T) {
	var logs logtest.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := newFixture(t, func(o *webhook.Options) { o.Logger = logger })
	r := newReceiver(t, f.clock.Now, 500, 200)
	w := f.endpoint(r)
	tok, secret := f.token("one", nil)
	f.d.EmitToken(f.ctx, keygate.EventTokenCreated, tok, f.org)
	f.deliverDue()
	f.clock.Advance(time.Minute)
	f.deliverDue()
	refusing := f.dispatcher(f.store, func(o *webhook.Options) { o.Logger = logger; o.AllowPrivateAddresses = false })
	f.d.EmitToken(f.ctx, keygate.EventTokenDeleted, tok, f.org)
	refusing.DeliverDue(f.ctx)

	out := logs.String()
	if !strings.Contains(out, w.ID) || !strings.Contains(out, "delivered") {
		t.Fatalf("the log does not show the deliveries:\n%s", out)
	}
	for _, leak := range []string{secret, w.Secret, strings.TrimPrefix(w.Secret, "whsec_"), "receiver-secret", "/hooks/keygate"} {
		if strings.Contains(out, leak) {
			t.Errorf("the log contains %q:\n%s", leak, out)
		}
	}
}

// An audit.* event goes to the organization's own endpoint, so a site
// administrator's entry reaches it marked as one but without the address
// and user agent it acted from.
func TestEmitAuditLeavesOutSiteAdministratorsAddress(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t, f.clock.Now)
	f.endpoint(r, keygate.EventAudit)
	e := &keygate.AuditEntry{ID: "aud_1", At: start, Action: keygate.AuditPlanChanged, OrganizationID: f.org.ID,
		Actor: keygate.Actor{Type: keygate.ActorUser, ID: "usr_root", Name: "root@keygate.test", SiteAdmin: true,
			Address: "198.51.100.7", UserAgent: "AdminBrowser/1.0"}}
	f.d.EmitAudit(f.ctx, e)
	f.deliverDue()
	got := r.requests()
	if len(got) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(got))
	}
	want := `{"type":"audit.plan.changed","timestamp":"2026-03-01T12:00:00Z","data":{"id":"aud_1","at":"2026-03-01T12:00:00Z",` +
		`"action":"plan.changed","actor":{"type":"user","id":"usr_root","name":"root@keygate.test","site_admin":true,"address":"","user_agent":""},` +
		`"organization_id":"` + f.org.ID + `","target_id":"","details":{}}}`
	if string(got[0].body) != want {
		t.Errorf("body:\n got %s\nwant %s", got[0].body, want)
	}
}
