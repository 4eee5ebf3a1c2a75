// Package session manages dashboard logins: an opaque random cookie whose
// SHA-256 is the stored session id, with a per-session CSRF token. The
// dashboard, the management API and the OAuth login/consent pages share it,
// so one login serves all three. It never logs cookie values.
package session

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/keygate/keygate"
)

// CookieName is the session cookie. The __Host- prefix is used when the
// cookie is Secure, so browsers refuse it from any other origin or path.
const (
	CookieName       = "keygate_session"
	SecureCookieName = "__Host-keygate_session"
	// CSRFField is the form field, and CSRFHeader the header, that carry the
	// session's CSRF token on unsafe requests.
	CSRFField  = "csrf_token"
	CSRFHeader = "X-CSRF-Token"
	// DefaultTTL is how long a login lasts.
	DefaultTTL = 12 * time.Hour
)

// Manager creates, finds and ends sessions.
type Manager struct {
	Sessions keygate.SessionService
	Users    keygate.UserService
	// Secure marks cookies Secure (behind TLS) and switches to the __Host- name.
	Secure bool
	TTL    time.Duration
	Now    func() time.Time
	// StoreTimeout bounds the session and user lookup of each request
	// (keygate.DefaultStoreTimeout when not positive): a database that
	// stops answering gets the visitor a 503 within it, not a page that
	// hangs.
	StoreTimeout time.Duration
}

var errStoreTimeout = keygate.Errorf(keygate.EUNAVAILABLE, "The database did not answer in time; try again.")

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) cookieName() string { return m.HostCookie(CookieName) }

// HostCookie is the name to give a cookie of keygate's pages: behind TLS
// it carries the __Host- prefix, so a browser takes it only from keygate's
// own origin, Secure, for the whole site and without a Domain. Any cookie
// a check depends on needs it (the session, the login forms' CSRF
// cookies): a sibling subdomain is the same site, and without the prefix
// it could plant the cookie for the whole domain.
func (m *Manager) HostCookie(name string) string {
	if m.Secure {
		return "__Host-" + name
	}
	return name
}

// Login starts a new session for user, replacing any session the request
// carried (so a session id planted before login is worthless), and sets the
// cookie on w.
func (m *Manager) Login(w http.ResponseWriter, r *http.Request, user *keygate.User) (*keygate.Session, error) {
	if old, err := r.Cookie(m.cookieName()); err == nil {
		_ = m.Sessions.DeleteSession(r.Context(), keygate.HashToken(old.Value))
	}
	value := randomString(32)
	ttl := m.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	now := m.now().UTC()
	s := &keygate.Session{
		ID:        keygate.HashToken(value),
		UserID:    user.ID,
		CSRFToken: randomString(32),
		CreatedAt: now,
		ExpiresAt: now.Add(ttl),
	}
	if err := m.Sessions.CreateSession(r.Context(), s); err != nil {
		return nil, err
	}
	http.SetCookie(w, &http.Cookie{
		Name:     m.cookieName(),
		Value:    value,
		Path:     "/",
		Expires:  s.ExpiresAt,
		HttpOnly: true,
		Secure:   m.Secure,
		SameSite: http.SameSiteLaxMode,
	})
	return s, nil
}

// Current returns the request's session and user; an error with code
// EUNAUTHORIZED when there is none or it has expired.
func (m *Manager) Current(r *http.Request) (*keygate.Session, *keygate.User, error) {
	c, err := r.Cookie(m.cookieName())
	if err != nil || c.Value == "" || len(c.Value) > 128 {
		return nil, nil, keygate.Errorf(keygate.EUNAUTHORIZED, "Log in to continue.")
	}
	ctx, cancel := keygate.StoreContext(r.Context(), m.StoreTimeout)
	defer cancel()
	s, u, err := m.find(ctx, c.Value)
	if keygate.StoreTimedOut(r.Context(), err) {
		return nil, nil, errStoreTimeout
	}
	return s, u, err
}

func (m *Manager) find(ctx context.Context, value string) (*keygate.Session, *keygate.User, error) {
	s, err := m.Sessions.FindSession(ctx, keygate.HashToken(value))
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return nil, nil, keygate.Errorf(keygate.EUNAUTHORIZED, "Log in to continue.")
	} else if err != nil {
		return nil, nil, err
	}
	if !m.now().Before(s.ExpiresAt) {
		return nil, nil, keygate.Errorf(keygate.EUNAUTHORIZED, "Your session has expired. Log in again.")
	}
	u, err := m.Users.FindUserByID(ctx, s.UserID)
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return nil, nil, keygate.Errorf(keygate.EUNAUTHORIZED, "Log in to continue.")
	} else if err != nil {
		return nil, nil, err
	}
	return s, u, nil
}

// Logout deletes the request's session and clears the cookie.
func (m *Manager) Logout(w http.ResponseWriter, r *http.Request) error {
	if c, err := r.Cookie(m.cookieName()); err == nil && c.Value != "" {
		if err := m.Sessions.DeleteSession(r.Context(), keygate.HashToken(c.Value)); err != nil && keygate.ErrorCode(err) != keygate.ENOTFOUND {
			return err
		}
	}
	http.SetCookie(w, &http.Cookie{
		Name: m.cookieName(), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: m.Secure, SameSite: http.SameSiteLaxMode,
	})
	return nil
}

// ValidCSRF reports whether r carries s's CSRF token in the form field or
// header. Call it on every state-changing request made with a session.
func ValidCSRF(r *http.Request, s *keygate.Session) bool {
	got := r.Header.Get(CSRFHeader)
	if got == "" {
		got = r.PostFormValue(CSRFField)
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.CSRFToken)) == 1
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("session: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
