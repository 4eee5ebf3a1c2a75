package email

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

// FuzzCompose writes messages from arbitrary recipients, subjects,
// kinds, sender names and texts — an invitee's email is whatever the
// inviter typed — and reads them back as a mail client would. Whatever
// goes in: the message has exactly keygate's headers, each once (no input
// adds one); the recipients and subject read back as given (the subject
// with its white space folded); both parts hold the text.
func FuzzCompose(f *testing.F) {
	f.Add("ann@example.com", "Your token expires", "token_expiring", "keygate", "Hello,\nyour token expires.\n")
	f.Add("ann@example.com\r\nBcc: eve@example.com", "Hi\r\nBcc: eve@example.com", "x\r\nBcc: e", "k\r\nX: y", "a\r\n.\r\nb")
	f.Add("\"ann\\\"\"@example.com", "=?utf-8?q?=0D=0ABcc:_eve?=", "kind", "Ünïcode <x>", "--keygate-boundary\r\n")
	f.Add("ann@[127.0.0.1]", strings.Repeat("long ", 50), "", "", "")
	f.Add("a@b", "\x00\x7f", "token.created", "\"", "\r")
	base := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	want := []string{"Auto-Submitted", "Content-Type", "Date", "From", "Message-Id", "Mime-Version", "Subject", "To"}

	f.Fuzz(func(t *testing.T, to, subject, kind, fromName, text string) {
		from := &mail.Address{Name: fromName, Address: "keygate@example.com"}
		e := &keygate.Email{ID: "eml_1", Kind: kind, To: []string{to, "bob@example.com"}, Subject: subject, Text: text}
		raw, err := compose(from, e, base)
		if err != nil {
			if strings.IndexFunc(to, isControl) < 0 {
				t.Fatalf("compose: %v", err)
			}
			return // a recipient with a control character is refused
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("the message does not parse: %v\n%q", err, raw)
		}
		var names []string
		for name, values := range msg.Header {
			if len(values) != 1 {
				t.Fatalf("header %s %d times: %q\n%q", name, len(values), values, raw)
			}
			names = append(names, name)
		}
		expected := slices.Clone(want)
		if headerToken(kind) != "" {
			expected = append(expected, "X-Keygate-Email")
		}
		slices.Sort(names)
		slices.Sort(expected)
		if !slices.Equal(names, expected) {
			t.Fatalf("headers %q, want %q\n%q", names, expected, raw)
		}
		if got := msg.Header.Get("X-Keygate-Email"); got != headerToken(kind) {
			t.Fatalf("X-Keygate-Email %q for kind %q", got, kind)
		}
		if a, err := mail.ParseAddress(to); err == nil && a.Address == to && a.Name == "" {
			list, err := msg.Header.AddressList("To")
			if err != nil || len(list) != 2 || list[0].Address != to || list[1].Address != "bob@example.com" {
				t.Fatalf("To %q reads back as %v (%v)", to, list, err)
			}
		}
		dec := new(mime.WordDecoder)
		if got, err := dec.DecodeHeader(msg.Header.Get("Subject")); err != nil || got != strings.Join(strings.Fields(subject), " ") && utf8Clean(subject) {
			t.Fatalf("Subject %q reads back as %q (%v)", subject, got, err)
		}
		_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		if err != nil {
			t.Fatal(err)
		}
		mr := multipart.NewReader(msg.Body, params["boundary"])
		parts := 0
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("part %d: %v\n%q", parts, err, raw)
			}
			body, err := io.ReadAll(p) // NextPart has undone the quoted-printable
			if err != nil {
				t.Fatalf("part %d: %v", parts, err)
			}
			if parts == 0 && lines(string(body)) != lines(text) {
				t.Fatalf("text %q reads back as %q", text, body)
			}
			parts++
		}
		if parts != 2 {
			t.Fatalf("%d parts, want the text and the HTML", parts)
		}
	})
}

// lines is s with every line break (CRLF, CR, LF) a LF, as
// quoted-printable text ends its lines with CRLF on the wire, and without
// the white space that ends it: before the part's closing boundary it
// ends a line, where decoders drop it (RFC 2045 section 6.7).
func lines(s string) string {
	return strings.TrimRight(strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(s), " \t")
}

