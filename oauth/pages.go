package oauth

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/password"
	"github.com/keygate/keygate/session"
)

//go:embed pages/*.html
var pageFiles embed.FS

var pages = template.Must(template.ParseFS(pageFiles, "pages/*.html"))

const (
	maxFormBytes = 64 << 10
	// loginCookie carries the login form's CSRF token before any session
	// exists (double submit), so a site cannot log a visitor in to an
	// account of its choosing. Behind TLS it is a __Host- cookie
	// (loginCookieName), which no sibling subdomain can plant.
	loginCookie = "keygate_oauth_login"
)

// setPageHeaders protects the pages: no framing (a framed consent page
// could be clicked through), no caching, no referrer carrying the request.
// There is deliberately no form-action: browsers apply it to the redirect
// that follows the consent form, which goes to the client.
func setPageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	// The pages use the dashboard's stylesheet, served on the same
	// listener, so moving from a client into keygate looks like one product.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
}

func (s *Server) renderPage(w http.ResponseWriter, status int, name string, data any) {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		s.log.Error("oauth: rendering page failed", "page", name, "err", err)
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	setPageHeaders(w)
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

func (s *Server) renderProblem(w http.ResponseWriter, p *pageProblem) {
	s.renderPage(w, p.status, "problem.html", struct{ Message string }{p.message})
}

type loginView struct {
	Request string
	Email   string
	Message string
	CSRF    string
}

// renderLogin shows the login form for an authorization request, with a
// fresh CSRF cookie.
func (s *Server) renderLogin(w http.ResponseWriter, query, email, message string, status int) {
	csrf := randomToken()
	http.SetCookie(w, &http.Cookie{
		Name: s.loginCookieName(), Value: csrf, Path: "/", HttpOnly: true,
		Secure: s.sessions.Secure, SameSite: http.SameSiteStrictMode,
	})
	s.renderPage(w, status, "login.html", loginView{Request: query, Email: email, Message: message, CSRF: csrf})
}

func (s *Server) loginCookieName() string { return s.sessions.HostCookie(loginCookie) }

// serveLogin checks the login form and, on success, starts a dashboard
// session and returns to the authorization request.
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.renderProblem(w, badPage("The form could not be read."))
		return
	}
	query := r.PostForm.Get("request")
	email := strings.TrimSpace(r.PostForm.Get("email"))
	c, err := r.Cookie(s.loginCookieName())
	if err != nil || !equalStrings(c.Value, r.PostForm.Get("login_csrf")) {
		s.renderLogin(w, query, email, "The form expired. Log in again.", http.StatusForbidden)
		return
	}
	user, err := s.logins.CheckPassword(r.Context(), s.store, email, r.PostForm.Get("password"), s.clientIP(r))
	switch keygate.ErrorCode(err) {
	case "":
	case keygate.EUNAUTHORIZED:
		s.log.Info("oauth: login refused", "ip", s.clientIP(r))
		s.renderLogin(w, query, email, "Email or password is incorrect.", http.StatusUnauthorized)
		return
	case keygate.ERATELIMITED:
		s.log.Warn("oauth: login attempts limited", "ip", s.clientIP(r))
		s.renderLogin(w, query, email, keygate.ErrorMessage(err), http.StatusTooManyRequests)
		return
	case keygate.EUNAVAILABLE:
		if errors.Is(err, password.ErrBusy) {
			s.log.Warn("oauth: login refused while busy hashing passwords", "ip", s.clientIP(r))
			w.Header().Set("Retry-After", "1")
			s.renderLogin(w, query, email, keygate.ErrorMessage(err), http.StatusServiceUnavailable)
			return
		}
		fallthrough
	default:
		s.log.Error("oauth: checking a login failed", "err", err)
		s.renderProblem(w, &pageProblem{status: http.StatusInternalServerError, message: "keygate could not check your login; try again."})
		return
	}
	if _, err := s.sessions.Login(w, r, user); err != nil {
		s.log.Error("oauth: starting session failed", "user_id", user.ID, "err", err)
		s.renderProblem(w, &pageProblem{status: http.StatusInternalServerError, message: "keygate could not log you in; try again."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: s.loginCookieName(), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.sessions.Secure, SameSite: http.SameSiteStrictMode})
	s.log.Info("oauth: user logged in for authorization", "user_id", user.ID)
	backToAuthorize(w, query)
}

