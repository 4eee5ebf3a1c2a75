package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

// The webhook contract, for stores that implement keygate.WebhookStore:
//
//   - CreateWebhook fills in an empty ID and a zero CreatedAt; ENOTFOUND for
//     an unknown organization, ECONFLICT for a stored id. With a
//     maxPerOrganization it stores an endpoint only while the organization
//     has fewer, atomically: concurrent creates on any handles never pass
//     it (ECONFLICT, TooManyWebhooksError). Deleting an
//     endpoint deletes its deliveries; deleting an organization deletes its
//     endpoints.
//   - Enqueued deliveries are pending, due at CreatedAt unless given a
//     NextAttemptAt, and keep their payload byte for byte. A batch is
//     stored all or none.
//   - Claiming is exclusive: of several handles claiming at once, each due
//     delivery goes to exactly one. A claim increments Attempts and holds
//     the delivery until now+lease; then it is due again. Deliveries of
//     disabled endpoints, and ones not yet due, are not claimed.
//   - An attempt is recorded only while its claim holds (the delivery is
//     pending with that many attempts); otherwise ECONFLICT and nothing is
//     stored.
//   - A token notice goes out once: the second EnqueueTokenNotice for a
//     token and event, from any handle, is ECONFLICT and stores nothing.
//   - ListWebhookDeliveries is newest first; ListWebhookAttempts oldest
//     first.
var webhookTests = []test{
	{"CreateFindListUpdateDelete", testWebhookCRUD},
	{"CreateLimitConcurrent", testWebhookCreateLimitConcurrent},
	{"DeleteTakesDeliveries", testWebhookDeleteTakesDeliveries},
	{"OrganizationDeleteTakesWebhooks", testWebhookOrganizationDelete},
	{"Enqueue", testWebhookEnqueue},
	{"EnqueueAllOrNone", testWebhookEnqueueAllOrNone},
	{"Claim", testWebhookClaim},
	{"ClaimSkipsDisabled", testWebhookClaimSkipsDisabled},
	{"ClaimConcurrent", testWebhookClaimConcurrent},
	{"RecordAttempts", testWebhookRecordAttempts},
	{"RecordAttemptNeedsClaim", testWebhookRecordAttemptNeedsClaim},
	{"Redeliver", testWebhookRedeliver},
	{"ListDeliveries", testWebhookListDeliveries},
	{"TokenNoticeOnce", testWebhookTokenNoticeOnce},
	{"TokenNoticeConcurrent", testWebhookTokenNoticeConcurrent},
	{"Purge", testWebhookPurge},
}

// webhookStore returns the store as a WebhookStore, skipping stores that
// do not keep webhooks.
func (e *env) webhookStore(s keygate.Store) keygate.WebhookStore {
	e.t.Helper()
	ws, ok := s.(keygate.WebhookStore)
	if !ok {
		e.t.Skipf("%T does not implement keygate.WebhookStore", s)
	}
	return ws
}

// testWebhookCreateLimitConcurrent creates endpoints for one organization
// from several handles at once under a limit of 3: exactly 3 are stored.
func testWebhookCreateLimitConcurrent(t *testing.T, e *env) {
	acme := e.createOrganization("acme")
	const n, limit = 8, 3
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		s := e.webhookStore(e.open())
		wg.Go(func() {
			errs[i] = s.CreateWebhook(e.ctx, &keygate.Webhook{OrganizationID: acme.ID, URL: "https://hooks.example.com/x", Secret: "whsec_x"}, limit)
		})
	}
	wg.Wait()
	created := 0
	for _, err := range errs {
		if err == nil {
			created++
		} else {
			wantCode(t, "CreateWebhook over the limit", err, keygate.ECONFLICT)
			if keygate.ErrorMessage(err) != keygate.ErrorMessage(keygate.TooManyWebhooksError(limit)) {
				t.Errorf("refusal %q", keygate.ErrorMessage(err))
			}
		}
	}
	hooks, err := e.webhookStore(e.store).ListWebhooks(e.ctx, acme.ID)
	must(t, "ListWebhooks", err)
	if created != limit || len(hooks) != limit {
		t.Fatalf("%d of %d concurrent creates succeeded, %d stored; want %d", created, n, len(hooks), limit)
	}
}

