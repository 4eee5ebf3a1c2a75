// Package api is keygate's management REST API under /api/v1/: the same
// organizations, members, tokens, webhooks, usage and OAuth grants
// (connected MCP clients) the dashboard shows, for scripts.
// Callers authenticate with a dashboard session (and its CSRF token on every
// change) or an admin key sent as "Authorization: Bearer kgadm_…". Every
// error is JSON {"error": {"code", "message"}} with the status its code maps
// to in one place (status below). The OpenAPI 3.1 document served at
// /api/v1/openapi.json lists exactly the routes registered here, plus the
// gateway's POST /api/v1/verify.
//
// The API returns a token's secret, and a webhook endpoint's signing
// secret, only in the response that creates it, and never logs either.
package api

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/session"
	"github.com/keygate/keygate/webhook"
)

// Deps is what the API needs from the server that mounts it.
type Deps struct {
	Store keygate.Store
	APIs  []*keygate.API
	// Sessions lets dashboard logins use the API; nil: admin keys only.
	Sessions *session.Manager
	Logger   *slog.Logger
	Now      func() time.Time
	// Notify, when set, hears about every change this handler commits
	// (a token deleted, an organization changed or deleted) right after the
	// commit, so this instance's caches drop it before the next request
	// instead of when the store's change feed delivers it. Wire it to the
	// gateway's token cache.
	Notify func(keygate.Change)
	// Webhooks sends the organizations' webhook events: token.created and
	// token.deleted after this handler creates or deletes a token, and test
	// events. nil when the store keeps no webhooks: then no events go out
	// and the webhook routes answer 503.
	Webhooks *webhook.Dispatcher
	// PendingUsage is the gateway's not yet written last use of tokens,
	// merged into what is shown; nil: the stored times only.
	PendingUsage manage.PendingUsage
	// PublicURL is the dashboard's address (admin.public_url), which
	// invitation links start with; "": the address each request was sent
	// to.
	PublicURL string
	// Invitations, when set, is handed every new invitation's link to send
	// to the invitee; nil: only the inviter gets the link, in the answer.
	Invitations manage.InvitationNotifier
	// StoreTimeout bounds the admin key or session lookup that starts
	// every request (cache.store_timeout); 0: keygate.DefaultStoreTimeout.
	StoreTimeout time.Duration
	// EmailSending says whether keygate has a mail server (email.smtp_url),
	// shown beside the organizations' email settings.
	EmailSending bool
}

// Handler serves the management API.
type Handler struct {
	d Deps
	// mux serves the routes; paths answers, for a path that no route of the
	// request's method matches, which methods would have.
	mux, paths *http.ServeMux
}

// New returns the management API. Mount it at "/api/v1/"; it answers every
// path below that, unknown ones with a JSON 404 (or 405 when the path
// exists for other methods).
func New(d Deps) *Handler {
	if d.Store == nil {
		panic("api: Deps.Store is required")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	h := &Handler{d: d, mux: http.NewServeMux(), paths: http.NewServeMux()}
	allowed := map[string][]string{}
	for _, rt := range h.routes() {
		h.mux.Handle(rt.Method+" "+rt.Path, h.endpoint(rt))
		allowed[rt.Path] = append(allowed[rt.Path], rt.Method)
	}
	for path, methods := range allowed {
		allow := strings.Join(methods, ", ")
		h.paths.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			h.writeError(w, r, keygate.Errorf(keygate.EMETHODALLOWED, "%s is not allowed here; use %s.", r.Method, allow))
		})
	}
	h.paths.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.writeError(w, r, keygate.Errorf(keygate.ENOTFOUND, "No such endpoint: %s %s. See /api/v1/openapi.json.", r.Method, r.URL.Path))
	})
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if _, pattern := h.mux.Handler(r); pattern != "" {
		h.mux.ServeHTTP(w, r)
		return
	}
	h.paths.ServeHTTP(w, r)
}

// Route is one endpoint: method, net/http path pattern and handling.
type Route struct {
	Method string
	Path   string
	// Public routes need no caller.
	Public bool
	handle func(w http.ResponseWriter, r *http.Request, c manage.Caller) error
}

// VerifyPath is the gateway's token verification endpoint. It shares the
// /api/v1/ prefix and the OpenAPI document but is served by the gateway,
// which is mounted next to this handler.
const VerifyPath = "/api/v1/verify"

