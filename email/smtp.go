package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Server is a mail server to submit to, from email.smtp_url:
//
//	smtp://user:pass@host:587                     STARTTLS, required unless reached on loopback
//	smtp://user:pass@host:25?starttls=optional    STARTTLS when offered (a trusted network)
//	smtp://user:pass@host:587?starttls=required   STARTTLS, required on loopback too
//	smtps://user:pass@host:465                    TLS from the first byte
//
// STARTTLS is required by default because keygate's emails carry links
// that are secrets (invitations): whoever sits on the path could strip
// the server's STARTTLS offer and read them. A server on a loopback
// address is exempt, since the message then never crosses a network.
//
// The password is held only to authenticate; String and every error name
// the server by its redacted URL.
type Server struct {
	implicitTLS bool
	starttls    string // "", starttlsRequired or starttlsOptional
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
		return nil, fmt.Errorf("%s: the scheme must be smtp:// (STARTTLS) or smtps:// (TLS)", s.redacted)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%s: names no host", s.redacted)
	}
	if (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return nil, fmt.Errorf("%s: must be only scheme, user, password, host, port and ?starttls=", s.redacted)
	}
	if err := s.readQuery(u.RawQuery); err != nil {
		return nil, fmt.Errorf("%s: %w", s.redacted, err)
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

// The values of ?starttls= in an smtp:// URL. Without it STARTTLS is
// required unless the server is reached on a loopback address.
const (
	starttlsRequired = "required" // no TLS, no message, wherever the server is
	starttlsOptional = "optional" // STARTTLS when offered, else plain text
)

// readQuery reads the URL's query: nothing, or starttls=required or
// starttls=optional on an smtp:// URL. Unknown parameters are refused so a
// misspelt opt-out (or opt-in) does not silently mean the default.
func (s *Server) readQuery(raw string) error {
	const want = "the only query parameter is starttls=required or starttls=optional (smtp:// only)"
	q, err := url.ParseQuery(raw)
	if err != nil {
		return errors.New("the query does not parse; " + want)
	}
	for _, name := range slices.Sorted(maps.Keys(q)) {
		values := q[name]
		switch {
		case name != "starttls":
			return fmt.Errorf("unknown query parameter %q; %s", name, want)
		case s.implicitTLS:
			return errors.New("starttls= applies to smtp:// only; smtps:// is TLS from the first byte")
		case len(values) > 1:
			return errors.New("starttls= is given more than once")
		case values[0] != starttlsRequired && values[0] != starttlsOptional:
			return fmt.Errorf("starttls must be %q or %q, got %q", starttlsRequired, starttlsOptional, values[0])
		}
		s.starttls = values[0]
	}
	return nil
}

// String is the server's URL with the password replaced by "xxxxx".
func (s *Server) String() string { return s.redacted }

// Send submits one message to the server: connect, TLS (implicit, or
// STARTTLS: see Server for when it is required), AUTH PLAIN when the URL
// has a user, MAIL FROM, RCPT TO for each recipient, DATA. A refused
// recipient fails the whole send, so nobody gets a message twice on retry.
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
	// net/smtp knows no context: cancelling ctx (a shutdown's grace that
	// ended) moves the deadline to now, so a stalled server is left at
	// once rather than at the timeout.
	tcp := conn
	defer context.AfterFunc(ctx, func() { _ = tcp.SetDeadline(time.Now()) })()
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
		if offered, _ := c.Extension("STARTTLS"); offered {
			if err := c.StartTLS(tlsConfig); err != nil {
				return s.fail("STARTTLS", err)
			}
		} else if !s.plainTextAllowed(conn.RemoteAddr()) {
			return s.fail("STARTTLS", errNoSTARTTLS)
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

// errNoSTARTTLS fails a submission to a server that did not offer
// STARTTLS where it is required. It is retried like a server that is down:
// the offer may have been stripped on the way, or the server's TLS be
// switched off for a moment.
var errNoSTARTTLS = errors.New("the server does not offer STARTTLS, and keygate sends in plain text only to a server on a loopback address or with ?starttls=optional in email.smtp_url")

// plainTextAllowed reports whether a submission over remote may go on
// without TLS: ?starttls=optional says so, ?starttls=required says not,
// and by default only a server reached on a loopback address (127.0.0.0/8,
// ::1) may, whatever name the URL gave it, since nothing then crosses a
// network.
func (s *Server) plainTextAllowed(remote net.Addr) bool {
	switch s.starttls {
	case starttlsOptional:
		return true
	case starttlsRequired:
		return false
	}
	tcp, ok := remote.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
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