// createWebhook stores an endpoint of the organization.
func (e *env) createWebhook(s keygate.WebhookStore, organizationID string, events ...string) *keygate.Webhook {
	e.t.Helper()
	w := &keygate.Webhook{
		OrganizationID: organizationID,
		URL:            "https://hooks.example.com/keygate",
		Events:         events,
		Secret:         "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		CreatedAt:      e.now,
	}
	must(e.t, "CreateWebhook", s.CreateWebhook(e.ctx, w, 0))
	return w
}

// newDelivery returns a delivery for the endpoint, not yet stored.
func (e *env) newDelivery(w *keygate.Webhook, createdAt time.Time) *keygate.WebhookDelivery {
	return &keygate.WebhookDelivery{
		WebhookID:      w.ID,
		OrganizationID: w.OrganizationID,
		Event:          keygate.EventTokenCreated,
		Payload:        []byte(`{"type":"token.created","timestamp":"2026-01-02T03:04:05Z","data":{"id":"tok_1"}}`),
		CreatedAt:      createdAt,
	}
}

// enqueue stores deliveries for the endpoint created at the given offsets
// from the test clock, and returns them.
func (e *env) enqueue(s keygate.WebhookStore, w *keygate.Webhook, offsets ...time.Duration) []*keygate.WebhookDelivery {
	e.t.Helper()
	var ds []*keygate.WebhookDelivery
	for _, off := range offsets {
		ds = append(ds, e.newDelivery(w, e.at(off)))
	}
	must(e.t, "EnqueueWebhookDeliveries", s.EnqueueWebhookDeliveries(e.ctx, ds))
	return ds
}

func deliveryIDs(ds []*keygate.WebhookDelivery) []string {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	return ids
}

func testWebhookCRUD(t *testing.T, e *env) {
	s := e.webhookStore(e.store)
	acme, other := e.createOrganization("acme"), e.createOrganization("other")

	w := &keygate.Webhook{
		OrganizationID: acme.ID,
		URL:            "https://hooks.example.com/a?team=1",
		Events:         []string{keygate.EventTokenCreated, keygate.EventTokenExpiring},
		Secret:         "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		CreatedAt:      e.at(-time.Minute),
	}
	must(t, "CreateWebhook", s.CreateWebhook(e.ctx, w, 0))
	if w.ID == "" {
		t.Fatal("CreateWebhook left the ID empty")
	}
	got, err := s.FindWebhook(e.ctx, w.ID)
	must(t, "FindWebhook", err)
	equal(t, "FindWebhook", got, w)
	_, err = s.FindWebhook(e.ctx, "whk_missing")
	wantCode(t, "FindWebhook unknown", err, keygate.ENOTFOUND)

	fresh := &keygate.Webhook{OrganizationID: other.ID, URL: "https://hooks.example.com/c", Secret: "whsec_c"}
	must(t, "CreateWebhook", s.CreateWebhook(e.ctx, fresh, 0))
	if fresh.CreatedAt.IsZero() {
		t.Fatal("CreateWebhook left CreatedAt zero")
	}
	got, err = s.FindWebhook(e.ctx, fresh.ID)
	must(t, "FindWebhook", err)
	fresh.CreatedAt = fresh.CreatedAt.Truncate(time.Millisecond)
	equal(t, "endpoint with filled-in CreatedAt", got, fresh)

	second := e.createWebhook(s, acme.ID)
	list, err := s.ListWebhooks(e.ctx, acme.ID)
	must(t, "ListWebhooks", err)
	equal(t, "ListWebhooks(acme), oldest first", list, []*keygate.Webhook{w, second})
	all, err := s.ListWebhooks(e.ctx, "")
	must(t, "ListWebhooks(all)", err)
	ids := make([]string, len(all))
	for i, x := range all {
		ids[i] = x.ID
	}
	slices.Sort(ids)
	want := []string{w.ID, fresh.ID, second.ID}
	slices.Sort(want)
	equal(t, "ListWebhooks(\"\")", ids, want)

	dup := e.createWebhook(s, acme.ID)
	dup.ID = second.ID
	wantCode(t, "CreateWebhook with a stored id", s.CreateWebhook(e.ctx, dup, 0), keygate.ECONFLICT)
	orphan := &keygate.Webhook{OrganizationID: "org_missing", URL: "https://x.example", Secret: "whsec_x"}
	wantCode(t, "CreateWebhook for an unknown organization", s.CreateWebhook(e.ctx, orphan, 0), keygate.ENOTFOUND)

	second.URL = "https://hooks.example.com/b"
	second.Events = []string{keygate.EventTokenDeleted}
	second.Disabled = true
	must(t, "UpdateWebhook", s.UpdateWebhook(e.ctx, second))
	got, err = s.FindWebhook(e.ctx, second.ID)
	must(t, "FindWebhook after update", err)
	equal(t, "updated endpoint", got, second)
	wantCode(t, "UpdateWebhook unknown", s.UpdateWebhook(e.ctx, &keygate.Webhook{ID: "whk_missing"}), keygate.ENOTFOUND)

	must(t, "DeleteWebhook", s.DeleteWebhook(e.ctx, second.ID))
	_, err = s.FindWebhook(e.ctx, second.ID)
	wantCode(t, "FindWebhook after delete", err, keygate.ENOTFOUND)
	wantCode(t, "DeleteWebhook twice", s.DeleteWebhook(e.ctx, second.ID), keygate.ENOTFOUND)
}

