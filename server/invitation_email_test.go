package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/email/smtptest"
	"github.com/keygate/keygate/internal/logtest"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/server"
	"github.com/keygate/keygate/session"
)

// With email on, an invitation made through the management API is emailed
// to the invitee, once, by the server's own outbox; the link in the email
// is the one the API returned and accepting it through the API makes the
// invitee a member; the SQLite files never hold the link's secret.
func TestInvitationIsEmailedAndItsLinkWorks(t *testing.T) {
	smtpd := smtptest.Start(t, smtptest.Options{})
	admin, dataDir := freeAddr(t), t.TempDir()
	cfg := parseConfig(t, fmt.Sprintf(`
data_dir: %s
admin: {listen: %s, public_url: "https://keygate.example.com"}
email:
  smtp_url: smtp://127.0.0.1:%d
  from: keygate <keygate@example.com>
  link_key: a-link-key-for-the-invitation-email-test
`, dataDir, admin, smtpd.Port))
	logs := &logtest.Buffer{}
	srv := newServer(t, cfg, server.Options{Logger: debugLogger(logs)})
	startServer(t, srv)
	ctx := context.Background()
	store := srv.Store()
	org := &keygate.Organization{Slug: "acme", Name: "Acme Corp"}
	if err := manage.CreateOrganization(ctx, store, org, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, adminKey, err := manage.CreateAdminKey(ctx, store, "ci", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path, body string, prepare func(*http.Request)) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+admin+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		prepare(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	status, body := call("POST", "/api/v1/orgs/acme/invitations", `{"email": "Dev@Acme.example", "role": "member"}`,
		func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+adminKey) })
	var created struct{ URL string }
	if status != http.StatusCreated || json.Unmarshal(body, &created) != nil {
		t.Fatalf("invite: %d %s", status, body)
	}

	var got []*smtptest.Message
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && len(got) == 0; time.Sleep(50 * time.Millisecond) {
		got = smtpd.Messages()
	}
	if len(got) != 1 {
		t.Fatalf("%d emails arrived, want the invitation", len(got))
	}
	m := got[0]
	if strings.Join(m.RcptTos, ",") != "dev@acme.example" || m.Subject != "An administrator invited you to join Acme Corp on keygate" ||
		!strings.Contains(m.Text, created.URL+"\r\n") {
		t.Fatalf("email to %v %q, want the link %s in:\n%s", m.RcptTos, m.Subject, created.URL, m.Text)
	}
	secret := created.URL[strings.LastIndexByte(created.URL, '/')+1:]

	// The invitee makes a login and accepts through the API with it.
	user, err := manage.CreateUser(ctx, store, manage.NewUser{Email: "dev@acme.example", Password: "a long enough password here"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	sess, err := (&session.Manager{Sessions: store, Users: store, Secure: cfg.Admin.SecureCookies}).Login(rec, httptest.NewRequest("POST", "/login", nil), user)
	if err != nil {
		t.Fatal(err)
	}
	cookie := rec.Result().Cookies()[0]
	status, body = call("POST", "/api/v1/me/invitations/accept", `{"secret": "`+secret+`"}`, func(r *http.Request) {
		r.AddCookie(cookie)
		r.Header.Set(session.CSRFHeader, sess.CSRFToken)
	})
	if status != http.StatusOK || !strings.Contains(strings.Join(strings.Fields(string(body)), ""), `"added":true`) {
		t.Fatalf("accept: %d %s", status, body)
	}
	ms, err := store.ListMemberships(ctx, keygate.MembershipFilter{OrganizationID: org.ID, UserID: user.ID})
	if err != nil || len(ms) != 1 || ms[0].Role != keygate.RoleMember {
		t.Fatalf("memberships %v, %v", ms, err)
	}

	// Sent once; the outbox row holds no body. The database files hold the
	// invitation's id, never the link's secret; nor does the log.
	emails, err := store.ListEmails(ctx, keygate.EmailFilter{})
	if err != nil {
		t.Fatal(err)
	}
	invitationEmails := 0
	for _, e := range emails {
		if e.Kind == "invitation" {
			invitationEmails++
			if e.State != keygate.EmailSent || e.Attempts != 1 || e.Text != "" || e.HTML != "" {
				t.Errorf("invitation email %+v", e)
			}
		}
	}
	if invitationEmails != 1 {
		t.Errorf("%d invitation emails in the outbox, want 1", invitationEmails)
	}
	var db []byte
	files, _ := filepath.Glob(filepath.Join(dataDir, "*"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			db = append(db, b...)
		}
	}
	pending, _ := store.ListInvitations(ctx, keygate.InvitationFilter{OrganizationID: org.ID})
	if len(pending) != 1 || !bytes.Contains(db, []byte(pending[0].ID)) {
		t.Fatalf("the data directory's files do not hold the invitation (%v): the search below proves nothing", files)
	}
	if bytes.Contains(db, []byte(secret)) {
		t.Error("the database holds the invitation link's secret")
	}
	if strings.Contains(logs.String(), secret) {
		t.Error("the log holds the invitation link's secret")
	}
}
