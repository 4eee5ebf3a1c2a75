package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

// The email contract (keygate.EmailStore), and the token query the
// once-per-token notice scans share (ListTokensForNotice):
//
//   - Enqueued emails are pending, due at CreatedAt unless given a
//     NextAttemptAt, and keep recipients, subject and both bodies as
//     given, and an invitation email its InvitationID. A batch is stored all or none; with a notice, the notice and
//     the emails are one step, and a second enqueue of the same notice,
//     from any handle, is ECONFLICT and stores nothing.
//   - Claiming is exclusive across handles, increments Attempts and holds
//     the email until now+lease. An attempt is recorded only while its
//     claim holds; a retry makes the email due again at NextAttemptAt.
//   - Email settings enable every kind until updated; they are kept per
//     organization and go with it.
//   - ListTokensForNotice selects by the field's time in (From, To],
//     leaves out tokens with the notice and (unless asked) revoked ones,
//     orders by (time, id) and pages with the cursor without skipping or
//     repeating a token, even among tokens with the same time.
var emailTests = []test{
	{"EnqueueClaimSend", testEmailEnqueueClaimSend},
	{"NoticeOnceAcrossHandles", testEmailNoticeOnce},
	{"ClaimConcurrent", testEmailClaimConcurrent},
	{"RetryAndGiveUp", testEmailRetry},
	{"RecordNeedsClaim", testEmailRecordNeedsClaim},
	{"Purge", testEmailPurge},
	{"Settings", testEmailSettings},
	{"TokensForNotice", testTokensForNotice},
	{"TokensForNoticePages", testTokensForNoticePages},
}

func (e *env) newEmail(to ...string) *keygate.Email {
	return &keygate.Email{
		Kind:    keygate.EmailTokenCreated,
		To:      to,
		Subject: "A token was created",
		Text:    "Plain text body.\n",
		HTML:    "<p>HTML body.</p>\n",
	}
}

func testEmailEnqueueClaimSend(t *testing.T, e *env) {
	s := e.store
	org := e.createOrganization("acme")
	first, second := e.newEmail("a@example.com", "b@example.com"), e.newEmail("c@example.com")
	first.OrganizationID, first.CreatedAt = org.ID, e.at(-time.Minute)
	first.Kind, first.InvitationID, first.Text, first.HTML = "invitation", "inv_1", "", ""
	second.CreatedAt, second.NextAttemptAt = e.now, ptr(e.at(time.Hour))
	must(t, "EnqueueEmails", s.EnqueueEmails(e.ctx, nil, []*keygate.Email{first, second}))
	if first.ID == "" || first.State != keygate.EmailPending || !first.NextAttemptAt.Equal(first.CreatedAt) {
		t.Fatalf("enqueued %+v", first)
	}
	claimed, err := e.open().ClaimEmails(e.ctx, e.now, time.Minute, 10)
	must(t, "ClaimEmails", err)
	if len(claimed) != 1 || claimed[0].ID != first.ID {
		t.Fatalf("claimed %d emails, want only the one due", len(claimed))
	}
	want := *first
	want.Attempts, want.NextAttemptAt = 1, ptr(e.at(time.Minute))
	equal(t, "claimed email", claimed[0], &want)
	again, err := s.ClaimEmails(e.ctx, e.at(30*time.Second), time.Minute, 10)
	must(t, "ClaimEmails during the lease", err)
	if len(again) != 0 {
		t.Errorf("claimed %d emails under another's lease", len(again))
	}
	must(t, "RecordEmailAttempt", s.RecordEmailAttempt(e.ctx, &keygate.EmailAttempt{EmailID: first.ID, Attempt: 1, At: e.now, Sent: true}))
	sent, err := s.ListEmails(e.ctx, keygate.EmailFilter{State: keygate.EmailSent})
	must(t, "ListEmails", err)
	if len(sent) != 1 || sent[0].SentAt == nil || !sent[0].SentAt.Equal(e.now) || sent[0].NextAttemptAt != nil {
		t.Fatalf("sent emails %+v", sent)
	}
	all, err := s.ListEmails(e.ctx, keygate.EmailFilter{})
	must(t, "ListEmails", err)
	equal(t, "newest first", emailIDs(all), []string{second.ID, first.ID})
	ofOrg, err := s.ListEmails(e.ctx, keygate.EmailFilter{OrganizationID: org.ID})
	must(t, "ListEmails of the organization", err)
	equal(t, "organization's emails", emailIDs(ofOrg), []string{first.ID})
}