func testWebhookDeleteTakesDeliveries(t *testing.T, e *env) {
	s := e.webhookStore(e.store)
	org := e.createOrganization("acme")
	w, kept := e.createWebhook(s, org.ID), e.createWebhook(s, org.ID)
	gone := e.enqueue(s, w, 0)
	stays := e.enqueue(s, kept, 0)
	must(t, "DeleteWebhook", s.DeleteWebhook(e.ctx, w.ID))
	_, err := s.FindWebhookDelivery(e.ctx, gone[0].ID)
	wantCode(t, "FindWebhookDelivery of a deleted endpoint", err, keygate.ENOTFOUND)
	claimed, err := s.ClaimWebhookDeliveries(e.ctx, e.now, time.Minute, 10)
	must(t, "ClaimWebhookDeliveries", err)
	equal(t, "claimed after delete", deliveryIDs(claimed), deliveryIDs(stays))
}

func testWebhookOrganizationDelete(t *testing.T, e *env) {
	s := e.webhookStore(e.store)
	org := e.createOrganization("acme")
	w := e.createWebhook(s, org.ID)
	e.enqueue(s, w, 0)
	must(t, "DeleteOrganization", e.store.DeleteOrganization(e.ctx, org.ID))
	_, err := s.FindWebhook(e.ctx, w.ID)
	wantCode(t, "FindWebhook after its organization was deleted", err, keygate.ENOTFOUND)
	claimed, err := s.ClaimWebhookDeliveries(e.ctx, e.now, time.Minute, 10)
	must(t, "ClaimWebhookDeliveries", err)
	if len(claimed) != 0 {
		t.Errorf("claimed %d deliveries of a deleted organization, want 0", len(claimed))
	}
}

func testWebhookEnqueue(t *testing.T, e *env) {
	s := e.webhookStore(e.store)
	org := e.createOrganization("acme")
	w := e.createWebhook(s, org.ID)
	d := e.newDelivery(w, e.now)
	d.Payload = []byte("{\"a\": \"caf\xc3\xa9\",\n \"b\": [1, 2]}")
	later := e.newDelivery(w, e.now)
	later.NextAttemptAt = ptr(e.at(time.Hour))
	must(t, "EnqueueWebhookDeliveries", s.EnqueueWebhookDeliveries(e.ctx, []*keygate.WebhookDelivery{d, later}))
	if d.ID == "" {
		t.Fatal("EnqueueWebhookDeliveries left the ID empty")
	}
	want := *d
	want.State = keygate.DeliveryPending
	want.NextAttemptAt = ptr(e.now)
	got, err := s.FindWebhookDelivery(e.ctx, d.ID)
	must(t, "FindWebhookDelivery", err)
	equal(t, "enqueued delivery", got, &want)
	got, err = s.FindWebhookDelivery(e.ctx, later.ID)
	must(t, "FindWebhookDelivery", err)
	equal(t, "NextAttemptAt of a delivery scheduled later", got.NextAttemptAt, ptr(e.at(time.Hour)))

	_, err = s.FindWebhookDelivery(e.ctx, "msg_missing")
	wantCode(t, "FindWebhookDelivery unknown", err, keygate.ENOTFOUND)
}

