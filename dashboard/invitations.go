package dashboard

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/clientip"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/session"
)

// Invitations: an owner invites an email on the Members page and is shown
// the invitation's link once (unless keygate emails it: then only the
// invitee's mailbox gets it); the invitee opens it, logs in with that
// email (or, without an account, sets a password to create it) and
// accepts. The link's secret is in the one response that creates it and
// in the link's own path; pages never log that path (fail redacts it).

// invitationPageLimit bounds the requests one address makes to
// invitation pages, which anyone may open: each costs a lookup.
var invitationPageLimit = keygate.RateLimit{Limit: 30, Period: time.Minute}

type invitationCreatedPage struct {
	frame
	Invitation *keygate.Invitation
	Link       string
	ListURL    string
	// Sent is true when a notifier was handed the link to pass on.
	Sent bool
}

func (h *Handler) createInvitation(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	if err := a.RequireMemberManager(); err != nil {
		h.showError(w, r, f, err)
		return
	}
	form := manage.NewMember{Email: r.PostFormValue("email"), Role: r.PostFormValue("role")}
	inv := manage.Invitations{Store: h.d.Store, Notifier: h.d.Invitations, Logger: h.d.Logger}
	created, err := inv.Invite(r.Context(), caller(f), a.Organization, manage.NewInvitation{Email: form.Email, Role: form.Role}, manage.LinkBase(h.d.PublicURL, r.Host, r.TLS != nil), h.d.Now())
	if err != nil {
		status, msg, ok := formError(err)
		if !ok {
			h.fail(w, r, err)
			return
		}
		h.renderMembers(w, r, f, a, status, form, msg)
		return
	}
	h.d.Logger.InfoContext(r.Context(), "invitation created", "org", a.Organization.Slug,
		"invitation_id", created.Invitation.ID, "role", created.Invitation.Role, "by", f.User.ID)
	p := invitationCreatedPage{frame: *f, Invitation: created.Invitation, Link: created.Link,
		ListURL: h.orgPath(a, "/members"), Sent: h.d.Invitations != nil}
	p.Title, p.Section = "Invitation created", "members"
	h.render(w, r, http.StatusOK, "invitation_created", p)
}

func (h *Handler) revokeInvitation(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	if err := a.RequireMemberManager(); err != nil {
		h.showError(w, r, f, err)
		return
	}
	id := r.PathValue("id")
	if err := manage.RevokeInvitation(r.Context(), h.d.Store, a.Organization, id, h.d.Now()); err != nil {
		h.showError(w, r, f, err)
		return
	}
	h.d.Logger.InfoContext(r.Context(), "invitation revoked", "org", a.Organization.Slug, "invitation_id", id, "by", f.User.ID)
	redirect(w, r, h.orgPath(a, "/members?done=invitation-revoked"))
}

type invitationPage struct {
	frame
	Invitation   *keygate.Invitation
	Organization *keygate.Organization
	// Path is the invitation's own address, where its forms post.
	Path string
	// ForYou: the logged-in user has the invited email.
	ForYou bool
	// LoginCSRF is set for a visitor without a session: the login and the
	// account forms carry it.
	LoginCSRF string
	Name      string
	Error     string
}

// limitInvitationPages runs next unless the client's address has used
// up its allowance of invitation pages; then 429.
func (h *Handler) limitInvitationPages(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := "admin:invitations:ip:" + clientip.BucketOf(h.d.ClientIP(r), h.d.IPv6PrefixLength)
		res, err := h.invitationLimiter.Allow(r.Context(), key, invitationPageLimit.Limit, invitationPageLimit.Period)
		if err != nil && r.Context().Err() != nil {
			// The client went away while the limiter was asked: nobody
			// reads an answer, and nothing failed that an operator must see.
			h.d.Logger.DebugContext(r.Context(), "client went away while the invitation pages' rate limit was checked", "error", err)
			return
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if res.SetHeaders(w.Header()); !res.Allowed {
			w.Header().Set("Retry-After", strconv.Itoa(int(res.RetryAfter/time.Second)))
			h.showError(w, r, nil, keygate.Errorf(keygate.ERATELIMITED, "Too many requests from your address; wait a minute and try again."))
			return
		}
		next(w, r)
	})
}