func emailIDs(list []*keygate.Email) []string {
	var out []string
	for _, m := range list {
		out = append(out, m.ID)
	}
	return out
}

func testEmailNoticeOnce(t *testing.T, e *env) {
	const n = 6
	handles := make([]keygate.Store, n)
	for i := range handles {
		handles[i] = e.open()
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			notice := &keygate.TokenNotice{TokenID: "tok_1", Event: "email.token.expiring.7d", CreatedAt: e.now}
			errs[i] = handles[i].EnqueueEmails(e.ctx, notice, []*keygate.Email{e.newEmail("owner@example.com")})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else {
			wantCode(t, "concurrent EnqueueEmails with one notice", err, keygate.ECONFLICT)
		}
	}
	list, err := e.store.ListEmails(e.ctx, keygate.EmailFilter{})
	must(t, "ListEmails", err)
	if won != 1 || len(list) != 1 {
		t.Errorf("%d of %d enqueues of one notice succeeded with %d emails; want 1 and 1", won, n, len(list))
	}
	// The notice is the one webhooks use too: an event of the same name
	// for the token is taken.
	wantCode(t, "EnqueueTokenNotice of the same notice",
		e.store.EnqueueTokenNotice(e.ctx, &keygate.TokenNotice{TokenID: "tok_1", Event: "email.token.expiring.7d"}, nil), keygate.ECONFLICT)
	must(t, "another threshold", e.store.EnqueueEmails(e.ctx, &keygate.TokenNotice{TokenID: "tok_1", Event: "email.token.expiring.1d"}, nil))
}

func testEmailClaimConcurrent(t *testing.T, e *env) {
	var emails []*keygate.Email
	for range 20 {
		m := e.newEmail("x@example.com")
		m.CreatedAt = e.at(-time.Minute)
		emails = append(emails, m)
	}
	must(t, "EnqueueEmails", e.store.EnqueueEmails(e.ctx, nil, emails))
	const n = 4
	got := make([][]*keygate.Email, n)
	var wg sync.WaitGroup
	for i := range n {
		s := e.open()
		wg.Go(func() {
			for {
				c, err := s.ClaimEmails(e.ctx, e.now, time.Minute, 3)
				if err != nil {
					t.Errorf("ClaimEmails: %v", err)
					return
				}
				if len(c) == 0 {
					return
				}
				got[i] = append(got[i], c...)
			}
		})
	}
	wg.Wait()
	var ids []string
	for _, c := range got {
		ids = append(ids, emailIDs(c)...)
	}
	slices.Sort(ids)
	want := emailIDs(emails)
	slices.Sort(want)
	equal(t, "every email claimed exactly once", ids, want)
}

