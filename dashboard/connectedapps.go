package dashboard

import (
	"net/http"
	"net/url"

	"github.com/keygate/keygate/manage"
)

// Developers → Connected apps: the MCP clients (Claude, an IDE, a script)
// people let into the organization with OAuth, each one revocable after a
// confirmation. Members see the ones they approved; owners and site
// administrators see every one made for the organization (manage decides).

type connectedAppsPage struct {
	frame
	Apps []*manage.ConnectedApp
	// All: the caller sees everyone's grants, so the page names who
	// approved each.
	All bool
}

func (h *Handler) connectedApps(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	apps, err := manage.ListConnectedApps(r.Context(), h.d.Store, caller(f), a, h.d.Now())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p := connectedAppsPage{frame: *f, Apps: apps, All: a.CanManageConnectedApps()}
	p.Title, p.Section = "Connected apps", "apps"
	if id := r.URL.Query().Get("revoked"); id != "" {
		p.Notice = h.revokedNotice(r, f, a, id)
	}
	h.render(w, r, http.StatusOK, "connected_apps", p)
}

// revokedNotice confirms a revocation by the app's name, for a grant the
// caller could see; "" for any other id, so the address reveals nothing.
func (h *Handler) revokedNotice(r *http.Request, f *frame, a *manage.Access, id string) string {
	g, err := h.d.Store.FindOAuthGrant(r.Context(), id)
	if err != nil || g.OrganizationID != a.Organization.ID || g.Active() ||
		(g.UserID != f.User.ID && !a.CanManageConnectedApps()) {
		return ""
	}
	return "Access revoked: “" + g.ClientName + "” can no longer use the MCP endpoint. To use it again, connect it anew."
}

type connectedAppPage struct {
	frame
	App *manage.ConnectedApp
}

func (h *Handler) confirmRevokeConnectedApp(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	app, err := manage.FindConnectedApp(r.Context(), h.d.Store, caller(f), a, r.PathValue("id"))
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	p := connectedAppPage{frame: *f, App: app}
	p.Title, p.Section = "Revoke access", "apps"
	h.render(w, r, http.StatusOK, "connected_app_revoke", p)
}

func (h *Handler) revokeConnectedApp(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	app, err := manage.RevokeConnectedApp(r.Context(), h.d.Store, caller(f), a, r.PathValue("id"), h.d.Now())
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	g := app.Grant
	h.d.Logger.InfoContext(r.Context(), "oauth grant revoked", "org", a.Organization.Slug,
		"grant_id", g.ID, "client_id", g.ClientID, "approved_by", g.UserID, "user_id", f.User.ID)
	redirect(w, r, h.orgPath(a, "/connected-apps?revoked="+url.QueryEscape(g.ID)))
}
