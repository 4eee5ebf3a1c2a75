package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/email/smtptest"
	"github.com/keygate/keygate/internal/logtest"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/server"
)

// A running keygate with email.smtp_url sends the email a management API
// call causes through its own outbox workers, over STARTTLS with AUTH,
// counts it in keygate_emails_total, and never logs the SMTP password.
func TestServerSendsEmail(t *testing.T) {
	const password = "smtp-Pa55word-for-the-server-test"
	cert, key, roots := smtptest.Certificate(t)
	smtpd := smtptest.Start(t, smtptest.Options{CertFile: cert, KeyFile: key, User: "keygate", Password: password})
	admin := freeAddr(t)
	cfg := parseConfig(t, fmt.Sprintf(`
data_dir: %s
admin: {listen: %s, public_url: "https://keygate.example.com"}
email:
  smtp_url: smtp://keygate:%s@127.0.0.1:%d
  from: keygate <keygate@example.com>
  link_key: a-link-key-for-the-server-email-test
apis:
  - name: events
    preset: canskan
    listen: %s
    upstream: http://127.0.0.1:9
    routes:
      - {methods: [GET], path: /attendees, access: token}
`, t.TempDir(), admin, password, smtpd.Port, freeAddr(t)))
	logs := &logtest.Buffer{}
	srv := newServer(t, cfg, server.Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), EmailRootCAs: roots})
	if !srv.Email().Enabled() {
		t.Fatal("email is off with email.smtp_url set")
	}
	startServer(t, srv)
	ctx := context.Background()
	if err := manage.CreateOrganization(ctx, srv.Store(), &keygate.Organization{Slug: "acme", Name: "Acme Corp"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, adminKey, err := manage.CreateAdminKey(ctx, srv.Store(), "test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", "http://"+admin+"/api/v1/orgs/acme/members",
		strings.NewReader(`{"email": "dev@acme.example", "name": "Dev", "role": "member", "password": "a long enough password here"}`))
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("adding a member: %d %s", resp.StatusCode, body)
	}

	// The outbox's workers send it without being asked.
	var got []*smtptest.Message
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = smtpd.Messages(); len(got) > 0 {
			break
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d emails arrived, want the member's", len(got))
	}
	m := got[0]
	if strings.Join(m.RcptTos, ",") != "dev@acme.example" || m.Subject != "You were added to Acme Corp on keygate" || !m.TLS || !m.Authenticated {
		t.Errorf("email to %v %q, tls %v, auth %v", m.RcptTos, m.Subject, m.TLS, m.Authenticated)
	}
	if !strings.Contains(m.Text, "https://keygate.example.com/") {
		t.Errorf("no link to the dashboard:\n%s", m.Text)
	}

	// Counted once recorded; the metric comes after the store has it.
	var metrics string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		r, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if metrics = string(b); strings.Contains(metrics, `keygate_emails_total{kind="member.added",outcome="sent"} 1`) {
			break
		}
	}
	if !strings.Contains(metrics, `keygate_emails_total{kind="member.added",outcome="sent"} 1`) {
		t.Errorf("metrics lack the sent email:\n%s", grepLines(metrics, "keygate_emails"))
	}
	if strings.Contains(logs.String(), password) {
		t.Errorf("the log holds the SMTP password:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "smtp://keygate:xxxxx@127.0.0.1") {
		t.Errorf("the log does not name the server redacted:\n%s", logs.String())
	}
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
