// Package dashboard is keygate's web interface: log in, pick an
// organization, and under Developers → API Tokens create, list and delete
// tokens; see usage; under Developers → Connected apps see and revoke the
// MCP clients let in with OAuth; under Developers → Webhooks add endpoints
// and read their delivery log; manage members, the plan and entitlements.
// Pages are server-rendered from embedded templates and work without
// JavaScript; a small embedded script only adds copy-to-clipboard.
//
// A new token's secret is written into exactly one response, the one that
// answers the create form, sent with Cache-Control: no-store. It is never
// logged, stored, put in a URL or shown again. A new webhook endpoint's
// signing secret is shown the same way.
package dashboard

import (
	"embed"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/ratelimit"
	"github.com/keygate/keygate/session"
	"github.com/keygate/keygate/webhook"
)

//go:embed templates static
var files embed.FS

// Deps is what the dashboard needs from the server that mounts it.
type Deps struct {
	Store    keygate.Store
	APIs     []*keygate.API
	Sessions *session.Manager
	Logger   *slog.Logger
	Now      func() time.Time
	// Notify, when set, hears about every change this handler commits
	// (a token deleted, an organization changed or deleted) right after the
	// commit, so this instance's caches drop it before the next request
	// instead of when the store's change feed delivers it. Wire it to the
	// gateway's token cache.
	Notify func(keygate.Change)
	// Logins limits failed logins per account and per client IP; nil: the
	// session package's defaults, kept in memory.
	Logins *session.LoginLimiter
	// ClientIP returns the address a request comes from (honouring trusted
	// proxies); nil: the connection's address.
	ClientIP func(*http.Request) string
	// IPv6PrefixLength is how much of an IPv6 address names one client for
	// the per-address limits (ipv6_prefix_length); 0: 64.
	IPv6PrefixLength int
	// Webhooks sends the organizations' webhook events: token.created and
	// token.deleted after this handler creates or deletes a token, and test
	// events. nil when the store keeps no webhooks: then no events go out
	// and the Webhooks pages say they are off.
	Webhooks *webhook.Dispatcher
	// PendingUsage is the gateway's not yet written last use of tokens,
	// merged into what is shown; nil: the stored times only.
	PendingUsage manage.PendingUsage
	// PublicURL is the dashboard's address (admin.public_url), which
	// invitation links start with; "": the address each request was sent
	// to.
	PublicURL string
	// Invitations, when set, is handed every new invitation's link to send
	// to the invitee; nil: only the inviter gets the link, on the page.
	Invitations manage.InvitationNotifier
	// Limiter counts requests to the invitation pages per client address;
	// nil: MemoryLimiter.
	Limiter ratelimit.Limiter
	// MemoryLimiter counts them in this process while Limiter fails (Redis
	// down, in the closed mode): refusing every invitee then would take
	// invitations down with Redis, and serving the pages unlimited would
	// let a client try invitation links as fast as it likes. keygate
	// passes its Redis fallback in the local mode, which counts in the
	// memory limiter it mirrors every allowed request into, so an
	// address's window goes on where it was, and gives Redis the outage's
	// counts when it answers. nil: one of the dashboard's own, which
	// Handler.Close stops.
	MemoryLimiter ratelimit.Limiter
	// EmailSending says whether keygate has a mail server (email.smtp_url);
	// the Email page says so when it has none.
	EmailSending bool
}

// Handler serves the dashboard.
type Handler struct {
	d     Deps
	mux   *http.ServeMux
	forms *usedForms
	// invitationLimiter counts requests to the invitation pages with
	// Limiter or, while that fails, with MemoryLimiter.
	invitationLimiter *ratelimit.Backstop
	// ownLimiter is the memory limiter New started for want of
	// Deps.MemoryLimiter; nil when Deps brought one.
	ownLimiter *ratelimit.Memory
}

