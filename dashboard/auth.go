package dashboard

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/password"
	"github.com/keygate/keygate/session"
)

// maxForm bounds every form body; the largest is a list of entitlements.
const maxForm = 256 << 10

// user runs next for a logged-in user. A visitor without a session is sent
// to the login page; a form posted without the session's CSRF token is
// refused before next sees it.
func (h *Handler) user(next func(http.ResponseWriter, *http.Request, *frame)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, u, err := h.d.Sessions.Current(r)
		if keygate.ErrorCode(err) == keygate.EUNAUTHORIZED {
			h.toLogin(w, r)
			return
		} else if err != nil {
			h.fail(w, r, err)
			return
		}
		f := &frame{User: u, CSRF: s.CSRFToken}
		r = r.WithContext(audit.AsUser(r.Context(), u))
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if err := r.ParseForm(); err != nil {
				var tooLarge *http.MaxBytesError
				if errors.As(err, &tooLarge) {
					h.showError(w, r, f, keygate.Errorf(keygate.ETOOLARGE, "The form is too large."))
				} else {
					h.showError(w, r, f, keygate.Errorf(keygate.EINVALID, "The form could not be read."))
				}
				return
			}
			if !session.ValidCSRF(r, s) {
				h.showError(w, r, f, keygate.Errorf(keygate.EFORBIDDEN,
					"This form has expired or did not come from keygate. Go back, reload the page and try again."))
				return
			}
		}
		if f.Orgs, err = manage.Organizations(r.Context(), h.d.Store, caller(f)); err != nil {
			h.fail(w, r, err)
			return
		}
		next(w, r, f)
	})
}

// org runs next for a member of the organization in the path (or a site
// administrator); anyone else gets the same 404 as for an unknown slug.
func (h *Handler) org(next func(http.ResponseWriter, *http.Request, *frame, *manage.Access)) http.Handler {
	return h.user(func(w http.ResponseWriter, r *http.Request, f *frame) {
		a, err := manage.OrganizationAccess(r.Context(), h.d.Store, caller(f), r.PathValue("org"))
		if err != nil {
			h.showError(w, r, f, err)
			return
		}
		f.Org = a
		next(w, r, f, a)
	})
}

func caller(f *frame) manage.Caller { return manage.Caller{User: f.User} }

// toLogin sends a visitor to the login page, coming back to the page they
// asked for afterwards.
func (h *Handler) toLogin(w http.ResponseWriter, r *http.Request) {
	to := "/login"
	if r.Method == http.MethodGet && r.URL.Path != "/" {
		to += "?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	redirect(w, r, to)
}

func (h *Handler) home(w http.ResponseWriter, r *http.Request) {
	_, u, err := h.d.Sessions.Current(r)
	if keygate.ErrorCode(err) == keygate.EUNAUTHORIZED {
		h.toLogin(w, r)
		return
	} else if err != nil {
		h.fail(w, r, err)
		return
	}
	orgs, err := manage.Organizations(r.Context(), h.d.Store, manage.Caller{User: u})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if len(orgs) == 1 || (len(orgs) > 0 && !u.IsAdmin) {
		redirect(w, r, "/orgs/"+url.PathEscape(orgs[0].Organization.Slug)+"/tokens")
		return
	}
	redirect(w, r, "/orgs")
}

type loginPage struct {
	frame
	LoginCSRF string
	Email     string
	Next      string
	Error     string
}

// The login form is protected by a double-submit cookie: a random value set
// with the form and echoed in it, which a page on another site can neither
// read nor set. That stops a forged login into an attacker's account.
func (h *Handler) loginCookieName() string { return h.d.Sessions.HostCookie("keygate_login") }

func (h *Handler) loginForm(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if _, _, err := h.d.Sessions.Current(r); err == nil {
		if next == "" {
			next = "/"
		}
		redirect(w, r, next)
		return
	}
	p := loginPage{Next: next}
	if r.URL.Query().Get("done") == "logged-out" {
		p.Notice = "You have logged out."
	}
	h.renderLogin(w, r, http.StatusOK, p)
}

func (h *Handler) renderLogin(w http.ResponseWriter, r *http.Request, status int, p loginPage) {
	p.Title = "Log in"
	p.LoginCSRF = randomString()
	http.SetCookie(w, &http.Cookie{
		Name: h.loginCookieName(), Value: p.LoginCSRF, Path: "/", MaxAge: 3600,
		HttpOnly: true, Secure: h.d.Sessions.Secure, SameSite: http.SameSiteStrictMode,
	})
	h.render(w, r, status, "login", p)
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		h.renderLogin(w, r, http.StatusBadRequest, loginPage{Error: "The form could not be read. Try again."})
		return
	}
	p := loginPage{Email: strings.TrimSpace(r.PostFormValue("email")), Next: safeNext(r.PostFormValue("next"))}
	c, err := r.Cookie(h.loginCookieName())
	sent := r.PostFormValue(session.CSRFField)
	if err != nil || sent == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(sent)) != 1 {
		p.Error = "Your login form expired. Please try again."
		h.renderLogin(w, r, http.StatusForbidden, p)
		return
	}
	user, err := h.d.Logins.CheckPassword(r.Context(), h.d.Store, p.Email, r.PostFormValue("password"), h.d.ClientIP(r))
	if err != nil {
		status, ok := loginRefusals[keygate.ErrorCode(err)]
		if !ok || (status == http.StatusServiceUnavailable && !errors.Is(err, password.ErrBusy)) {
			h.fail(w, r, err)
			return
		}
		h.d.Logger.InfoContext(r.Context(), "login refused", "code", keygate.ErrorCode(err), "ip", h.d.ClientIP(r))
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		p.Error = keygate.ErrorMessage(err)
		h.renderLogin(w, r, status, p)
		return
	}
	if _, err := h.d.Sessions.Login(w, r, user); err != nil {
		h.fail(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: h.loginCookieName(), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: h.d.Sessions.Secure, SameSite: http.SameSiteStrictMode})
	h.d.Logger.InfoContext(r.Context(), "user logged in", "user_id", user.ID)
	if p.Next == "" {
		p.Next = "/"
	}
	redirect(w, r, p.Next)
}

// loginRefusals are the login outcomes shown on the form, by status.
var loginRefusals = map[string]int{
	keygate.EUNAUTHORIZED: http.StatusUnauthorized,
	keygate.ERATELIMITED:  http.StatusTooManyRequests,
	keygate.EUNAVAILABLE:  http.StatusServiceUnavailable, // password.ErrBusy
}

func (h *Handler) logoutForm(w http.ResponseWriter, r *http.Request, f *frame) {
	f.Title = "Log out"
	h.render(w, r, http.StatusOK, "logout", f)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, f *frame) {
	if err := h.d.Sessions.Logout(w, r); err != nil {
		h.fail(w, r, err)
		return
	}
	h.d.Logger.InfoContext(r.Context(), "user logged out", "user_id", f.User.ID)
	redirect(w, r, "/login?done=logged-out")
}

// safeNext keeps a post-login destination only when it is a path on this
// site, so the login page cannot be used to send people elsewhere. A
// control character anywhere refuses it: url.Parse does not look for one
// in the fragment, and http.Redirect's cleaning can move one from there
// into the path of the Location it writes.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsRune(next, '\\') ||
		strings.ContainsFunc(next, isControl) {
		return ""
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return ""
	}
	return next
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func randomString() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic("dashboard: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
