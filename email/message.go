package email

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keygate/keygate"
)

// compose writes e as an RFC 5322 message with a multipart/alternative
// body: the plain text first, the HTML second (clients show the last part
// they can). Bodies are quoted-printable UTF-8, headers RFC 2047-encoded.
func compose(from *mail.Address, e *keygate.Email, now time.Time) ([]byte, error) {
	var b bytes.Buffer
	to := make([]string, len(e.To))
	for i, addr := range e.To {
		// Addresses are checked where they are typed; a control
		// character here (a line break ends the header) is refused
		// rather than written, whatever let it through.
		if strings.IndexFunc(addr, isControl) >= 0 {
			return nil, fmt.Errorf("email: recipient %q holds a control character", addr)
		}
		to[i] = (&mail.Address{Address: addr}).String()
	}
	domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	header := [][2]string{
		{"From", from.String()},
		{"To", strings.Join(to, ", ")},
		{"Subject", encodeSubject(strings.Join(strings.Fields(e.Subject), " "))},
		{"Date", now.UTC().Format(time.RFC1123Z)},
		{"Message-ID", fmt.Sprintf("<%s@%s>", e.ID, domain)},
		{"MIME-Version", "1.0"},
		{"Auto-Submitted", "auto-generated"},
	}
	if kind := headerToken(e.Kind); kind != "" {
		header = append(header, [2]string{"X-Keygate-Email", kind})
	}
	for _, h := range header {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	mw := multipart.NewWriter(&b)
	if err := mw.SetBoundary(boundary()); err != nil {
		return nil, err
	}
	fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=%q\r\n\r\n", mw.Boundary())
	html := e.HTML
	if html == "" {
		html = "<pre>" + escapeHTML(e.Text) + "</pre>"
	}
	for _, part := range []struct{ kind, body string }{{"text/plain", e.Text}, {"text/html", html}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.kind + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write([]byte(lineBreaks.Replace(part.body))); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// encodeSubject RFC 2047-encodes s where it needs it. A subject that
// holds "=?" is encoded whole even when plain ASCII: as written, a mail
// client would decode what looks like an encoded word in it (a token's
// name, say) into other text, line breaks included.
func encodeSubject(s string) string {
	if !strings.Contains(s, "=?") {
		return mime.QEncoding.Encode("utf-8", s)
	}
	var words []string
	for len(s) > 0 {
		n := min(len(s), 45) // 60 base64 characters: each word within RFC 2047's 75
		if n < len(s) {
			// End the word before a character, not inside one.
			for i := n; i > n-utf8.UTFMax; i-- {
				if utf8.RuneStart(s[i]) {
					n = i
					break
				}
			}
		}
		words = append(words, "=?utf-8?b?"+base64.StdEncoding.EncodeToString([]byte(s[:n]))+"?=")
		s = s[n:]
	}
	return strings.Join(words, "\r\n ")
}

func boundary() string {
	var r [12]byte
	_, _ = rand.Read(r[:])
	return "keygate-" + hex.EncodeToString(r[:])
}

func escapeHTML(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;").Replace(s)
}

// SendTest submits one short email to to through server at once, without
// the outbox, so an operator sees the server's answer (keygate email test).
func SendTest(ctx context.Context, server *Server, from, to string) error {
	sender, err := CheckAddress(from)
	if err != nil {
		return fmt.Errorf("email.from: %w", err)
	}
	if _, err := mail.ParseAddress(to); err != nil {
		return fmt.Errorf("%q is not an email address", to)
	}
	e := &keygate.Email{
		ID: keygate.NewID("eml"), Kind: "test", To: []string{to},
		Subject: "keygate test email",
		Text:    "This is a test email from keygate: its mail server settings work.\n",
	}
	msg, err := compose(sender, e, time.Now())
	if err != nil {
		return err
	}
	return server.Send(ctx, sender.Address, e.To, msg)
}

// headerToken returns s if it is a plain word (letters, digits, ".", "-",
// "_"), else "": a kind comes from callers and must not add a header.
func headerToken(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return ""
		}
	}
	return s
}

// lineBreaks makes every line break (CRLF, a lone CR, LF) a LF, which the
// quoted-printable writer puts on the wire as CRLF: a lone CR would
// otherwise vanish into the CRLF after it.
var lineBreaks = strings.NewReplacer("\r\n", "\n", "\r", "\n")

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