// serveLogout ends the session from the consent page ("not you?") and
// shows the login form for the same request.
func (s *Server) serveLogout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.renderProblem(w, badPage("The form could not be read."))
		return
	}
	if sess, _, err := s.sessions.Current(r); err == nil {
		if !validSessionCSRF(r, sess) {
			s.renderProblem(w, &pageProblem{status: http.StatusForbidden, message: "This form has expired. Start again from your application."})
			return
		}
		if err := s.sessions.Logout(w, r); err != nil {
			s.log.Error("oauth: ending session failed", "err", err)
		}
	}
	backToAuthorize(w, r.PostForm.Get("request"))
}

// backToAuthorize redirects to the authorization endpoint with the request
// re-encoded (never a location taken from the form as is). The location
// is relative, so it stays right behind a proxy that mounts keygate
// under a path.
func backToAuthorize(w http.ResponseWriter, query string) {
	q, _ := url.ParseQuery(query)
	w.Header().Set("Location", "authorize?"+q.Encode())
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusSeeOther)
}

func validSessionCSRF(r *http.Request, sess *keygate.Session) bool {
	return session.ValidCSRF(r, sess)
}

type consentView struct {
	ClientName     string
	ClientID       string
	ClientHost     string // host of a metadata document's URL
	ClientURI      string
	Registered     bool // dynamically registered: anyone could have named it so
	RedirectHost   string
	LocalRedirect  bool
	APIName        string
	Resource       string
	Scopes         []string
	Offline        bool
	Organizations  []organizationView
	UserEmail      string
	CSRF           string
	Request        string
	NoOrganization bool
}

type organizationView struct {
	ID, Name, Slug               string
	Plan                         string
	States, Brands, Dispensaries []string
	Checked                      bool
}

// renderConsent shows what the client asks for and for which organization.
func (s *Server) renderConsent(w http.ResponseWriter, r *http.Request, req *authRequest, sess *keygate.Session, user *keygate.User) {
	ms, err := s.store.ListMemberships(r.Context(), keygate.MembershipFilter{UserID: user.ID})
	if err != nil {
		s.log.Error("oauth: listing memberships failed", "user_id", user.ID, "err", err)
		s.renderProblem(w, &pageProblem{status: http.StatusInternalServerError, message: "keygate could not load your organizations; try again."})
		return
	}
	redirect, _ := url.Parse(req.redirectURI)
	v := consentView{
		ClientName:    clientName(req.client),
		ClientID:      req.client.ID,
		ClientURI:     req.client.URI,
		Registered:    req.client.Source == keygate.OAuthClientRegistered,
		RedirectHost:  redirect.Host,
		LocalRedirect: isLoopbackHost(redirect.Hostname()),
		APIName:       req.res.api.Name,
		Resource:      req.res.url,
		Scopes:        req.scopes,
		Offline:       req.offline,
		UserEmail:     user.Email,
		CSRF:          sess.CSRFToken,
		Request:       req.query,
	}
	if req.client.Source == keygate.OAuthClientMetadata {
		if u, err := url.Parse(req.client.ID); err == nil {
			v.ClientHost = u.Host
		}
	}
	for _, m := range ms {
		org, err := s.store.FindOrganizationByID(r.Context(), m.OrganizationID)
		if err != nil {
			s.log.Error("oauth: loading organization failed", "org_id", m.OrganizationID, "err", err)
			continue
		}
		v.Organizations = append(v.Organizations, organizationView{
			ID: org.ID, Name: org.Name, Slug: org.Slug, Plan: org.Plan,
			States:       org.Entitlements.States,
			Brands:       org.Entitlements.Brands,
			Dispensaries: org.Entitlements.Dispensaries,
			Checked:      len(v.Organizations) == 0,
		})
	}
	v.NoOrganization = len(v.Organizations) == 0
	s.renderPage(w, http.StatusOK, "consent.html", v)
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("oauth: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func equalStrings(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