// routes lists every endpoint; New registers these and nothing else, and
// the OpenAPI test compares this list with the document.
func (h *Handler) routes() []Route {
	return []Route{
		{Method: "GET", Path: "/api/v1/openapi.json", Public: true, handle: h.openAPI},
		{Method: "GET", Path: "/api/v1/me", handle: h.me},
		{Method: "GET", Path: "/api/v1/me/oauth-grants", handle: h.listMyOAuthGrants},
		{Method: "DELETE", Path: "/api/v1/me/oauth-grants/{id}", handle: h.revokeMyOAuthGrant},
		{Method: "POST", Path: "/api/v1/me/invitations/accept", handle: h.acceptInvitation},
		{Method: "POST", Path: "/api/v1/me/invitations/decline", handle: h.declineInvitation},
		{Method: "GET", Path: "/api/v1/apis", handle: h.listAPIs},
		{Method: "GET", Path: "/api/v1/admin-keys", handle: h.listAdminKeys},
		{Method: "DELETE", Path: "/api/v1/admin-keys/{id}", handle: h.revokeAdminKey},
		{Method: "GET", Path: "/api/v1/orgs", handle: h.listOrganizations},
		{Method: "POST", Path: "/api/v1/orgs", handle: h.createOrganization},
		{Method: "GET", Path: "/api/v1/orgs/{org}", handle: h.getOrganization},
		{Method: "PATCH", Path: "/api/v1/orgs/{org}", handle: h.updateOrganization},
		{Method: "DELETE", Path: "/api/v1/orgs/{org}", handle: h.deleteOrganization},
		{Method: "GET", Path: "/api/v1/orgs/{org}/tokens", handle: h.listTokens},
		{Method: "POST", Path: "/api/v1/orgs/{org}/tokens", handle: h.createToken},
		{Method: "GET", Path: "/api/v1/orgs/{org}/tokens/{id}", handle: h.getToken},
		{Method: "DELETE", Path: "/api/v1/orgs/{org}/tokens/{id}", handle: h.deleteToken},
		{Method: "POST", Path: "/api/v1/orgs/{org}/tokens/{id}/rotate", handle: h.rotateToken},
		{Method: "GET", Path: "/api/v1/orgs/{org}/members", handle: h.listMembers},
		{Method: "POST", Path: "/api/v1/orgs/{org}/members", handle: h.addMember},
		{Method: "PUT", Path: "/api/v1/orgs/{org}/members/{user}", handle: h.setMemberRole},
		{Method: "DELETE", Path: "/api/v1/orgs/{org}/members/{user}", handle: h.removeMember},
		{Method: "GET", Path: "/api/v1/orgs/{org}/invitations", handle: h.listInvitations},
		{Method: "POST", Path: "/api/v1/orgs/{org}/invitations", handle: h.createInvitation},
		{Method: "DELETE", Path: "/api/v1/orgs/{org}/invitations/{id}", handle: h.revokeInvitation},
		{Method: "GET", Path: "/api/v1/orgs/{org}/usage", handle: h.usage},
		{Method: "GET", Path: "/api/v1/orgs/{org}/audit-log", handle: h.orgAuditLog},
		{Method: "GET", Path: "/api/v1/audit-log", handle: h.siteAuditLog},
		{Method: "GET", Path: "/api/v1/orgs/{org}/oauth-grants", handle: h.listOAuthGrants},
		{Method: "DELETE", Path: "/api/v1/orgs/{org}/oauth-grants/{id}", handle: h.revokeOAuthGrant},
		{Method: "GET", Path: "/api/v1/orgs/{org}/email-settings", handle: h.getEmailSettings},
		{Method: "PATCH", Path: "/api/v1/orgs/{org}/email-settings", handle: h.updateEmailSettings},
		{Method: "GET", Path: "/api/v1/orgs/{org}/webhooks", handle: h.listWebhooks},
		{Method: "POST", Path: "/api/v1/orgs/{org}/webhooks", handle: h.createWebhook},
		{Method: "GET", Path: "/api/v1/orgs/{org}/webhooks/{id}", handle: h.getWebhook},
		{Method: "PATCH", Path: "/api/v1/orgs/{org}/webhooks/{id}", handle: h.updateWebhook},
		{Method: "DELETE", Path: "/api/v1/orgs/{org}/webhooks/{id}", handle: h.deleteWebhook},
		{Method: "POST", Path: "/api/v1/orgs/{org}/webhooks/{id}/test", handle: h.testWebhook},
		{Method: "GET", Path: "/api/v1/orgs/{org}/webhooks/{id}/deliveries", handle: h.listWebhookDeliveries},
		{Method: "GET", Path: "/api/v1/orgs/{org}/webhooks/{id}/deliveries/{delivery}", handle: h.getWebhookDelivery},
		{Method: "POST", Path: "/api/v1/orgs/{org}/webhooks/{id}/deliveries/{delivery}/redeliver", handle: h.redeliverWebhook},
	}
}

// endpoint authenticates the caller, then runs the route and writes any
// error it returns.
func (h *Handler) endpoint(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c manage.Caller
		if !rt.Public {
			var err error
			if c, err = h.authenticate(r); err != nil {
				h.writeError(w, r, err)
				return
			}
			r = r.WithContext(c.Audited(r.Context()))
		}
		if err := rt.handle(w, r, c); err != nil {
			h.writeError(w, r, err)
		}
	})
}

// access returns the caller's standing in the organization named in the path.
func (h *Handler) access(r *http.Request, c manage.Caller) (*manage.Access, error) {
	return manage.OrganizationAccess(r.Context(), h.d.Store, c, r.PathValue("org"))
}

// tokens creates and deletes tokens, sending their webhook events.
func (h *Handler) tokens() manage.Tokens {
	t := manage.Tokens{Store: h.d.Store, Logger: h.d.Logger}
	if h.d.Webhooks != nil {
		t.Events = h.d.Webhooks
	}
	return t
}

// notify passes a committed change to Deps.Notify.
func (h *Handler) notify(kind, id string) {
	if h.d.Notify != nil {
		h.d.Notify(keygate.Change{Kind: kind, ID: id})
	}
}