// New returns the dashboard. Mount it at "/"; it serves "/", /login,
// /logout, /orgs/… and /static/….
func New(d Deps) *Handler {
	if d.Store == nil || d.Sessions == nil {
		panic("dashboard: Deps.Store and Deps.Sessions are required")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logins == nil {
		d.Logins = &session.LoginLimiter{}
	}
	if d.ClientIP == nil {
		d.ClientIP = remoteIP
	}
	h := &Handler{mux: http.NewServeMux(), forms: newUsedForms(24 * time.Hour)}
	if d.MemoryLimiter == nil {
		h.ownLimiter = ratelimit.NewMemory(ratelimit.MemoryOptions{})
		d.MemoryLimiter = h.ownLimiter
	}
	if d.Limiter == nil {
		d.Limiter = d.MemoryLimiter
	}
	h.d = d
	h.invitationLimiter = ratelimit.NewBackstop(d.Limiter, d.MemoryLimiter, ratelimit.BackstopOptions{What: "invitation pages", Logger: d.Logger, Now: d.Now})
	h.routes()
	return h
}

// Close stops the sweeper of the memory limiter New started when Deps
// brought no MemoryLimiter; a dashboard given one has nothing to stop.
// The dashboard still answers afterwards.
func (h *Handler) Close() error {
	if h.ownLimiter == nil {
		return nil
	}
	return h.ownLimiter.Close()
}

func (h *Handler) routes() {
	m := h.mux
	m.Handle("GET /static/", staticFiles())
	m.HandleFunc("GET /{$}", h.home)
	m.HandleFunc("GET /login", h.loginForm)
	m.HandleFunc("POST /login", h.login)
	m.Handle("GET /logout", h.user(h.logoutForm))
	m.Handle("POST /logout", h.user(h.logout))

	m.Handle("GET /orgs", h.user(h.organizations))
	m.Handle("POST /orgs", h.user(h.createOrganization))
	m.Handle("GET /orgs/{org}", h.org(h.organizationHome))

	m.Handle("GET /orgs/{org}/tokens", h.org(h.tokens))
	m.Handle("GET /orgs/{org}/tokens/new", h.org(h.newToken))
	m.Handle("POST /orgs/{org}/tokens", h.org(h.createToken))
	m.Handle("GET /orgs/{org}/tokens/{id}", h.org(h.token))
	m.Handle("GET /orgs/{org}/tokens/{id}/delete", h.org(h.confirmDeleteToken))
	m.Handle("POST /orgs/{org}/tokens/{id}/delete", h.org(h.deleteToken))
	m.Handle("GET /orgs/{org}/tokens/{id}/rotate", h.org(h.confirmRotateToken))
	m.Handle("POST /orgs/{org}/tokens/{id}/rotate", h.org(h.rotateToken))

	m.Handle("GET /orgs/{org}/usage", h.org(h.usage))
	m.Handle("GET /orgs/{org}/audit-log", h.org(h.auditLog))

	m.Handle("GET /orgs/{org}/connected-apps", h.org(h.connectedApps))
	m.Handle("GET /orgs/{org}/connected-apps/{id}/revoke", h.org(h.confirmRevokeConnectedApp))
	m.Handle("POST /orgs/{org}/connected-apps/{id}/revoke", h.org(h.revokeConnectedApp))

	m.Handle("GET /orgs/{org}/webhooks", h.webhookOrg(h.webhooks))
	m.Handle("GET /orgs/{org}/webhooks/new", h.webhookOrg(h.newWebhook))
	m.Handle("POST /orgs/{org}/webhooks", h.webhookOrg(h.createWebhook))
	m.Handle("GET /orgs/{org}/webhooks/{id}", h.webhookOrg(h.webhook))
	m.Handle("POST /orgs/{org}/webhooks/{id}/test", h.webhookOrg(h.testWebhook))
	m.Handle("POST /orgs/{org}/webhooks/{id}/disable", h.webhookOrg(h.setWebhookDisabled(true)))
	m.Handle("POST /orgs/{org}/webhooks/{id}/enable", h.webhookOrg(h.setWebhookDisabled(false)))
	m.Handle("GET /orgs/{org}/webhooks/{id}/delete", h.webhookOrg(h.confirmDeleteWebhook))
	m.Handle("POST /orgs/{org}/webhooks/{id}/delete", h.webhookOrg(h.deleteWebhook))
	m.Handle("GET /orgs/{org}/webhooks/{id}/deliveries/{delivery}", h.webhookOrg(h.webhookDelivery))
	m.Handle("POST /orgs/{org}/webhooks/{id}/deliveries/{delivery}/redeliver", h.webhookOrg(h.redeliverWebhook))

	m.Handle("GET /orgs/{org}/members", h.org(h.members))
	m.Handle("POST /orgs/{org}/invitations", h.org(h.createInvitation))
	m.Handle("POST /orgs/{org}/invitations/{id}/revoke", h.org(h.revokeInvitation))
	m.Handle("POST /orgs/{org}/members/{user}/role", h.org(h.setMemberRole))
	m.Handle("GET /orgs/{org}/members/{user}/remove", h.org(h.confirmRemoveMember))
	m.Handle("POST /orgs/{org}/members/{user}/remove", h.org(h.removeMember))

	m.Handle("GET /orgs/{org}/email", h.org(h.emailSettings))
	m.Handle("POST /orgs/{org}/email", h.org(h.updateEmailSettings))
	m.Handle("GET /orgs/{org}/settings", h.org(h.settings))
	m.Handle("POST /orgs/{org}/settings", h.org(h.updateSettings))
	m.Handle("GET /orgs/{org}/delete", h.org(h.confirmDeleteOrganization))
	m.Handle("POST /orgs/{org}/delete", h.org(h.deleteOrganization))
	// Invitation links are opened by people who may have no session yet.
	m.Handle("GET /invitations/{secret}", h.limitInvitationPages(h.invitation))
	m.Handle("POST /invitations/{secret}/signup", h.limitInvitationPages(h.invitationSignup))
	m.Handle("POST /invitations/{secret}/accept", h.limitInvitationPages(h.user(h.answerInvitation(true)).ServeHTTP))
	m.Handle("POST /invitations/{secret}/decline", h.limitInvitationPages(h.user(h.answerInvitation(false)).ServeHTTP))
	m.HandleFunc("/", h.notFound)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// tokenChanges creates and deletes tokens, sending their webhook events.
func (h *Handler) tokenChanges() manage.Tokens {
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
