package email_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/email"
	"github.com/keygate/keygate/email/smtptest"
	"github.com/keygate/keygate/manage"
)

// An invitation email is stored without its link and rendered when sent:
// the invitee gets the link, which opens the invitation; the database
// file never holds the link's secret; an invitation revoked before its
// email goes out is not sent; and one whose link the sender's key cannot
// rebuild fails at once, saying to invite again.
func TestInvitationEmailCarriesALinkTheDatabaseNeverHolds(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	f := newOutboxFixture(t)
	o := f.outbox(f.store, fmt.Sprintf("smtp://127.0.0.1:%d", srv.Port), nil)
	org := &keygate.Organization{Slug: "acme", Name: "Acme Corp"}
	if err := manage.CreateOrganization(f.ctx, f.store, org, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	invitations := manage.Invitations{Store: f.store, Notifier: o}
	invite := func(to string) *manage.CreatedInvitation {
		t.Helper()
		c, err := invitations.Invite(f.ctx, manage.Caller{}, org, manage.NewInvitation{Email: to, Role: keygate.RoleMember}, "https://keygate.example.com", f.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	dev, ops := invite("dev@acme.test"), invite("ops@acme.test")
	if err := manage.RevokeInvitation(f.ctx, f.store, org, ops.Invitation.ID, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	queued, err := f.store.ListEmails(f.ctx, keygate.EmailFilter{})
	if err != nil || len(queued) != 2 {
		t.Fatalf("queued %v, %v; want the two invitations' emails", queued, err)
	}
	for _, e := range queued {
		if e.Kind != email.KindInvitation || e.InvitationID == "" || e.Text != "" || e.HTML != "" || e.Subject != "An administrator invited you to join Acme Corp on keygate" {
			t.Errorf("queued %+v: want an invitation email without bodies", e)
		}
	}
	if n := f.sendDue(o); n != 2 {
		t.Fatalf("%d attempts, want 2", n)
	}

	got := srv.Messages()
	if len(got) != 1 || strings.Join(got[0].RcptTos, ",") != "dev@acme.test" {
		t.Fatalf("%d messages arrived (%v), want only dev's", len(got), got)
	}
	m := got[0]
	if !strings.Contains(m.Text, dev.Link+"\r\n") || !strings.Contains(m.HTML, `href="`+dev.Link+`"`) ||
		m.Subject != "An administrator invited you to join Acme Corp on keygate" {
		t.Errorf("email %q lacks the link %s:\n%s\n%s", m.Subject, dev.Link, m.Text, m.HTML)
	}
	secret := strings.TrimPrefix(dev.Link, "https://keygate.example.com"+manage.InvitationPathPrefix)
	if p, err := manage.FindInvitation(f.ctx, f.store, secret, f.clock.Now()); err != nil || p.Invitation.ID != dev.Invitation.ID {
		t.Fatalf("the emailed link opens %v, %v", p, err)
	}
	failed, err := f.store.ListEmails(f.ctx, keygate.EmailFilter{State: keygate.EmailFailed})
	if err != nil || len(failed) != 1 || failed[0].InvitationID != ops.Invitation.ID ||
		!strings.Contains(failed[0].LastError, "revoked") {
		t.Fatalf("failed emails %+v, %v; want the revoked invitation's", failed, err)
	}

	// A sender with another key cannot rebuild the link: it says what to do.
	qa := invite("qa@acme.test")
	f.linkKey = "another-link-key-of-32-characters-or-more"
	other := f.outbox(f.store, fmt.Sprintf("smtp://127.0.0.1:%d", srv.Port), nil)
	if n := f.sendDue(other); n != 1 || len(srv.Messages()) != 1 {
		t.Fatalf("%d attempts, %d messages", n, len(srv.Messages()))
	}
	failed, _ = f.store.ListEmails(f.ctx, keygate.EmailFilter{State: keygate.EmailFailed})
	if len(failed) != 2 || failed[0].InvitationID != qa.Invitation.ID || !strings.Contains(failed[0].LastError, "invite the email again") {
		t.Fatalf("failed emails %+v", failed)
	}

	// Neither the database (its file, write-ahead log included) nor the
	// log holds any link's secret; it does hold the invitations' ids.
	var db []byte
	files, _ := filepath.Glob(f.path + "*")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		db = append(db, b...)
	}
	if !bytes.Contains(db, []byte(dev.Invitation.ID)) {
		t.Fatal("the database files do not hold the invitation's id: the search below proves nothing")
	}
	for _, c := range []*manage.CreatedInvitation{dev, ops, qa} {
		s := c.Link[strings.LastIndexByte(c.Link, '/')+1:]
		if bytes.Contains(db, []byte(s)) || strings.Contains(f.log.String(), s) {
			t.Errorf("the secret of %s's link is in the database or the log", c.Invitation.Email)
		}
	}
}

// A server that refuses an invitation email quoting its link (as some
// content filters do) does not get the link's secret into the database
// or the log through its reply: the attempt's error keeps the reply with
// the secret left out.
func TestInvitationEmailRefusalQuotingTheLinkKeepsItsSecretOut(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{RefuseLinks: true})
	f := newOutboxFixture(t)
	o := f.outbox(f.store, fmt.Sprintf("smtp://127.0.0.1:%d", srv.Port), nil)
	org := &keygate.Organization{Slug: "acme", Name: "Acme Corp"}
	if err := manage.CreateOrganization(f.ctx, f.store, org, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	c, err := manage.Invitations{Store: f.store, Notifier: o}.Invite(f.ctx, manage.Caller{}, org,
		manage.NewInvitation{Email: "dev@acme.test", Role: keygate.RoleMember}, "https://keygate.example.com", f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n := f.sendDue(o); n != 1 || len(srv.Messages()) != 0 {
		t.Fatalf("%d attempts, %d messages; want one refused", n, len(srv.Messages()))
	}
	failed, err := f.store.ListEmails(f.ctx, keygate.EmailFilter{State: keygate.EmailFailed})
	if err != nil || len(failed) != 1 {
		t.Fatalf("failed emails %v, %v; want the refused one", failed, err)
	}
	if !strings.Contains(failed[0].LastError, "Message refused: it links to https://keygate.example.com/invitations/…") {
		t.Errorf("the refusal's error %q, want the reply with the secret left out", failed[0].LastError)
	}
	secret := c.Link[strings.LastIndexByte(c.Link, '/')+1:]
	var db []byte
	files, _ := filepath.Glob(f.path + "*")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		db = append(db, b...)
	}
	if bytes.Contains(db, []byte(secret)) || strings.Contains(f.log.String(), secret) || strings.Contains(failed[0].LastError, secret) {
		t.Errorf("the link's secret is in the database or the log:\n%s", failed[0].LastError)
	}
}
