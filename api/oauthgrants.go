package api

import (
	"net/http"
	"time"

	"github.com/keygate/keygate/manage"
)

// OAuth grants: the MCP clients people let into an organization, as the
// dashboard's Connected apps page shows them. Under an organization a
// member gets the grants they approved, an owner, site administrator or
// admin key every grant of the organization; under /me a logged-in user
// gets their own in every organization. Deleting one revokes it: the
// client's access token is refused from its next request on and its
// refresh token is dead.

type oauthGrantJSON struct {
	ID         string `json:"id"`
	ClientID   string `json:"client_id"`
	ClientName string `json:"client_name"`
	// ClientHost is the host of a client id that is a URL; "" otherwise.
	ClientHost string `json:"client_host"`
	// RedirectHosts are where a registered client sends people back to.
	RedirectHosts []string `json:"redirect_hosts"`
	Organization  string   `json:"organization"` // slug
	UserID        string   `json:"user_id"`
	// UserEmail is "" when the user who approved it no longer exists.
	UserEmail       string     `json:"user_email"`
	Resource        string     `json:"resource"`
	Scopes          []string   `json:"scopes"`
	CreatedAt       time.Time  `json:"created_at"`
	LastRefreshedAt *time.Time `json:"last_refreshed_at"`
	ExpiresAt       time.Time  `json:"expires_at"`
}

func toOAuthGrantJSON(app *manage.ConnectedApp) oauthGrantJSON {
	g := app.Grant
	out := oauthGrantJSON{
		ID: g.ID, ClientID: g.ClientID, ClientName: g.ClientName, ClientHost: app.ClientHost,
		RedirectHosts: app.RedirectHosts, Organization: app.Organization.Slug, UserID: g.UserID,
		Resource: g.Resource, Scopes: g.Scopes, CreatedAt: g.CreatedAt, LastRefreshedAt: g.LastUsedAt,
		ExpiresAt: g.ExpiresAt,
	}
	if app.User != nil {
		out.UserEmail = app.User.Email
	}
	if out.RedirectHosts == nil {
		out.RedirectHosts = []string{}
	}
	if out.Scopes == nil {
		out.Scopes = []string{}
	}
	return out
}

func writeOAuthGrants(w http.ResponseWriter, apps []*manage.ConnectedApp) {
	out := make([]oauthGrantJSON, len(apps))
	for i, app := range apps {
		out[i] = toOAuthGrantJSON(app)
	}
	writeJSON(w, http.StatusOK, map[string]any{"oauth_grants": out})
}

func (h *Handler) listOAuthGrants(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	apps, err := manage.ListConnectedApps(r.Context(), h.d.Store, c, a, h.d.Now())
	if err != nil {
		return err
	}
	writeOAuthGrants(w, apps)
	return nil
}

func (h *Handler) revokeOAuthGrant(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	app, err := manage.RevokeConnectedApp(r.Context(), h.d.Store, c, a, r.PathValue("id"), h.d.Now())
	if err != nil {
		return err
	}
	h.logRevoked(r, app, c)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) listMyOAuthGrants(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	apps, err := manage.ListMyConnectedApps(r.Context(), h.d.Store, c, h.d.Now())
	if err != nil {
		return err
	}
	writeOAuthGrants(w, apps)
	return nil
}

func (h *Handler) revokeMyOAuthGrant(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	app, err := manage.RevokeMyConnectedApp(r.Context(), h.d.Store, c, r.PathValue("id"), h.d.Now())
	if err != nil {
		return err
	}
	h.logRevoked(r, app, c)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) logRevoked(r *http.Request, app *manage.ConnectedApp, c manage.Caller) {
	g := app.Grant
	h.d.Logger.InfoContext(r.Context(), "oauth grant revoked", "org", app.Organization.Slug,
		"grant_id", g.ID, "client_id", g.ClientID, "approved_by", g.UserID, "by", c.Name())
}
