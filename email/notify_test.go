package email_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"log/slog"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/email"
	"github.com/keygate/keygate/email/smtptest"
	"github.com/keygate/keygate/postgres"
	"github.com/keygate/keygate/postgres/pgtest"
)

const day = 24 * time.Hour

// people is an organization with two owners and a member.
type people struct {
	org           *keygate.Organization
	ann, bob, cat *keygate.User
}

func addPeople(t *testing.T, ctx context.Context, s keygate.Store, now time.Time) *people {
	t.Helper()
	p := &people{org: &keygate.Organization{Slug: "acme", Name: "Acme Corp", Plan: "pro", CreatedAt: now.Add(-100 * day)}}
	if err := s.CreateOrganization(ctx, p.org); err != nil {
		t.Fatal(err)
	}
	user := func(name, addr string) *keygate.User {
		u := &keygate.User{Email: addr, Name: name, PasswordHash: "x", CreatedAt: now.Add(-100 * day)}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	p.ann, p.bob, p.cat = user("Ann Owner", "ann@example.com"), user("Bob Owner", "bob@example.com"), user("Cat Member", "cat@example.com")
	add := func(actor context.Context, u *keygate.User, role string) {
		if err := s.SetMembership(actor, &keygate.Membership{OrganizationID: p.org.ID, UserID: u.ID, Role: role, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	add(ctx, p.ann, keygate.RoleOwner)
	asAnn := keygate.WithActor(ctx, keygate.Actor{Type: keygate.ActorUser, ID: p.ann.ID, Name: p.ann.Name})
	add(asAnn, p.bob, keygate.RoleOwner)
	add(asAnn, p.cat, keygate.RoleMember)
	return p
}

// tokens creates tokens and remembers every secret.
type tokens struct {
	t       *testing.T
	ctx     context.Context
	store   keygate.Store
	org     *keygate.Organization
	secrets []string
}

func (ts *tokens) create(name string, by *keygate.User, created time.Time, expires *time.Time) *keygate.Token {
	ts.t.Helper()
	tok, secret, err := keygate.NewToken(keygate.TokenPolicy{BasePrefix: "cm_", AllowNever: true},
		keygate.TokenRequest{OrganizationID: ts.org.ID, API: "cannmenus", Name: name, Scopes: []string{"products:read", "brands:read"},
			Expiry: keygate.ExpiryNever, CreatedBy: by.ID}, created)
	if err != nil {
		ts.t.Fatal(err)
	}
	tok.ExpiresAt = expires
	ctx := keygate.WithActor(ts.ctx, keygate.Actor{Type: keygate.ActorUser, ID: by.ID, Name: by.Name})
	if err := ts.store.CreateToken(ctx, tok, 0); err != nil {
		ts.t.Fatal(err)
	}
	ts.secrets = append(ts.secrets, secret, tok.Hash)
	return tok
}

// arrived lists "recipient: subject" for each message, sorted, and checks
// each is multipart with both bodies and holds no secret.
func arrived(t *testing.T, srv *smtptest.Server, secrets []string) []string {
	t.Helper()
	var out []string
	for _, m := range srv.Messages() {
		if m.ContentType != "multipart/alternative" || m.Text == "" || !strings.Contains(m.HTML, "<html") {
			t.Errorf("message %q is not multipart/alternative with text and HTML", m.Subject)
		}
		for _, s := range secrets {
			if strings.Contains(m.Data, s) || strings.Contains(m.Text, s) || strings.Contains(m.HTML, s) {
				t.Errorf("message %q to %v holds a token secret or hash", m.Subject, m.RcptTos)
			}
		}
		out = append(out, strings.Join(m.RcptTos, ",")+": "+m.Subject)
	}
	sort.Strings(out)
	return out
}

func equalList(t *testing.T, what string, got, want []string) {
	t.Helper()
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// TestNotices follows an organization through its emails: members added,
// a security notice for each token created, expiry warnings at 7 days and
// 1 day to the creator and the owners, once each however often and from
// however many instances the scan runs, and none of a kind its owners
// turned off. No message holds a token secret.
func TestNotices(t *testing.T) {
	cert, key, roots := smtptest.Certificate(t)
	srv := smtptest.Start(t, smtptest.Options{CertFile: cert, KeyFile: key, User: "keygate", Password: smtpPassword})
	f := newOutboxFixture(t)
	smtpURL := fmt.Sprintf("smtp://keygate:%s@127.0.0.1:%d", smtpPassword, srv.Port)
	wrap := func(s keygate.Store) (keygate.Store, *email.Outbox) {
		log := &audit.Log{Store: s, Logger: slog.New(slog.DiscardHandler), Now: f.clock.Now}
		ws := audit.Wrap(s, log)
		o := f.outbox(ws, smtpURL, roots)
		log.Shipper = o.NotifyAudit
		return ws, o
	}
	store, o := wrap(f.store)
	_, other := wrap(f.open())
	now := f.clock.Now()
	p := addPeople(t, f.ctx, store, now)
	ts := &tokens{t: t, ctx: f.ctx, store: store, org: p.org}
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	ts.create("CI deploy", p.cat, now.Add(-25*day), at(5*day))
	ts.create("Billing export", p.ann, now.Add(-29*day), at(20*time.Hour))
	ts.create("Seven-day token", p.cat, now, at(7*day))
	revoked := ts.create("Revoked", p.cat, now.Add(-20*day), at(3*day))
	if err := store.RevokeToken(f.ctx, revoked.ID, now); err != nil {
		t.Fatal(err)
	}
	ts.create("Long-lived", p.cat, now.Add(-day), at(30*day))

	var wg sync.WaitGroup
	for _, ob := range []*email.Outbox{o, other, o, other} {
		wg.Go(func() {
			if err := ob.ScanExpiring(f.ctx); err != nil {
				t.Errorf("ScanExpiring: %v", err)
			}
		})
	}
	wg.Wait()
	f.sendDue(o)
	f.sendDue(other)
	created := func(to, name string) string {
		return to + `: A new API token "` + name + `" was created for Acme Corp`
	}
	want := []string{
		"ann@example.com: You were added to Acme Corp on keygate",
		"bob@example.com: You were added to Acme Corp on keygate",
		"cat@example.com: You were added to Acme Corp on keygate",
		created("cat@example.com", "CI deploy"),
		created("ann@example.com", "Billing export"),
		created("cat@example.com", "Seven-day token"),
		created("cat@example.com", "Revoked"),
		created("cat@example.com", "Long-lived"),
		`cat@example.com: Your API token "CI deploy" expires in 7 days`,
		`ann@example.com: Your API token "CI deploy" expires in 7 days`,
		`bob@example.com: Your API token "CI deploy" expires in 7 days`,
		`ann@example.com: Your API token "Billing export" expires in 1 day`,
		`bob@example.com: Your API token "Billing export" expires in 1 day`,
	}
	equalList(t, "first day", arrived(t, srv, ts.secrets), want)

	// What the emails say.
	for _, m := range srv.Messages() {
		switch {
		case strings.Contains(m.Subject, "CI deploy") && strings.Contains(m.Subject, "created"):
			for _, s := range []string{"CI deploy", "cm_live_", "products:read, brands:read", "https://keygate.example.com/orgs/acme/tokens"} {
				if !strings.Contains(m.Text, s) || !strings.Contains(m.HTML, s) {
					t.Errorf("token.created email lacks %q:\n%s", s, m.Text)
				}
			}
		case m.RcptTos[0] == "bob@example.com" && strings.Contains(m.Subject, "added"):
			if !strings.Contains(m.Text, "Ann Owner added you to Acme Corp as owner") {
				t.Errorf("member.added email:\n%s", m.Text)
			}
		}
	}

	// The owners turn off the notice of new tokens: Cat's next token
	// gets none. Four days on, CI deploy is a day from expiring.
	if err := store.UpdateEmailSettings(f.ctx, &keygate.EmailSettings{OrganizationID: p.org.ID, Disabled: []string{keygate.EmailTokenCreated}}); err != nil {
		t.Fatal(err)
	}
	ts.create("Quiet", p.cat, now, at(90*day))
	f.clock.Advance(4*day + time.Hour)
	for _, ob := range []*email.Outbox{other, o} {
		if err := ob.ScanExpiring(f.ctx); err != nil {
			t.Fatal(err)
		}
	}
	f.sendDue(o)
	want = append(want,
		`cat@example.com: Your API token "CI deploy" expires in 1 day`,
		`ann@example.com: Your API token "CI deploy" expires in 1 day`,
		`bob@example.com: Your API token "CI deploy" expires in 1 day`,
	)
	equalList(t, "four days later", arrived(t, srv, ts.secrets), want)

	// The seven-day token gets its 1-day warning only; with expiry emails
	// turned off, nothing.
	if err := store.UpdateEmailSettings(f.ctx, &keygate.EmailSettings{OrganizationID: p.org.ID, Disabled: []string{keygate.EmailTokenExpiring}}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(2*day + 2*time.Hour) // 6d3h after "Seven-day token" was made
	if err := o.ScanExpiring(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.sendDue(o)
	equalList(t, "expiry emails off", arrived(t, srv, ts.secrets), want)
	f.noPassword()
}

// A token's creator hears of its expiry only while they are a member of
// its organization (or a site administrator): someone removed from it
// learns nothing more of its tokens by email. Its owners still do.
func TestExpiryNoticesSkipACreatorNoLongerAMember(t *testing.T) {
	cert, key, roots := smtptest.Certificate(t)
	srv := smtptest.Start(t, smtptest.Options{CertFile: cert, KeyFile: key, User: "keygate", Password: smtpPassword})
	f := newOutboxFixture(t)
	o := f.outbox(f.store, fmt.Sprintf("smtp://keygate:%s@127.0.0.1:%d", smtpPassword, srv.Port), roots)
	now := f.clock.Now()
	p := addPeople(t, f.ctx, f.store, now)
	admin := &keygate.User{Email: "root@example.com", Name: "Root", PasswordHash: "x", IsAdmin: true, CreatedAt: now}
	if err := f.store.CreateUser(f.ctx, admin); err != nil {
		t.Fatal(err)
	}
	ts := &tokens{t: t, ctx: f.ctx, store: f.store, org: p.org}
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	ts.create("Cat's script", p.cat, now.Add(-25*day), at(5*day))
	ts.create("Root's script", admin, now.Add(-25*day), at(5*day))
	if err := f.store.DeleteMembership(f.ctx, p.org.ID, p.cat.ID); err != nil {
		t.Fatal(err)
	}
	if err := o.ScanExpiring(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.sendDue(o)
	equalList(t, "expiry notices", arrived(t, srv, ts.secrets), []string{
		`ann@example.com: Your API token "Cat's script" expires in 7 days`,
		`bob@example.com: Your API token "Cat's script" expires in 7 days`,
		`root@example.com: Your API token "Root's script" expires in 7 days`,
		`ann@example.com: Your API token "Root's script" expires in 7 days`,
		`bob@example.com: Your API token "Root's script" expires in 7 days`,
	})
}

// TestTwoInstancesOnPostgreSQL runs the expiry scan and the senders of two
// instances on one PostgreSQL database at once: every expiry email arrives
// exactly once.
func TestTwoInstancesOnPostgreSQL(t *testing.T) {
	dsn := pgtest.NewSchema(t)
	cert, key, roots := smtptest.Certificate(t)
	srv := smtptest.Start(t, smtptest.Options{CertFile: cert, KeyFile: key})
	f := newOutboxFixture(t)
	open := func() *postgres.Store {
		s, err := postgres.Open(f.ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	now := f.clock.Now()
	p := addPeople(t, f.ctx, a, now)
	ts := &tokens{t: t, ctx: f.ctx, store: a, org: p.org}
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	var names []string
	for i := range 6 {
		name := fmt.Sprintf("token %d", i)
		names = append(names, name)
		ts.create(name, p.cat, now.Add(-30*day), at(time.Duration(2+i)*day))
	}
	smtpURL := fmt.Sprintf("smtp://127.0.0.1:%d", srv.Port)
	oa, ob := f.outbox(a, smtpURL, roots), f.outbox(b, smtpURL, roots)
	var wg sync.WaitGroup
	for range 3 {
		for _, o := range []*email.Outbox{oa, ob} {
			wg.Go(func() {
				if err := o.ScanExpiring(f.ctx); err != nil {
					t.Errorf("ScanExpiring: %v", err)
				}
			})
		}
	}
	wg.Wait()
	for _, o := range []*email.Outbox{oa, ob, oa, ob} {
		wg.Go(func() {
			if _, err := o.SendDue(f.ctx); err != nil {
				t.Errorf("SendDue: %v", err)
			}
		})
	}
	wg.Wait()
	var want []string
	for _, name := range names {
		for _, to := range []string{"ann", "bob", "cat"} {
			want = append(want, to+`@example.com: Your API token "`+name+`" expires in 7 days`)
		}
	}
	equalList(t, "emails", arrived(t, srv, ts.secrets), want)
	for _, m := range srv.Messages() {
		if !m.TLS {
			t.Errorf("message %q not sent over STARTTLS", m.Subject)
		}
	}
}