// utf8Clean reports whether s holds only what a Q-encoded word carries
// back unchanged: valid UTF-8.
func utf8Clean(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// FuzzParseServer reads arbitrary email.smtp_url values: a password in
// the URL never appears in an error or in the server's String, the form
// logs and `config check` show; an accepted URL's STARTTLS policy is the
// default or one it spells out as starttls=required or starttls=optional,
// and never set on smtps://.
func FuzzParseServer(f *testing.F) {
	for _, s := range []string{
		"smtp://user:s3cret-pass@mail.example.com:587", "smtps://u:p%40ss-word@mail.example.com",
		"smtp://u:hunter2hunter2@", "http://u:hunter2hunter2@mail.example.com", "smtp://u:hunter2hunter2@h/path?q",
		"smtp://u:hunter2hunter2@[::1", "smtp:/user:hunter2hunter2@mail.example.com:587", "smtp://u:hunter2 hunter2@h", "smtp://u:%zzhunter2@h", "smtp://:@h",
		"smtp://u:hunter2hunter2@h:25?starttls=optional", "smtp://u:hunter2hunter2@h?starttls=required", "smtps://u:hunter2hunter2@h?starttls=required",
		"smtp://u:hunter2hunter2@h?starttls=optional&starttls=required", "smtp://u:hunter2hunter2@h?startls=optional", "smtp://u:hunter2hunter2@h?starttls=%6Fptional",
		"smtp://u:hunter2hunter2@h?starttls=optional;x", "smtp://u:hunter2hunter2@h?starttls", "smtp://u:hunter2hunter2@h?starttls=optional#",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if s, err := ParseServer(raw); err == nil {
			checkSTARTTLSPolicy(t, raw, s)
		}
		secret := password(raw)
		if len(secret) < 6 || strings.Contains(strings.Replace(raw, secret, "", 1), secret) {
			t.Skip() // too short, or standing elsewhere in the URL too, to tell apart
		}
		s, err := ParseServer(raw)
		if err != nil {
			if strings.Contains(err.Error(), secret) && !fromElsewhere(raw, secret) {
				t.Fatalf("ParseServer(%q): error %q shows the password", raw, err)
			}
			return
		}
		if strings.Contains(s.String(), secret) {
			t.Fatalf("ParseServer(%q).String() = %q shows the password", raw, s)
		}
	})
}

// checkSTARTTLSPolicy fails the test unless the policy ParseServer read
// from raw is the default or one raw's query spells out, on smtp:// only.
func checkSTARTTLSPolicy(t *testing.T, raw string, s *Server) {
	t.Helper()
	switch {
	case s.starttls == "":
	case s.implicitTLS:
		t.Fatalf("ParseServer(%q): starttls=%s on smtps://", raw, s.starttls)
	case s.starttls != starttlsRequired && s.starttls != starttlsOptional:
		t.Fatalf("ParseServer(%q): starttls=%q accepted", raw, s.starttls)
	default:
		u, _ := url.Parse(raw)
		if q, _ := url.ParseQuery(u.RawQuery); q.Get("starttls") != s.starttls {
			t.Fatalf("ParseServer(%q): starttls=%s, not what the query says", raw, s.starttls)
		}
	}
}

// fromElsewhere reports whether the secret in ParseServer's error for raw
// comes from the rest of the URL, not the password: with the password
// replaced by other characters the error still holds it (a host whose
// escaped form spells it, say).
func fromElsewhere(raw, secret string) bool {
	other := strings.Replace(raw, secret, strings.Repeat("q", len(secret)), 1)
	if other == raw {
		return false // written escaped: no telling, so it counts as the password
	}
	_, err := ParseServer(other)
	return err != nil && strings.Contains(err.Error(), secret)
}

// password is what stands between the first ':' after "//" and the last
// '@' of the URL's authority, as written and as decoded.
func password(raw string) string {
	_, rest, ok := strings.Cut(raw, "//")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return ""
	}
	_, pw, ok := strings.Cut(rest[:at], ":")
	if !ok {
		return ""
	}
	if dec, err := url.PathUnescape(pw); err == nil && len(dec) >= 6 && !strings.Contains(pw, dec) {
		return dec
	}
	return pw
}