// invitation shows the invitation a link opens: to its invitee, Accept
// and Decline; to a visitor, the login form and the form that creates
// the invited email's account; to anyone else, whom it is for. Every
// link that opens nothing gets the same page.
func (h *Handler) invitation(w http.ResponseWriter, r *http.Request) {
	h.renderInvitation(w, r, http.StatusOK, "", "")
}

func (h *Handler) renderInvitation(w http.ResponseWriter, r *http.Request, status int, name, msg string) {
	secret := r.PathValue("secret")
	pending, err := manage.FindInvitation(r.Context(), h.d.Store, secret, h.d.Now())
	var f *frame
	s, u, serr := h.d.Sessions.Current(r)
	if serr == nil {
		f = &frame{User: u, CSRF: s.CSRFToken}
		if f.Orgs, serr = manage.Organizations(r.Context(), h.d.Store, manage.Caller{User: u}); serr != nil {
			h.fail(w, r, serr)
			return
		}
	} else if keygate.ErrorCode(serr) != keygate.EUNAUTHORIZED {
		h.fail(w, r, serr)
		return
	}
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	p := invitationPage{Invitation: pending.Invitation, Organization: pending.Organization,
		Path: manage.InvitationPathPrefix + secret, Name: name, Error: msg}
	if f != nil {
		p.frame = *f
		p.ForYou = manage.IsInvitee(pending.Invitation, u)
	} else {
		p.LoginCSRF = randomString()
		http.SetCookie(w, &http.Cookie{
			Name: h.loginCookieName(), Value: p.LoginCSRF, Path: "/", MaxAge: 3600,
			HttpOnly: true, Secure: h.d.Sessions.Secure, SameSite: http.SameSiteStrictMode,
		})
	}
	p.Title = "Join " + pending.Organization.Name
	h.render(w, r, status, "invitation", p)
}

// answerInvitation accepts or declines for the logged-in invitee.
func (h *Handler) answerInvitation(accept bool) func(http.ResponseWriter, *http.Request, *frame) {
	return func(w http.ResponseWriter, r *http.Request, f *frame) {
		secret := r.PathValue("secret")
		if !accept {
			org, err := manage.DeclineInvitation(r.Context(), h.d.Store, f.User, secret, h.d.Now())
			if err != nil {
				h.showError(w, r, f, err)
				return
			}
			h.d.Logger.InfoContext(r.Context(), "invitation declined", "org", org.Slug, "user_id", f.User.ID)
			redirect(w, r, "/orgs?done=declined")
			return
		}
		org, added, err := manage.AcceptInvitation(r.Context(), h.d.Store, f.User, secret, h.d.Now())
		if err != nil {
			h.showError(w, r, f, err)
			return
		}
		h.d.Logger.InfoContext(r.Context(), "invitation accepted", "org", org.Slug, "user_id", f.User.ID, "added", added)
		redirect(w, r, "/orgs/"+url.PathEscape(org.Slug)+"/tokens?joined=1")
	}
}

// invitationSignup creates the invited email's account with the password
// the visitor chose, accepts the invitation and logs them in. The form
// carries the login form's double-submit token.
func (h *Handler) invitationSignup(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		h.renderInvitation(w, r, http.StatusBadRequest, "", "The form could not be read. Try again.")
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	c, err := r.Cookie(h.loginCookieName())
	sent := r.PostFormValue(session.CSRFField)
	if err != nil || sent == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(sent)) != 1 {
		h.renderInvitation(w, r, http.StatusForbidden, name, "This form expired. Please try again.")
		return
	}
	pw := r.PostFormValue("password")
	if pw != r.PostFormValue("password_confirm") {
		h.renderInvitation(w, r, http.StatusBadRequest, name, "The two passwords differ.")
		return
	}
	user, org, err := manage.AcceptInvitationAsNewUser(r.Context(), h.d.Store, r.PathValue("secret"), name, pw, h.d.Now())
	if err != nil {
		if status, msg, ok := formError(err); ok {
			h.renderInvitation(w, r, status, name, msg)
			return
		}
		h.showError(w, r, nil, err)
		return
	}
	if _, err := h.d.Sessions.Login(w, r, user); err != nil {
		h.fail(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: h.loginCookieName(), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: h.d.Sessions.Secure, SameSite: http.SameSiteStrictMode})
	h.d.Logger.InfoContext(r.Context(), "account created from an invitation", "org", org.Slug, "user_id", user.ID)
	redirect(w, r, "/orgs/"+url.PathEscape(org.Slug)+"/tokens?joined=1")
}