func testEmailRetry(t *testing.T, e *env) {
	s := e.store
	m := e.newEmail("x@example.com")
	m.CreatedAt = e.now
	must(t, "EnqueueEmails", s.EnqueueEmails(e.ctx, nil, []*keygate.Email{m}))
	c, err := s.ClaimEmails(e.ctx, e.now, time.Minute, 1)
	must(t, "ClaimEmails", err)
	if len(c) != 1 {
		t.Fatal("nothing claimed")
	}
	must(t, "RecordEmailAttempt", s.RecordEmailAttempt(e.ctx, &keygate.EmailAttempt{
		EmailID: m.ID, Attempt: 1, At: e.now, Error: "dial tcp: connection refused", NextAttemptAt: ptr(e.at(10 * time.Second)),
	}))
	c, err = s.ClaimEmails(e.ctx, e.at(5*time.Second), time.Minute, 1)
	must(t, "ClaimEmails before the retry", err)
	if len(c) != 0 {
		t.Fatal("claimed before its retry was due")
	}
	c, err = s.ClaimEmails(e.ctx, e.at(10*time.Second), time.Minute, 1)
	must(t, "ClaimEmails at the retry", err)
	if len(c) != 1 || c[0].Attempts != 2 || c[0].LastError != "dial tcp: connection refused" || c[0].LastAttemptAt == nil {
		t.Fatalf("retry claimed %+v", c)
	}
	must(t, "RecordEmailAttempt giving up", s.RecordEmailAttempt(e.ctx, &keygate.EmailAttempt{
		EmailID: m.ID, Attempt: 2, At: e.at(10 * time.Second), Error: "550 mailbox unavailable",
	}))
	failed, err := s.ListEmails(e.ctx, keygate.EmailFilter{State: keygate.EmailFailed})
	must(t, "ListEmails", err)
	if len(failed) != 1 || failed[0].Attempts != 2 || failed[0].LastError != "550 mailbox unavailable" || failed[0].SentAt != nil {
		t.Fatalf("failed emails %+v", failed)
	}
}

func testEmailRecordNeedsClaim(t *testing.T, e *env) {
	s := e.store
	m := e.newEmail("x@example.com")
	m.CreatedAt = e.now
	must(t, "EnqueueEmails", s.EnqueueEmails(e.ctx, nil, []*keygate.Email{m}))
	_, err := s.ClaimEmails(e.ctx, e.now, time.Minute, 1)
	must(t, "ClaimEmails", err)
	// The lease ran out and another sender claimed it: the first one's
	// attempt is no longer recorded.
	_, err = e.open().ClaimEmails(e.ctx, e.at(2*time.Minute), time.Minute, 1)
	must(t, "ClaimEmails after the lease", err)
	wantCode(t, "RecordEmailAttempt of a lost claim",
		s.RecordEmailAttempt(e.ctx, &keygate.EmailAttempt{EmailID: m.ID, Attempt: 1, At: e.now, Sent: true}), keygate.ECONFLICT)
	wantCode(t, "RecordEmailAttempt of an unknown email",
		s.RecordEmailAttempt(e.ctx, &keygate.EmailAttempt{EmailID: "eml_unknown", Attempt: 1, At: e.now, Sent: true}), keygate.ENOTFOUND)
	must(t, "RecordEmailAttempt of the holding claim",
		s.RecordEmailAttempt(e.ctx, &keygate.EmailAttempt{EmailID: m.ID, Attempt: 2, At: e.now, Sent: true}))
}

func testEmailPurge(t *testing.T, e *env) {
	s := e.store
	old, oldPending, recent := e.newEmail("a@example.com"), e.newEmail("b@example.com"), e.newEmail("c@example.com")
	old.CreatedAt, oldPending.CreatedAt, recent.CreatedAt = e.at(-48*time.Hour), e.at(-47*time.Hour), e.at(-time.Hour)
	oldPending.NextAttemptAt = ptr(e.at(time.Hour))
	must(t, "EnqueueEmails", s.EnqueueEmails(e.ctx, nil, []*keygate.Email{old, oldPending, recent}))
	c, err := s.ClaimEmails(e.ctx, e.at(-48*time.Hour), time.Minute, 1)
	must(t, "ClaimEmails", err)
	must(t, "RecordEmailAttempt", s.RecordEmailAttempt(e.ctx, &keygate.EmailAttempt{EmailID: c[0].ID, Attempt: 1, At: e.now, Sent: true}))
	n, err := s.PurgeEmails(e.ctx, e.at(-24*time.Hour))
	must(t, "PurgeEmails", err)
	list, err := s.ListEmails(e.ctx, keygate.EmailFilter{})
	must(t, "ListEmails", err)
	if n != 1 {
		t.Errorf("purged %d, want 1", n)
	}
	equal(t, "emails after purge", emailIDs(list), []string{recent.ID, oldPending.ID})
}

