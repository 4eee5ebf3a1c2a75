package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/email"
	"github.com/keygate/keygate/email/smtptest"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/server"
)

// A member added through the CLI queues their email for the server to
// send; keygate email outbox shows it; keygate email test reaches the
// mail server at once.
func TestEmailCommands(t *testing.T) {
	smtpd := smtptest.Start(t, smtptest.Options{})
	dir := t.TempDir()
	yaml := fmt.Sprintf("data_dir: .\nemail:\n  smtp_url: smtp://127.0.0.1:%d\n  from: keygate@acme.test\n  link_key: a-link-key-for-the-cli-email-test\n", smtpd.Port)
	if err := os.WriteFile(filepath.Join(dir, "keygate.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (string, error) { return runCLI(t, append(args, "--data-dir", dir)...) }
	must := func(args ...string) string {
		t.Helper()
		out, err := cli(args...)
		if err != nil {
			t.Fatalf("keygate %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	must("orgs", "create", "--slug", "acme")
	t.Setenv("KEYGATE_PASSWORD", "correct horse battery staple")
	must("users", "create", "--email", "owner@acme.test", "--org", "acme", "--role", "owner")

	out := must("email", "outbox")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 ||
		!strings.Contains(lines[1], "pending") || !strings.Contains(lines[1], "member.added") || !strings.Contains(lines[1], "owner@acme.test") {
		t.Fatalf("outbox:\n%s", out)
	}
	if out := must("email", "outbox", "--state", "failed"); strings.Count(out, "\n") != 1 {
		t.Errorf("failed emails:\n%s", out)
	}
	if out, err := cli("email", "outbox", "--state", "lost"); err == nil || !strings.Contains(err.Error(), "--state must be pending, sent or failed") {
		t.Errorf("bad --state: %v\n%s", err, out)
	}

	out = must("email", "test", "--to", "ops@acme.test")
	if !strings.Contains(out, "accepted a test email to ops@acme.test") {
		t.Errorf("email test said %q", out)
	}
	got := smtpd.Messages()
	if len(got) != 1 || got[0].Subject != "keygate test email" || strings.Join(got[0].RcptTos, ",") != "ops@acme.test" {
		t.Fatalf("the mail server got %+v, want the test email", got)
	}
}

// keygate members invite with email on queues the invitation's email
// (without its link) for a server on the same database to send; the
// link that email carries when sent is the one the command printed, and
// it opens the invitation.
func TestMembersInviteQueuesTheEmail(t *testing.T) {
	smtpd := smtptest.Start(t, smtptest.Options{})
	dir := t.TempDir()
	yaml := fmt.Sprintf("data_dir: .\nadmin: {public_url: https://keygate.example.com}\nemail:\n  smtp_url: smtp://127.0.0.1:%d\n  from: keygate@acme.test\n  link_key: a-link-key-for-the-cli-invite-test\n", smtpd.Port)
	if err := os.WriteFile(filepath.Join(dir, "keygate.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) string {
		t.Helper()
		out, err := runCLI(t, append(args, "--config", filepath.Join(dir, "keygate.yaml"))...)
		if err != nil {
			t.Fatalf("keygate %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	cli("orgs", "create", "--slug", "acme", "--name", "Acme Corp")
	out := cli("members", "invite", "--org", "acme", "--email", "dev@acme.test")
	if !strings.Contains(out, "it is emailed to them") {
		t.Errorf("invite said:\n%s", out)
	}
	link := ""
	for _, l := range strings.Fields(out) {
		if strings.HasPrefix(l, "https://keygate.example.com/invitations/") {
			link = l
		}
	}
	if link == "" {
		t.Fatalf("no link in:\n%s", out)
	}
	if out := cli("email", "outbox"); !strings.Contains(out, "invitation") || !strings.Contains(out, "dev@acme.test") || !strings.Contains(out, "pending") {
		t.Fatalf("outbox:\n%s", out)
	}

	// What a running server does with it: one pass of its sender.
	cfg, err := config.Load(filepath.Join(dir, "keygate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := server.OpenStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	smtp, err := email.ParseServer(cfg.Email.SMTPURL)
	if err != nil {
		t.Fatal(err)
	}
	o, err := email.New(store, email.Options{Server: smtp, From: cfg.Email.From, PublicURL: cfg.Admin.PublicURL, LinkKey: []byte(cfg.Email.LinkKey)})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := o.SendDue(ctx); n != 1 || err != nil {
		t.Fatalf("SendDue: %d, %v", n, err)
	}
	got := smtpd.Messages()
	if len(got) != 1 || strings.Join(got[0].RcptTos, ",") != "dev@acme.test" || !strings.Contains(got[0].Text, link+"\r\n") {
		t.Fatalf("the mail server got %+v, want the invitation with %s", got, link)
	}
	secret := link[strings.LastIndexByte(link, '/')+1:]
	if p, err := manage.FindInvitation(ctx, store, secret, time.Now()); err != nil || p.Invitation.Email != "dev@acme.test" {
		t.Fatalf("the link opens %v, %v", p, err)
	}
	emails, _ := store.ListEmails(ctx, keygate.EmailFilter{})
	for _, e := range emails {
		if strings.Contains(e.Text+e.HTML+e.Subject, secret) {
			t.Errorf("email %s holds the link's secret", e.ID)
		}
	}
}