func testWebhookEnqueueAllOrNone(t *testing.T, e *env) {
	s := e.webhookStore(e.store)
	org := e.createOrganization("acme")
	w := e.createWebhook(s, org.ID)
	good := e.newDelivery(w, e.now)
	bad := e.newDelivery(&keygate.Webhook{ID: "whk_missing", OrganizationID: org.ID}, e.now)
	err := s.EnqueueWebhookDeliveries(e.ctx, []*keygate.WebhookDelivery{good, bad})
	wantCode(t, "EnqueueWebhookDeliveries with an unknown endpoint", err, keygate.ENOTFOUND)
	list, err := s.ListWebhookDeliveries(e.ctx, keygate.WebhookDeliveryFilter{})
	must(t, "ListWebhookDeliveries", err)
	if len(list) != 0 {
		t.Errorf("a refused batch stored %d deliveries, want 0", len(list))
	}

	first := e.enqueue(s, w, 0)
	dup := e.newDelivery(w, e.now)
	dup.ID = first[0].ID
	wantCode(t, "EnqueueWebhookDeliveries with a stored id",
		s.EnqueueWebhookDeliveries(e.ctx, []*keygate.WebhookDelivery{dup}), keygate.ECONFLICT)
}

func testWebhookClaim(t *testing.T, e *env) {
	s := e.webhookStore(e.store)
	org := e.createOrganization("acme")
	w := e.createWebhook(s, org.ID)
	due := e.enqueue(s, w, -3*time.Second, -2*time.Second, -time.Second)
	future := e.newDelivery(w, e.now)
	future.NextAttemptAt = ptr(e.at(time.Hour))
	must(t, "EnqueueWebhookDeliveries", s.EnqueueWebhookDeliveries(e.ctx, []*keygate.WebhookDelivery{future}))

	first, err := s.ClaimWebhookDeliveries(e.ctx, e.now, time.Minute, 2)
	must(t, "ClaimWebhookDeliveries", err)
	equal(t, "first claim, limit 2", deliveryIDs(first), deliveryIDs(due[:2]))
	for _, d := range first {
		if d.Attempts != 1 {
			t.Errorf("claimed delivery has Attempts %d, want 1", d.Attempts)
		}
		equal(t, "claimed NextAttemptAt (end of lease)", d.NextAttemptAt, ptr(e.at(time.Minute)))
		if d.State != keygate.DeliveryPending || string(d.Payload) != string(due[0].Payload) {
			t.Errorf("claimed delivery: state %q payload %q", d.State, d.Payload)
		}
	}
	rest, err := s.ClaimWebhookDeliveries(e.ctx, e.now, time.Minute, 10)
	must(t, "ClaimWebhookDeliveries again", err)
	equal(t, "second claim: only the unclaimed due delivery", deliveryIDs(rest), deliveryIDs(due[2:]))

	none, err := s.ClaimWebhookDeliveries(e.ctx, e.at(59*time.Second), time.Minute, 10)
	must(t, "ClaimWebhookDeliveries within the lease", err)
	if len(none) != 0 {
		t.Errorf("claimed %d deliveries within their lease, want 0", len(none))
	}
	again, err := s.ClaimWebhookDeliveries(e.ctx, e.at(time.Minute), time.Minute, 10)
	must(t, "ClaimWebhookDeliveries after the lease", err)
	equal(t, "claim after the lease ran out", deliveryIDs(again), deliveryIDs(due))
	for _, d := range again {
		if d.Attempts != 2 {
			t.Errorf("reclaimed delivery has Attempts %d, want 2", d.Attempts)
		}
	}
	zero, err := s.ClaimWebhookDeliveries(e.ctx, e.at(time.Hour), time.Minute, 0)
	must(t, "ClaimWebhookDeliveries with limit 0", err)
	if len(zero) != 0 {
		t.Errorf("limit 0 claimed %d deliveries", len(zero))
	}
}

func testWebhookClaimSkipsDisabled(t *testing.T, e *env) {
	s := e.webhookStore(e.store)
	org := e.createOrganization("acme")
	on, off := e.createWebhook(s, org.ID), e.createWebhook(s, org.ID)
	want := e.enqueue(s, on, 0)
	held := e.enqueue(s, off, 0)
	off.Disabled = true
	must(t, "UpdateWebhook", s.UpdateWebhook(e.ctx, off))
	got, err := s.ClaimWebhookDeliveries(e.ctx, e.now, time.Minute, 10)
	must(t, "ClaimWebhookDeliveries", err)
	equal(t, "claimed with one endpoint disabled", deliveryIDs(got), deliveryIDs(want))

	off.Disabled = false
	must(t, "UpdateWebhook", s.UpdateWebhook(e.ctx, off))
	got, err = s.ClaimWebhookDeliveries(e.ctx, e.now, time.Minute, 10)
	must(t, "ClaimWebhookDeliveries", err)
	equal(t, "claimed after enabling again", deliveryIDs(got), deliveryIDs(held))
}

