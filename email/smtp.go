package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"net/url"
	"strings"
	"time"
)

// Server is a mail server to submit to, from email.smtp_url:
//
//	smtp://user:pass@host:587   plain connection, STARTTLS when offered
//	smtps://user:pass@host:465  TLS from the first byte
//
// The password is held only to authenticate; String and every error name
// the server by its redacted URL.
type Server struct {
	implicitTLS bool
	host        string // without port, for TLS and AUTH
	addr        string // host:port
	user        string
	password    string
	redacted    string
	// RootCAs, when set, are the only roots trusted for the server's
	// certificate (tests, private PKI); nil: the system's.
	RootCAs *x509.CertPool
	// Timeout bounds one whole submission: connecting, TLS, AUTH and the
	// message. Default 30s.
	Timeout time.Duration
	// LocalName is the name keygate gives in EHLO; default "localhost".
	LocalName string
}

// ParseServer reads an smtp:// or smtps:// URL. Its errors never contain
// the password.
func ParseServer(raw string) (*Server, error) {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil && strings.Contains(raw, "@") {
		// url.Parse quotes the whole input, password and all; and an "@"
		// outside the user part (smtp:/user:pass@host, a slash short)
		// means a password Redacted would not hide.
		return nil, errors.New("not a valid URL (smtp://user:password@host:587 or smtps://…)")
	}
	s := &Server{redacted: u.Redacted()}
	switch u.Scheme {
	case "smtp":
	case "smtps":
		s.implicitTLS = true
	default:
		return nil, fmt.Errorf("%s: the scheme must be smtp:// (STARTTLS when offered) or smtps:// (TLS)", s.redacted)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%s: names no host", s.redacted)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%s: must be only scheme, user, password, host and port", s.redacted)
	}
	s.host = u.Hostname()
	port := u.Port()
	if port == "" {
		port = "587"
		if s.implicitTLS {
			port = "465"
		}
	}
	s.addr = net.JoinHostPort(s.host, port)
	if u.User != nil {
		s.user = u.User.Username()
		s.password, _ = u.User.Password()
	}
	return s, nil
}

// String is the server's URL with the password replaced by "xxxxx".
func (s *Server) String() string { return s.redacted }

// Send submits one message to the server: connect, TLS (implicit, or
// STARTTLS when the server offers it), AUTH PLAIN when the URL has a user,
// MAIL FROM, RCPT TO for each recipient, DATA. A refused recipient fails
// the whole send, so nobody gets a message twice on retry.
func (s *Server) Send(ctx context.Context, from string, to []string, msg []byte) (err error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return s.fail("connecting", err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	tlsConfig := &tls.Config{ServerName: s.host, RootCAs: s.RootCAs, MinVersion: tls.VersionTLS12}
	if s.implicitTLS {
		tc := tls.Client(conn, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return s.fail("TLS handshake", err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		return s.fail("greeting", err)
	}
	defer c.Close()
	local := s.LocalName
	if local == "" {
		local = "localhost"
	}
	if err := c.Hello(local); err != nil {
		return s.fail("EHLO", err)
	}
	if !s.implicitTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(tlsConfig); err != nil {
				return s.fail("STARTTLS", err)
			}
		}
	}
	if s.user != "" {
		// net/smtp's PLAIN refuses to send the password over a plain
		// connection to anything but localhost.
		if err := c.Auth(smtp.PlainAuth("", s.user, s.password, s.host)); err != nil {
			return s.fail("AUTH", err)
		}
	}
	if err := c.Mail(from); err != nil {
		return s.fail("MAIL FROM", err)
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt); err != nil {
			return s.fail("RCPT TO", err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return s.fail("DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return s.fail("DATA", err)
	}
	if err := w.Close(); err != nil {
		return s.fail("DATA", err)
	}
	_ = c.Quit()
	return nil
}

// SendError is a failed submission. Permanent is true when the server
// refused with a 5xx reply other than one about authentication, so trying
// again would get the same answer.
type SendError struct {
	Step      string
	Server    string // redacted URL
	Permanent bool
	Err       error
}

func (e *SendError) Error() string {
	return fmt.Sprintf("email: %s %s: %v", e.Step, e.Server, redactError(e.Err))
}

func (e *SendError) Unwrap() error { return e.Err }

func (s *Server) fail(step string, err error) error {
	se := &SendError{Step: step, Server: s.redacted, Err: err}
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 && te.Code < 600 {
		switch te.Code {
		case 530, 534, 535, 538: // authentication: the operator may fix it
		default:
			se.Permanent = step == "RCPT TO" || step == "MAIL FROM" || step == "DATA"
		}
	}
	return se
}

// redactError returns the error's text; it exists so that a future change
// that would put credentials in an error has one place to strip them.
// net/smtp's errors carry the server's replies, which never echo AUTH
// data, and dial and TLS errors name only the address.
func redactError(err error) string { return strings.TrimSpace(err.Error()) }

// CheckAddress reports whether addr is a bare email address
// ("keygate@example.com") or a name and address
// ("keygate <keygate@example.com>").
func CheckAddress(addr string) (*mail.Address, error) {
	a, err := mail.ParseAddress(addr)
	if err != nil {
		return nil, fmt.Errorf("%q is not an email address: %v", addr, err)
	}
	return a, nil
}