func testEmailSettings(t *testing.T, e *env) {
	s := e.store
	org := e.createOrganization("acme")
	got, err := s.FindEmailSettings(e.ctx, org.ID)
	must(t, "FindEmailSettings", err)
	for _, k := range keygate.EmailKinds {
		if !got.Enabled(k) {
			t.Errorf("%s off before any setting", k)
		}
	}
	must(t, "UpdateEmailSettings", s.UpdateEmailSettings(e.ctx, &keygate.EmailSettings{
		OrganizationID: org.ID, Disabled: []string{keygate.EmailTokenCreated, keygate.EmailMemberAdded}, UpdatedAt: e.now,
	}))
	got, err = e.open().FindEmailSettings(e.ctx, org.ID)
	must(t, "FindEmailSettings", err)
	equal(t, "settings", got, &keygate.EmailSettings{
		OrganizationID: org.ID, Disabled: []string{keygate.EmailTokenCreated, keygate.EmailMemberAdded}, UpdatedAt: e.now,
	})
	if got.Enabled(keygate.EmailTokenCreated) || !got.Enabled(keygate.EmailTokenExpiring) {
		t.Errorf("Enabled disagrees with %v", got.Disabled)
	}
	must(t, "UpdateEmailSettings again", s.UpdateEmailSettings(e.ctx, &keygate.EmailSettings{OrganizationID: org.ID, UpdatedAt: e.at(time.Minute)}))
	got, err = s.FindEmailSettings(e.ctx, org.ID)
	must(t, "FindEmailSettings", err)
	if len(got.Disabled) != 0 || !got.UpdatedAt.Equal(e.at(time.Minute)) {
		t.Errorf("after turning all on: %+v", got)
	}
	_, err = s.FindEmailSettings(e.ctx, "org_unknown")
	wantCode(t, "FindEmailSettings of an unknown organization", err, keygate.ENOTFOUND)
	wantCode(t, "UpdateEmailSettings of an unknown organization",
		s.UpdateEmailSettings(e.ctx, &keygate.EmailSettings{OrganizationID: "org_unknown"}), keygate.ENOTFOUND)
	must(t, "DeleteOrganization", s.DeleteOrganization(e.ctx, org.ID))
	_, err = s.FindEmailSettings(e.ctx, org.ID)
	wantCode(t, "FindEmailSettings of a deleted organization", err, keygate.ENOTFOUND)
}

func tokenIDs(list []*keygate.Token) []string {
	var out []string
	for _, t := range list {
		out = append(out, t.ID)
	}
	return out
}