// testWebhookClaimConcurrent claims from several handles at once: every
// delivery goes to exactly one of them.
func testWebhookClaimConcurrent(t *testing.T, e *env) {
	s := e.webhookStore(e.store)
	org := e.createOrganization("acme")
	w := e.createWebhook(s, org.ID)
	offsets := make([]time.Duration, 40)
	for i := range offsets {
		offsets[i] = -time.Duration(i) * time.Millisecond
	}
	e.enqueue(s, w, offsets...)

	const n = 6
	handles := make([]keygate.WebhookStore, n)
	for i := range handles {
		handles[i] = e.webhookStore(e.open())
	}
	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		counts = map[string]int{}
	)
	for i := range n {
		wg.Go(func() {
			for {
				got, err := handles[i].ClaimWebhookDeliveries(e.ctx, e.now, time.Minute, 3)
				if err != nil {
					t.Errorf("ClaimWebhookDeliveries: %v", err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, d := range got {
					counts[d.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(counts) != len(offsets) {
		t.Errorf("%d distinct deliveries claimed, want %d", len(counts), len(offsets))
	}
	for id, c := range counts {
		if c != 1 {
			t.Errorf("delivery %s claimed %d times, want once", id, c)
		}
	}
}

func testWebhookRecordAttempts(t *testing.T, e *env) {
	s := e.webhookStore(e.store)
	org := e.createOrganization("acme")
	w := e.createWebhook(s, org.ID)
	d := e.enqueue(s, w, 0)[0]

	claim := func(at time.Time) *keygate.WebhookDelivery {
		t.Helper()
		got, err := s.ClaimWebhookDeliveries(e.ctx, at, time.Minute, 1)
		must(t, "ClaimWebhookDeliveries", err)
		if len(got) != 1 {
			t.Fatalf("claimed %d deliveries at %v, want 1", len(got), at)
		}
		return got[0]
	}
	c := claim(e.now)
	retry := &keygate.WebhookAttempt{
		DeliveryID: d.ID, Attempt: c.Attempts, At: e.at(time.Second), Duration: 1500 * time.Millisecond,
		Status: 500, Error: "HTTP 500", Response: `{"error":"boom"}`, NextAttemptAt: ptr(e.at(6 * time.Second)),
	}
	must(t, "RecordWebhookAttempt (retry)", s.RecordWebhookAttempt(e.ctx, retry))
	got, err := s.FindWebhookDelivery(e.ctx, d.ID)
	must(t, "FindWebhookDelivery", err)
	want := *d
	want.State, want.Attempts = keygate.DeliveryPending, 1
	want.NextAttemptAt, want.LastAttemptAt = ptr(e.at(6*time.Second)), ptr(e.at(time.Second))
	want.LastStatus, want.LastError, want.LastResponse = 500, "HTTP 500", `{"error":"boom"}`
	equal(t, "delivery after a failed attempt", got, &want)

	if early, err := s.ClaimWebhookDeliveries(e.ctx, e.at(5*time.Second), time.Minute, 1); err != nil || len(early) != 0 {
		t.Errorf("claim before the retry is due: %d deliveries, %v; want none", len(early), err)
	}
	c = claim(e.at(6 * time.Second))
	ok := &keygate.WebhookAttempt{
		DeliveryID: d.ID, Attempt: c.Attempts, At: e.at(7 * time.Second), Duration: 20 * time.Millisecond,
		Status: 204, Delivered: true,
	}
	must(t, "RecordWebhookAttempt (delivered)", s.RecordWebhookAttempt(e.ctx, ok))
	got, err = s.FindWebhookDelivery(e.ctx, d.ID)
	must(t, "FindWebhookDelivery", err)
	want.State, want.Attempts, want.NextAttemptAt = keygate.DeliveryDelivered, 2, nil
	want.LastAttemptAt, want.DeliveredAt = ptr(e.at(7*time.Second)), ptr(e.at(7*time.Second))
	want.LastStatus, want.LastError, want.LastResponse = 204, "", ""
	equal(t, "delivery after success", got, &want)

	attempts, err := s.ListWebhookAttempts(e.ctx, d.ID)
	must(t, "ListWebhookAttempts", err)
	equal(t, "attempts", attempts, []*keygate.WebhookAttempt{retry, ok})

	if more, err := s.ClaimWebhookDeliveries(e.ctx, e.at(time.Hour), time.Minute, 10); err != nil || len(more) != 0 {
		t.Errorf("claim after delivery: %d deliveries, %v; want none", len(more), err)
	}

	// Giving up: no next attempt and not delivered.
	f := e.enqueue(s, w, time.Second)[0]
	c = claim(e.at(time.Second))
	must(t, "RecordWebhookAttempt (give up)", s.RecordWebhookAttempt(e.ctx, &keygate.WebhookAttempt{
		DeliveryID: f.ID, Attempt: c.Attempts, At: e.at(2 * time.Second), Error: "connection refused",
	}))
	got, err = s.FindWebhookDelivery(e.ctx, f.ID)
	must(t, "FindWebhookDelivery", err)
	if got.State != keygate.DeliveryFailed || got.NextAttemptAt != nil || got.DeliveredAt != nil || got.LastError != "connection refused" {
		t.Errorf("given up delivery: state %q next %v delivered %v error %q; want failed, nil, nil, connection refused",
			got.State, got.NextAttemptAt, got.DeliveredAt, got.LastError)
	}
}

func testWebhookRecordAttemptNeedsClaim(t *testing.T, e *env) {
	s := e.webhookStore(e.store)
	org := e.createOrganization("acme")
	w := e.createWebhook(s, org.ID)
	d := e.enqueue(s, w, 0)[0]
	if _, err := s.ClaimWebhookDeliveries(e.ctx, e.now, time.Minute, 1); err != nil {
		t.Fatal(err)
	}
	// The lease ran out and another claimer took the delivery: attempt 1's
	// late result must not overwrite attempt 2's.
	if got, err := s.ClaimWebhookDeliveries(e.ctx, e.at(time.Minute), time.Minute, 1); err != nil || len(got) != 1 {
		t.Fatalf("reclaim: %d, %v", len(got), err)
	}
	stale := &keygate.WebhookAttempt{DeliveryID: d.ID, Attempt: 1, At: e.at(70 * time.Second), Status: 200, Delivered: true}
	wantCode(t, "RecordWebhookAttempt with a lost claim", s.RecordWebhookAttempt(e.ctx, stale), keygate.ECONFLICT)
	got, err := s.FindWebhookDelivery(e.ctx, d.ID)
	must(t, "FindWebhookDelivery", err)
	if got.State != keygate.DeliveryPending || got.Attempts != 2 || got.LastAttemptAt != nil {
		t.Errorf("after a stale attempt: state %q attempts %d last attempt %v; want pending, 2, nil",
			got.State, got.Attempts, got.LastAttemptAt)
	}
	attempts, err := s.ListWebhookAttempts(e.ctx, d.ID)
	must(t, "ListWebhookAttempts", err)
	if len(attempts) != 0 {
		t.Errorf("a stale attempt was stored: %d attempts", len(attempts))
	}
	missing := &keygate.WebhookAttempt{DeliveryID: "msg_missing", Attempt: 1, At: e.now}
	wantCode(t, "RecordWebhookAttempt unknown", s.RecordWebhookAttempt(e.ctx, missing), keygate.ENOTFOUND)
}

func testWebhookRedeliver(t *testing.T, e *env) {
	s := e.webhookStore(e.store)
	org := e.createOrganization("acme")
	w := e.createWebhook(s, org.ID)
	d := e.enqueue(s, w, 0)[0]
	wantCode(t, "RedeliverWebhook of a pending delivery", s.RedeliverWebhook(e.ctx, d.ID, e.now), keygate.ECONFLICT)
	c, err := s.ClaimWebhookDeliveries(e.ctx, e.now, time.Minute, 1)
	must(t, "ClaimWebhookDeliveries", err)
	must(t, "RecordWebhookAttempt", s.RecordWebhookAttempt(e.ctx, &keygate.WebhookAttempt{
		DeliveryID: d.ID, Attempt: c[0].Attempts, At: e.now, Status: 404, Error: "HTTP 404",
	}))
	must(t, "RedeliverWebhook", s.RedeliverWebhook(e.ctx, d.ID, e.at(time.Minute)))
	got, err := s.FindWebhookDelivery(e.ctx, d.ID)
	must(t, "FindWebhookDelivery", err)
	if got.State != keygate.DeliveryPending || got.Attempts != 1 {
		t.Errorf("redelivered: state %q attempts %d, want pending, 1", got.State, got.Attempts)
	}
	equal(t, "redelivered NextAttemptAt", got.NextAttemptAt, ptr(e.at(time.Minute)))
	c, err = s.ClaimWebhookDeliveries(e.ctx, e.at(time.Minute), time.Minute, 1)
	must(t, "ClaimWebhookDeliveries", err)
	if len(c) != 1 || c[0].Attempts != 2 {
		t.Errorf("claim of the redelivery: %d deliveries; want 1 with Attempts 2", len(c))
	}
	wantCode(t, "RedeliverWebhook unknown", s.RedeliverWebhook(e.ctx, "msg_missing", e.now), keygate.ENOTFOUND)
}

func testWebhookListDeliveries(t *testing.T, e *env) {
	s := e.webhookStore(e.store)
	acme, other := e.createOrganization("acme"), e.createOrganization("other")
	a1, a2, o := e.createWebhook(s, acme.ID), e.createWebhook(s, acme.ID), e.createWebhook(s, other.ID)
	d1 := e.enqueue(s, a1, -3*time.Second)[0]
	d2 := e.enqueue(s, a2, -2*time.Second)[0]
	d3 := e.enqueue(s, a1, -time.Second)[0]
	e.enqueue(s, o, 0)
	c, err := s.ClaimWebhookDeliveries(e.ctx, e.now, time.Minute, 1)
	must(t, "ClaimWebhookDeliveries", err)
	must(t, "RecordWebhookAttempt", s.RecordWebhookAttempt(e.ctx, &keygate.WebhookAttempt{
		DeliveryID: c[0].ID, Attempt: 1, At: e.now, Status: 200, Delivered: true,
	}))

	list := func(f keygate.WebhookDeliveryFilter) []string {
		t.Helper()
		got, err := s.ListWebhookDeliveries(e.ctx, f)
		must(t, "ListWebhookDeliveries", err)
		return deliveryIDs(got)
	}
	equal(t, "acme's deliveries, newest first", list(keygate.WebhookDeliveryFilter{OrganizationID: acme.ID}),
		[]string{d3.ID, d2.ID, d1.ID})
	equal(t, "one endpoint's deliveries", list(keygate.WebhookDeliveryFilter{WebhookID: a1.ID}), []string{d3.ID, d1.ID})
	equal(t, "delivered ones", list(keygate.WebhookDeliveryFilter{State: keygate.DeliveryDelivered}), []string{d1.ID})
	equal(t, "limit 1", list(keygate.WebhookDeliveryFilter{OrganizationID: acme.ID, Limit: 1}), []string{d3.ID})
	if n := len(list(keygate.WebhookDeliveryFilter{})); n != 4 {
		t.Errorf("all deliveries: %d, want 4", n)
	}
}

func testWebhookTokenNoticeOnce(t *testing.T, e *env) {
	s := e.webhookStore(e.store)
	org := e.createOrganization("acme")
	w := e.createWebhook(s, org.ID)
	first := e.newDelivery(w, e.now)
	notice := &keygate.TokenNotice{TokenID: "tok_1", Event: keygate.EventTokenExpiring, CreatedAt: e.now}
	must(t, "EnqueueTokenNotice", s.EnqueueTokenNotice(e.ctx, notice, []*keygate.WebhookDelivery{first}))
	if _, err := s.FindWebhookDelivery(e.ctx, first.ID); err != nil {
		t.Fatalf("the notice's delivery was not stored: %v", err)
	}

	second := e.newDelivery(w, e.now)
	again := &keygate.TokenNotice{TokenID: "tok_1", Event: keygate.EventTokenExpiring, CreatedAt: e.at(time.Minute)}
	wantCode(t, "EnqueueTokenNotice twice", s.EnqueueTokenNotice(e.ctx, again, []*keygate.WebhookDelivery{second}), keygate.ECONFLICT)
	if second.ID != "" {
		if _, err := s.FindWebhookDelivery(e.ctx, second.ID); err == nil {
			t.Error("a repeated notice stored its delivery")
		}
	}
	list, err := s.ListWebhookDeliveries(e.ctx, keygate.WebhookDeliveryFilter{})
	must(t, "ListWebhookDeliveries", err)
	if len(list) != 1 {
		t.Errorf("%d deliveries after a repeated notice, want 1", len(list))
	}

	expired := &keygate.TokenNotice{TokenID: "tok_1", Event: keygate.EventTokenExpired}
	must(t, "EnqueueTokenNotice for another event", s.EnqueueTokenNotice(e.ctx, expired, nil))
	other := &keygate.TokenNotice{TokenID: "tok_2", Event: keygate.EventTokenExpiring}
	must(t, "EnqueueTokenNotice for another token", s.EnqueueTokenNotice(e.ctx, other, nil))
}

func testWebhookTokenNoticeConcurrent(t *testing.T, e *env) {
	s := e.webhookStore(e.store)
	org := e.createOrganization("acme")
	w := e.createWebhook(s, org.ID)
	const n = 6
	handles := make([]keygate.WebhookStore, n)
	for i := range handles {
		handles[i] = e.webhookStore(e.open())
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			notice := &keygate.TokenNotice{TokenID: "tok_1", Event: keygate.EventTokenExpired, CreatedAt: e.now}
			errs[i] = handles[i].EnqueueTokenNotice(e.ctx, notice, []*keygate.WebhookDelivery{e.newDelivery(w, e.now)})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else {
			wantCode(t, "concurrent EnqueueTokenNotice", err, keygate.ECONFLICT)
		}
	}
	list, err := s.ListWebhookDeliveries(e.ctx, keygate.WebhookDeliveryFilter{})
	must(t, "ListWebhookDeliveries", err)
	if won != 1 || len(list) != 1 {
		t.Errorf("%d of %d concurrent notices succeeded with %d deliveries; want exactly 1 and 1", won, n, len(list))
	}
}

func testWebhookPurge(t *testing.T, e *env) {
	s := e.webhookStore(e.store)
	org := e.createOrganization("acme")
	w := e.createWebhook(s, org.ID)
	old := e.enqueue(s, w, -48*time.Hour, -47*time.Hour)
	recent := e.enqueue(s, w, -time.Hour)[0]
	// The oldest is delivered; the second stays pending and must survive.
	c, err := s.ClaimWebhookDeliveries(e.ctx, e.at(-48*time.Hour), time.Minute, 1)
	must(t, "ClaimWebhookDeliveries", err)
	must(t, "RecordWebhookAttempt", s.RecordWebhookAttempt(e.ctx, &keygate.WebhookAttempt{
		DeliveryID: c[0].ID, Attempt: 1, At: e.at(-48 * time.Hour), Status: 200, Delivered: true,
	}))
	must(t, "EnqueueTokenNotice", s.EnqueueTokenNotice(e.ctx,
		&keygate.TokenNotice{TokenID: "tok_old", Event: keygate.EventTokenExpired, CreatedAt: e.at(-48 * time.Hour)}, nil))
	must(t, "EnqueueTokenNotice", s.EnqueueTokenNotice(e.ctx,
		&keygate.TokenNotice{TokenID: "tok_new", Event: keygate.EventTokenExpired, CreatedAt: e.now}, nil))

	must(t, "PurgeWebhooks", s.PurgeWebhooks(e.ctx, e.at(-24*time.Hour)))
	list, err := s.ListWebhookDeliveries(e.ctx, keygate.WebhookDeliveryFilter{})
	must(t, "ListWebhookDeliveries", err)
	equal(t, "deliveries after purge", deliveryIDs(list), []string{recent.ID, old[1].ID})
	attempts, err := s.ListWebhookAttempts(e.ctx, old[0].ID)
	must(t, "ListWebhookAttempts", err)
	if len(attempts) != 0 {
		t.Errorf("a purged delivery kept %d attempts", len(attempts))
	}
	must(t, "EnqueueTokenNotice after its record was purged", s.EnqueueTokenNotice(e.ctx,
		&keygate.TokenNotice{TokenID: "tok_old", Event: keygate.EventTokenExpired}, nil))
	wantCode(t, "EnqueueTokenNotice kept after purge", s.EnqueueTokenNotice(e.ctx,
		&keygate.TokenNotice{TokenID: "tok_new", Event: keygate.EventTokenExpired}, nil), keygate.ECONFLICT)
}
