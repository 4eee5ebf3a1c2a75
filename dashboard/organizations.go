package dashboard

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
)

type organizationsPage struct {
	frame
	Form  keygate.Organization
	Error string
}

var organizationNotices = map[string]string{
	"deleted":  "Organization deleted. Its tokens are revoked.",
	"declined": "Invitation declined. Its link no longer works.",
}

// organizations is the organization switcher's full page; site
// administrators also create organizations here.
func (h *Handler) organizations(w http.ResponseWriter, r *http.Request, f *frame) {
	f.Notice = organizationNotices[r.URL.Query().Get("done")]
	p := organizationsPage{frame: *f, Form: keygate.Organization{Plan: manage.DefaultPlan}}
	p.Title, p.Section = "Organizations", "orgs"
	h.render(w, r, http.StatusOK, "orgs", p)
}

func (h *Handler) createOrganization(w http.ResponseWriter, r *http.Request, f *frame) {
	if err := manage.RequireAdmin(caller(f)); err != nil {
		h.showError(w, r, f, err)
		return
	}
	org := &keygate.Organization{
		ID:   keygate.NewID("org"),
		Slug: r.PostFormValue("slug"), Name: r.PostFormValue("name"), Plan: r.PostFormValue("plan"),
	}
	if err := manage.CreateOrganization(r.Context(), h.d.Store, org, h.d.Now()); err != nil {
		status, msg, ok := formError(err)
		if !ok {
			h.fail(w, r, err)
			return
		}
		p := organizationsPage{frame: *f, Form: *org, Error: msg}
		p.Title, p.Section = "Organizations", "orgs"
		h.render(w, r, status, "orgs", p)
		return
	}
	h.d.Logger.InfoContext(r.Context(), "organization created", "org", org.Slug, "by", f.User.ID)
	redirect(w, r, "/orgs/"+url.PathEscape(org.Slug)+"/settings?done=created")
}

type settingsPage struct {
	frame
	Organization keygate.Organization
	// The entitlement lists as typed, one value per line.
	States, Brands, Dispensaries string
	MaxActiveTokens              string
	APIs                         []*keygate.API
	CanEdit                      bool
	Error                        string
}

var settingsNotices = map[string]string{
	"created": "Organization created. Set its plan and entitlements, then add members.",
	"saved":   "Saved. Requests already use the new plan and entitlements.",
}

func (h *Handler) settings(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	f.Notice = settingsNotices[r.URL.Query().Get("done")]
	h.renderSettings(w, r, f, a, http.StatusOK, *a.Organization, "")
}

func (h *Handler) renderSettings(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access, status int, org keygate.Organization, msg string) {
	p := settingsPage{
		frame: *f, Organization: org, APIs: h.d.APIs, CanEdit: a.CanManageOrganization(), Error: msg,
		States:          strings.Join(org.Entitlements.States, "\n"),
		Brands:          strings.Join(org.Entitlements.Brands, "\n"),
		Dispensaries:    strings.Join(org.Entitlements.Dispensaries, "\n"),
		MaxActiveTokens: strconv.Itoa(org.MaxActiveTokens),
	}
	p.Title, p.Section = "Plan & entitlements", "settings"
	h.render(w, r, status, "settings", p)
}

func (h *Handler) updateSettings(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	if err := a.RequireOrganizationManager(); err != nil {
		h.showError(w, r, f, err)
		return
	}
	org := *a.Organization
	org.Name = r.PostFormValue("name")
	org.Plan = r.PostFormValue("plan")
	org.Entitlements = keygate.Entitlements{
		States:       manage.SplitList(r.PostFormValue("states")),
		Brands:       manage.SplitList(r.PostFormValue("brands")),
		Dispensaries: manage.SplitList(r.PostFormValue("dispensaries")),
	}
	maxTokens := strings.TrimSpace(r.PostFormValue("max_active_tokens"))
	if maxTokens == "" {
		maxTokens = "0"
	}
	n, err := strconv.Atoi(maxTokens)
	if err != nil {
		h.renderSettings(w, r, f, a, http.StatusBadRequest, org, "The active-token limit must be a whole number; use 0 for each API's own limit.")
		return
	}
	org.MaxActiveTokens = n
	if err := manage.UpdateOrganization(r.Context(), h.d.Store, &org); err != nil {
		status, msg, ok := formError(err)
		if !ok {
			h.fail(w, r, err)
			return
		}
		h.renderSettings(w, r, f, a, status, org, msg)
		return
	}
	h.notify(keygate.ChangeOrganization, org.ID)
	h.d.Logger.InfoContext(r.Context(), "organization updated", "org", org.Slug, "plan", org.Plan, "by", f.User.ID)
	redirect(w, r, h.orgPath(a, "/settings?done=saved"))
}

func (h *Handler) confirmDeleteOrganization(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	if err := a.RequireOrganizationManager(); err != nil {
		h.showError(w, r, f, err)
		return
	}
	p := orgDeletePage{frame: *f}
	p.Title, p.Section = "Delete organization", "settings"
	h.render(w, r, http.StatusOK, "org_delete", p)
}

type orgDeletePage struct {
	frame
	Error string
}

func (h *Handler) deleteOrganization(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	if err := a.RequireOrganizationManager(); err != nil {
		h.showError(w, r, f, err)
		return
	}
	if r.PostFormValue("confirm_slug") != a.Organization.Slug {
		p := orgDeletePage{frame: *f, Error: "Type the organization's slug exactly to confirm."}
		p.Title, p.Section = "Delete organization", "settings"
		h.render(w, r, http.StatusBadRequest, "org_delete", p)
		return
	}
	if err := h.d.Store.DeleteOrganization(r.Context(), a.Organization.ID); err != nil {
		h.fail(w, r, err)
		return
	}
	h.notify(keygate.ChangeOrganization, a.Organization.ID)
	h.d.Logger.InfoContext(r.Context(), "organization deleted", "org", a.Organization.Slug, "by", f.User.ID)
	redirect(w, r, "/orgs?done=deleted")
}
