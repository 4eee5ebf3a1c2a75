package email_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/email"
	"github.com/keygate/keygate/email/smtptest"
	"github.com/keygate/keygate/internal/logtest"
	"github.com/keygate/keygate/sqlite"
)

// start is the test clock's first reading.
var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const smtpPassword = "s3cret-smtp-passw0rd"

const testLinkKey = "a-link-key-of-at-least-32-characters"

// outboxFixture is an outbox on a SQLite file with a test clock and a log
// the test reads.
type outboxFixture struct {
	t        *testing.T
	ctx      context.Context
	path     string
	store    *sqlite.Store
	clock    *clock
	log      *logtest.Buffer
	outcomes []string
	mu       sync.Mutex
	linkKey  string // email.link_key of the outboxes it makes
}

func newOutboxFixture(t *testing.T) *outboxFixture {
	f := &outboxFixture{t: t, ctx: t.Context(), path: filepath.Join(t.TempDir(), "keygate.db"), clock: &clock{t: start}, log: &logtest.Buffer{}, linkKey: testLinkKey}
	f.store = f.open()
	return f
}

func (f *outboxFixture) open() *sqlite.Store {
	s, err := sqlite.Open(context.Background(), f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { s.Close() })
	return s
}

// outbox returns an outbox on store sending to smtpURL, trusting roots.
func (f *outboxFixture) outbox(store email.Store, smtpURL string, roots *x509.CertPool) *email.Outbox {
	f.t.Helper()
	server, err := email.ParseServer(smtpURL)
	if err != nil {
		f.t.Fatal(err)
	}
	server.RootCAs = roots
	server.Timeout = 10 * time.Second
	o, err := email.New(store, email.Options{
		Server: server, From: "keygate <keygate@example.com>", PublicURL: "https://keygate.example.com", LinkKey: []byte(f.linkKey),
		Logger: slog.New(slog.NewTextHandler(f.log, nil)), Now: f.clock.Now, Random: func() float64 { return 0.5 },
		OnAttempt: func(kind, outcome string) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.outcomes = append(f.outcomes, outcome)
		},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return o
}

func (f *outboxFixture) sendDue(o *email.Outbox) int {
	f.t.Helper()
	n, err := o.SendDue(f.ctx)
	if err != nil {
		f.t.Fatalf("SendDue: %v", err)
	}
	return n
}

// noPassword fails the test if the SMTP password shows in the log or in
// any email's stored error.
func (f *outboxFixture) noPassword() {
	f.t.Helper()
	if strings.Contains(f.log.String(), smtpPassword) {
		f.t.Errorf("the log holds the SMTP password:\n%s", f.log.String())
	}
	emails, err := f.store.ListEmails(f.ctx, keygate.EmailFilter{})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, e := range emails {
		if strings.Contains(e.LastError, smtpPassword) {
			f.t.Errorf("email %s's error holds the SMTP password: %s", e.ID, e.LastError)
		}
	}
}

// TestSendOverSTARTTLSWithAuth sends through a server that requires
// STARTTLS and AUTH: the message arrives once, over TLS, authenticated,
// to each recipient, with a text and an HTML alternative.
func TestSendOverSTARTTLSWithAuth(t *testing.T) {
	cert, key, roots := smtptest.Certificate(t)
	srv := smtptest.Start(t, smtptest.Options{CertFile: cert, KeyFile: key, User: "keygate", Password: smtpPassword})
	f := newOutboxFixture(t)
	o := f.outbox(f.store, fmt.Sprintf("smtp://keygate:%s@127.0.0.1:%d", smtpPassword, srv.Port), roots)
	err := o.Send(f.ctx, email.Message{
		Kind: "invitation", To: []string{"ann@example.com", "bob@example.com"},
		Subject: "Join Acme — on keygate", Text: "Hello Ann,\nline two\n", HTML: "<p>Hello <b>Ann</b></p>",
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := f.sendDue(o); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
	got := srv.Messages()
	if len(got) != 1 {
		t.Fatalf("%d messages arrived, want 1", len(got))
	}
	m := got[0]
	if !m.TLS || !m.Authenticated {
		t.Errorf("tls %v, authenticated %v; want both", m.TLS, m.Authenticated)
	}
	if m.MailFrom != "keygate@example.com" || strings.Join(m.RcptTos, ",") != "ann@example.com,bob@example.com" {
		t.Errorf("envelope from %q to %q", m.MailFrom, m.RcptTos)
	}
	if m.ContentType != "multipart/alternative" || m.Subject != "Join Acme — on keygate" {
		t.Errorf("content type %q, subject %q", m.ContentType, m.Subject)
	}
	if m.Text != "Hello Ann,\r\nline two\r\n" || m.HTML != "<p>Hello <b>Ann</b></p>" {
		t.Errorf("text %q, html %q", m.Text, m.HTML)
	}
	sent, err := f.store.ListEmails(f.ctx, keygate.EmailFilter{State: keygate.EmailSent})
	if err != nil || len(sent) != 1 {
		t.Fatalf("sent emails %v, %v", sent, err)
	}
	if n := f.sendDue(o); n != 0 || len(srv.Messages()) != 1 {
		t.Errorf("a second pass made %d attempts", n)
	}
	f.noPassword()
}

// TestSendOverImplicitTLS uses smtps://: TLS from the first byte.
func TestSendOverImplicitTLS(t *testing.T) {
	cert, key, roots := smtptest.Certificate(t)
	srv := smtptest.Start(t, smtptest.Options{CertFile: cert, KeyFile: key, ImplicitTLS: true, User: "keygate", Password: smtpPassword})
	f := newOutboxFixture(t)
	o := f.outbox(f.store, fmt.Sprintf("smtps://keygate:%s@127.0.0.1:%d", smtpPassword, srv.Port), roots)
	if err := o.Send(f.ctx, email.Message{Kind: "test", To: []string{"ann@example.com"}, Subject: "Hi", Text: "Hi"}); err != nil {
		t.Fatal(err)
	}
	f.sendDue(o)
	got := srv.Messages()
	if len(got) != 1 || !got[0].TLS || !got[0].Authenticated {
		t.Fatalf("messages %+v", got)
	}
	if !strings.Contains(got[0].HTML, "<pre>Hi</pre>") {
		t.Errorf("HTML made from the text: %q", got[0].HTML)
	}
}

// TestUntrustedCertificateIsRetried refuses a server whose certificate no
// trusted root signed, and keeps the email for a retry.
func TestUntrustedCertificateIsRetried(t *testing.T) {
	cert, key, _ := smtptest.Certificate(t)
	srv := smtptest.Start(t, smtptest.Options{CertFile: cert, KeyFile: key})
	f := newOutboxFixture(t)
	o := f.outbox(f.store, fmt.Sprintf("smtp://127.0.0.1:%d", srv.Port), x509.NewCertPool())
	if err := o.Send(f.ctx, email.Message{Kind: "test", To: []string{"ann@example.com"}, Subject: "Hi", Text: "Hi"}); err != nil {
		t.Fatal(err)
	}
	f.sendDue(o)
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("%d messages arrived over an unverified TLS connection", n)
	}
	pending, _ := f.store.ListEmails(f.ctx, keygate.EmailFilter{State: keygate.EmailPending})
	if len(pending) != 1 || !strings.Contains(pending[0].LastError, "STARTTLS") {
		t.Fatalf("pending %+v", pending)
	}
}

// TestServerDownThenUp queues an email while the mail server is down: the
// first attempt fails and is visible (state, error, log, outcome) without
// the password; once the server is up, the retry delivers it exactly once.
func TestServerDownThenUp(t *testing.T) {
	cert, key, roots := smtptest.Certificate(t)
	port := smtptest.FreePort(t)
	f := newOutboxFixture(t)
	o := f.outbox(f.store, fmt.Sprintf("smtp://keygate:%s@127.0.0.1:%d", smtpPassword, port), roots)
	if err := o.Send(f.ctx, email.Message{Kind: "test", To: []string{"ann@example.com"}, Subject: "Retry me", Text: "body"}); err != nil {
		t.Fatal(err)
	}
	f.sendDue(o)
	pending, err := f.store.ListEmails(f.ctx, keygate.EmailFilter{State: keygate.EmailPending})
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending after a failed attempt: %v %v", pending, err)
	}
	e := pending[0]
	if e.Attempts != 1 || !strings.Contains(e.LastError, "connecting") || !strings.Contains(e.LastError, "xxxxx") ||
		e.NextAttemptAt == nil || !e.NextAttemptAt.Equal(start.Add(email.DefaultRetries[0])) {
		t.Fatalf("after the failed attempt: attempts %d, error %q, next %v", e.Attempts, e.LastError, e.NextAttemptAt)
	}
	if !strings.Contains(f.log.String(), "sending failed; will retry") {
		t.Errorf("no log line for the failure:\n%s", f.log.String())
	}

	srv := smtptest.Start(t, smtptest.Options{Port: port, CertFile: cert, KeyFile: key, User: "keygate", Password: smtpPassword})
	if n := f.sendDue(o); n != 0 {
		t.Fatalf("%d attempts before the retry was due", n)
	}
	f.clock.Advance(email.DefaultRetries[0])
	f.sendDue(o)
	f.sendDue(o)
	if got := srv.Messages(); len(got) != 1 || got[0].Subject != "Retry me" {
		t.Fatalf("%d messages after the retry, want 1", len(got))
	}
	if strings.Join(f.outcomes, ",") != "retry,sent" {
		t.Errorf("outcomes %v", f.outcomes)
	}
	f.noPassword()
}

// TestParseServerNeverShowsThePassword refuses bad URLs with errors that
// never hold the password, and names a good one redacted.
func TestParseServerNeverShowsThePassword(t *testing.T) {
	for _, raw := range []string{
		"http://keygate:" + smtpPassword + "@mail.example.com",
		"smtp://keygate:" + smtpPassword + "@",
		"smtp://keygate:" + smtpPassword + "@mail.example.com/path",
		"smtp://keygate:" + smtpPassword + "@mail.example.com:587?x=1",
		"smtp://keygate:" + smtpPassword + "@[::1",
	} {
		_, err := email.ParseServer(raw)
		if err == nil {
			t.Errorf("%s: accepted", raw)
			continue
		}
		if strings.Contains(err.Error(), smtpPassword) {
			t.Errorf("error shows the password: %v", err)
		}
	}
	s, err := email.ParseServer("smtp://keygate:" + smtpPassword + "@mail.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if s.String() != "smtp://keygate:xxxxx@mail.example.com" {
		t.Errorf("String() = %q", s.String())
	}
}

// TestSendWithoutServerStoresNothing: email off, Send is a no-op.
func TestSendWithoutServerStoresNothing(t *testing.T) {
	f := newOutboxFixture(t)
	o, err := email.New(f.store, email.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Enabled() {
		t.Fatal("enabled without a server")
	}
	if err := o.Send(f.ctx, email.Message{To: []string{"ann@example.com"}, Subject: "x", Text: "x"}); err != nil {
		t.Fatal(err)
	}
	if list, _ := f.store.ListEmails(f.ctx, keygate.EmailFilter{}); len(list) != 0 {
		t.Fatalf("%d emails stored with email off", len(list))
	}
}

// TestHeadersCannotBeInjected: line breaks in a subject or a kind, and a
// recipient with one, add no header and no recipient.
func TestHeadersCannotBeInjected(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	f := newOutboxFixture(t)
	o := f.outbox(f.store, fmt.Sprintf("smtp://127.0.0.1:%d", srv.Port), nil)
	err := o.Send(f.ctx, email.Message{Kind: "x\r\nBcc: eve@example.com", To: []string{"ann@example.com"},
		Subject: "Hi\r\nBcc: eve@example.com", Text: "body"})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Send(f.ctx, email.Message{To: []string{"ann@example.com\r\nRCPT TO:<eve@example.com>"}, Subject: "x", Text: "x"}); keygate.ErrorCode(err) != keygate.EINVALID {
		t.Errorf("a recipient with a line break: %v", err)
	}
	f.sendDue(o)
	got := srv.Messages()
	if len(got) != 1 || strings.Join(got[0].RcptTos, ",") != "ann@example.com" {
		t.Fatalf("messages %+v", got)
	}
	if strings.Contains(strings.ToLower(got[0].Data), "\nbcc:") || strings.Contains(got[0].Data, "X-Keygate-Email") {
		t.Errorf("an injected header arrived:\n%s", got[0].Data)
	}
	if got[0].Subject != "Hi Bcc: eve@example.com" {
		t.Errorf("subject %q", got[0].Subject)
	}
}