func testTokensForNotice(t *testing.T, e *env) {
	s := e.store
	acme, beta := e.createOrganization("acme"), e.createOrganization("beta")
	tok := func(org *keygate.Organization, created time.Time, expires *time.Time) *keygate.Token {
		t.Helper()
		tk := e.newToken(org.ID, "cannmenus", created)
		tk.ExpiresAt = expires
		must(t, "CreateToken", s.CreateToken(e.ctx, tk, 0))
		return tk
	}
	day := 24 * time.Hour
	in3 := tok(acme, e.at(-30*day), ptr(e.at(3*day)))
	in6 := tok(beta, e.at(-30*day), ptr(e.at(6*day)))
	tok(acme, e.at(-30*day), ptr(e.at(8*day))) // outside the window
	tok(acme, e.at(-30*day), ptr(e.at(-day)))  // expired
	tok(acme, e.at(-30*day), nil)              // never expires
	tok(acme, e.at(-30*day), ptr(e.now))       // at From: out of (From, To]
	last := tok(acme, e.at(-30*day), ptr(e.at(7*day)))
	revoked := tok(acme, e.at(-day), ptr(e.at(2*day)))
	must(t, "RevokeToken", s.RevokeToken(e.ctx, revoked.ID, e.at(-time.Hour)))

	expiring := keygate.TokenNoticeQuery{Event: keygate.EventTokenExpiring, Field: keygate.TokenExpiresAt, From: e.now, To: e.at(7 * day)}
	list := func(q keygate.TokenNoticeQuery) []string {
		t.Helper()
		got, err := e.open().ListTokensForNotice(e.ctx, q)
		must(t, "ListTokensForNotice", err)
		return tokenIDs(got)
	}
	equal(t, "expiring within 7 days", list(expiring), []string{in3.ID, in6.ID, last.ID})
	q := expiring
	q.IncludeRevoked = true
	equal(t, "with revoked", list(q), []string{revoked.ID, in3.ID, in6.ID, last.ID})
	q = expiring
	q.OrganizationIDs = []string{beta.ID}
	equal(t, "of beta", list(q), []string{in6.ID})

	must(t, "EnqueueTokenNotice", s.EnqueueTokenNotice(e.ctx, &keygate.TokenNotice{TokenID: in3.ID, Event: keygate.EventTokenExpiring}, nil))
	equal(t, "after one notice", list(expiring), []string{in6.ID, last.ID})
	q = expiring
	q.Event = "email.token.expiring.7d"
	equal(t, "another event's notice", list(q), []string{in3.ID, in6.ID, last.ID})

	created := keygate.TokenNoticeQuery{Event: keygate.EventTokenCreated, Field: keygate.TokenCreatedAt, From: e.at(-2 * day), To: e.now, IncludeRevoked: true}
	equal(t, "created within 2 days", list(created), []string{revoked.ID})
	deleted := keygate.TokenNoticeQuery{Event: keygate.EventTokenDeleted, Field: keygate.TokenRevokedAt, From: e.at(-day), To: e.now}
	equal(t, "deleted within a day", list(deleted), []string{revoked.ID})
	if _, err := s.ListTokensForNotice(e.ctx, keygate.TokenNoticeQuery{Field: "name; DROP TABLE tokens", To: e.now}); err == nil {
		t.Error("ListTokensForNotice accepted an unknown field")
	}
}

// testTokensForNoticePages pages through tokens that share expiry times
// two at a time: each comes exactly once, in (time, id) order.
func testTokensForNoticePages(t *testing.T, e *env) {
	s := e.store
	org := e.createOrganization("acme")
	var want []*keygate.Token
	for i := range 7 {
		tk := e.newToken(org.ID, "cannmenus", e.at(-time.Hour))
		tk.ExpiresAt = ptr(e.at(time.Duration(1+i/3) * time.Hour)) // three per hour
		must(t, "CreateToken", s.CreateToken(e.ctx, tk, 0))
		want = append(want, tk)
	}
	slices.SortFunc(want, func(a, b *keygate.Token) int {
		if c := a.ExpiresAt.Compare(*b.ExpiresAt); c != 0 {
			return c
		}
		return compareStrings(a.ID, b.ID)
	})
	q := keygate.TokenNoticeQuery{Event: keygate.EventTokenExpiring, Field: keygate.TokenExpiresAt, From: e.now, To: e.at(24 * time.Hour), Limit: 2}
	var got []string
	for range 10 {
		page, err := s.ListTokensForNotice(e.ctx, q)
		must(t, "ListTokensForNotice", err)
		if len(page) == 0 {
			break
		}
		got = append(got, tokenIDs(page)...)
		last := page[len(page)-1]
		q.AfterTime, q.AfterID = *last.ExpiresAt, last.ID
	}
	equal(t, "pages", got, tokenIDs(want))
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
