package email_test

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/email"
	"github.com/keygate/keygate/email/smtptest"
)

// TestSTARTTLSPolicy sends one email to servers with and without
// STARTTLS, on this machine's loopback and on its address on the network.
// Plain text goes only to a loopback address or with ?starttls=optional;
// STARTTLS is used whenever offered. A refused attempt sends nothing and
// keeps the email for a retry, its error naming the server redacted.
func TestSTARTTLSPolicy(t *testing.T) {
	outside := smtptest.OutsideIP(t).String()
	for _, c := range []struct {
		name     string
		listen   string // the server's address
		urlHost  string // the host in email.smtp_url
		starttls bool   // the server offers (and requires) STARTTLS
		user     bool   // the URL holds a user and a password
		query    string
		want     string // "tls", "plain" or "refused"
	}{
		{"across a network without STARTTLS", outside, outside, false, false, "", "refused"},
		{"across a network without STARTTLS, with a password", outside, outside, false, true, "", "refused"},
		{"across a network with STARTTLS", outside, outside, true, false, "", "tls"},
		{"across a network without STARTTLS, optional", outside, outside, false, false, "?starttls=optional", "plain"},
		{"across a network with STARTTLS, optional", outside, outside, true, false, "?starttls=optional", "tls"},
		{"127.0.0.1 without STARTTLS", "127.0.0.1", "127.0.0.1", false, false, "", "plain"},
		{"localhost without STARTTLS", "127.0.0.1", "localhost", false, false, "", "plain"},
		{"::1 without STARTTLS", "::1", "[::1]", false, false, "", "plain"},
		{"127.0.0.1 without STARTTLS, required", "127.0.0.1", "127.0.0.1", false, false, "?starttls=required", "refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.listen == "::1" {
				needIPv6Loopback(t)
			}
			opts := smtptest.Options{Host: c.listen}
			cert, key, roots := smtptest.CertificateFor(t, net.ParseIP(c.listen))
			if c.starttls {
				opts.CertFile, opts.KeyFile = cert, key
			}
			srv := smtptest.Start(t, opts)
			userinfo := ""
			if c.user {
				userinfo = "keygate:" + smtpPassword + "@"
			}
			hostPort := net.JoinHostPort(strings.Trim(c.urlHost, "[]"), strconv.Itoa(srv.Port))
			f := newOutboxFixture(t)
			o := f.outbox(f.store, "smtp://"+userinfo+hostPort+c.query, roots)
			if err := o.Send(f.ctx, email.Message{Kind: "test", To: []string{"ann@example.com"}, Subject: "Hi", Text: "a secret link"}); err != nil {
				t.Fatal(err)
			}
			f.sendDue(o)
			got := srv.Messages()
			switch c.want {
			case "tls", "plain":
				if len(got) != 1 || got[0].TLS != (c.want == "tls") {
					t.Fatalf("messages %+v, want one, tls %v", got, c.want == "tls")
				}
			case "refused":
				if len(got) != 0 {
					t.Fatalf("%d messages arrived in plain text", len(got))
				}
				redacted := "smtp://" + hostPort + c.query
				if c.user {
					redacted = "smtp://keygate:xxxxx@" + hostPort + c.query
				}
				want := fmt.Sprintf("email: STARTTLS %s: the server does not offer STARTTLS, and keygate sends in plain text only to a server on a loopback address or with ?starttls=optional in email.smtp_url", redacted)
				pending, err := f.store.ListEmails(f.ctx, keygate.EmailFilter{State: keygate.EmailPending})
				if err != nil || len(pending) != 1 {
					t.Fatalf("pending %v, %v; want the email kept", pending, err)
				}
				if e := pending[0]; e.Attempts != 1 || e.LastError != want {
					t.Errorf("attempts %d, error\n%s\nwant\n%s", e.Attempts, e.LastError, want)
				}
				if strings.Join(f.outcomes, ",") != "retry" || !strings.Contains(f.log.String(), "sending failed; will retry") {
					t.Errorf("outcomes %v, log:\n%s", f.outcomes, f.log.String())
				}
				f.noPassword()
			}
		})
	}
}

// needIPv6Loopback skips a test on a machine without ::1.
func needIPv6Loopback(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ln.Close()
}

// TestParseServerSTARTTLS accepts ?starttls=required and ?starttls=optional
// on smtp:// and refuses any other query with an error that names the
// server redacted and says what is allowed.
func TestParseServerSTARTTLS(t *testing.T) {
	for _, raw := range []string{
		"smtp://keygate:" + smtpPassword + "@mail.example.com:25?starttls=optional",
		"smtp://keygate:" + smtpPassword + "@mail.example.com?starttls=required",
	} {
		s, err := email.ParseServer(raw)
		if err != nil {
			t.Errorf("%s: %v", raw, err)
		} else if want := strings.Replace(raw, smtpPassword, "xxxxx", 1); s.String() != want {
			t.Errorf("String() = %q, want %q", s, want)
		}
	}
	const only = "the only query parameter is starttls=required or starttls=optional (smtp:// only)"
	for raw, want := range map[string]string{
		"smtp://keygate:" + smtpPassword + "@mail.example.com?starttls=Optional":                   `smtp://keygate:xxxxx@mail.example.com?starttls=Optional: starttls must be "required" or "optional", got "Optional"`,
		"smtp://keygate:" + smtpPassword + "@mail.example.com?starttls":                            `smtp://keygate:xxxxx@mail.example.com?starttls: starttls must be "required" or "optional", got ""`,
		"smtp://keygate:" + smtpPassword + "@mail.example.com?startls=optional":                    `smtp://keygate:xxxxx@mail.example.com?startls=optional: unknown query parameter "startls"; ` + only,
		"smtp://keygate:" + smtpPassword + "@mail.example.com?starttls=optional&starttls=required": `smtp://keygate:xxxxx@mail.example.com?starttls=optional&starttls=required: starttls= is given more than once`,
		"smtp://keygate:" + smtpPassword + "@mail.example.com?starttls=optional;x":                 `smtp://keygate:xxxxx@mail.example.com?starttls=optional;x: the query does not parse; ` + only,
		"smtps://keygate:" + smtpPassword + "@mail.example.com?starttls=required":                  `smtps://keygate:xxxxx@mail.example.com?starttls=required: starttls= applies to smtp:// only; smtps:// is TLS from the first byte`,
	} {
		if _, err := email.ParseServer(raw); err == nil || err.Error() != want {
			t.Errorf("ParseServer: %v\nwant %s", err, want)
		}
	}
}
