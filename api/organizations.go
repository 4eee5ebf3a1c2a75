package api

import (
	"net/http"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
)

func (h *Handler) listOrganizations(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	all, err := manage.Organizations(r.Context(), h.d.Store, c)
	if err != nil {
		return err
	}
	out := make([]organizationJSON, len(all))
	for i, a := range all {
		out[i] = toOrganizationJSON(a)
	}
	writeJSON(w, http.StatusOK, map[string]any{"organizations": out})
	return nil
}

type createOrganizationRequest struct {
	Slug            string                `json:"slug"`
	Name            string                `json:"name"`
	Plan            string                `json:"plan"`
	Entitlements    *keygate.Entitlements `json:"entitlements"`
	MaxActiveTokens int                   `json:"max_active_tokens"`
}

func (h *Handler) createOrganization(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	if err := manage.RequireAdmin(c); err != nil {
		return err
	}
	var req createOrganizationRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	org := &keygate.Organization{
		ID:   keygate.NewID("org"),
		Slug: req.Slug, Name: req.Name, Plan: req.Plan, MaxActiveTokens: req.MaxActiveTokens,
	}
	if req.Entitlements != nil {
		org.Entitlements = *req.Entitlements
	}
	if err := manage.CreateOrganization(r.Context(), h.d.Store, org, h.d.Now()); err != nil {
		return err
	}
	h.d.Logger.InfoContext(r.Context(), "organization created", "org", org.Slug, "by", c.Name())
	writeJSON(w, http.StatusCreated, toOrganizationJSON(&manage.Access{Organization: org, Admin: true}))
	return nil
}

func (h *Handler) getOrganization(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toOrganizationJSON(a))
	return nil
}

// updateOrganizationRequest changes only the fields present.
type updateOrganizationRequest struct {
	Name            *string               `json:"name"`
	Plan            *string               `json:"plan"`
	Entitlements    *keygate.Entitlements `json:"entitlements"`
	MaxActiveTokens *int                  `json:"max_active_tokens"`
}

func (h *Handler) updateOrganization(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	if err := a.RequireOrganizationManager(); err != nil {
		return err
	}
	var req updateOrganizationRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	org := *a.Organization
	if req.Name != nil {
		org.Name = *req.Name
	}
	if req.Plan != nil {
		org.Plan = *req.Plan
	}
	if req.Entitlements != nil {
		org.Entitlements = *req.Entitlements
	}
	if req.MaxActiveTokens != nil {
		org.MaxActiveTokens = *req.MaxActiveTokens
	}
	if err := manage.UpdateOrganization(r.Context(), h.d.Store, &org); err != nil {
		return err
	}
	h.notify(keygate.ChangeOrganization, org.ID)
	h.d.Logger.InfoContext(r.Context(), "organization updated", "org", org.Slug, "plan", org.Plan, "by", c.Name())
	a.Organization = &org
	writeJSON(w, http.StatusOK, toOrganizationJSON(a))
	return nil
}

func (h *Handler) deleteOrganization(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	if err := a.RequireOrganizationManager(); err != nil {
		return err
	}
	if err := h.d.Store.DeleteOrganization(r.Context(), a.Organization.ID); err != nil {
		return err
	}
	h.notify(keygate.ChangeOrganization, a.Organization.ID)
	h.d.Logger.InfoContext(r.Context(), "organization deleted", "org", a.Organization.Slug, "by", c.Name())
	w.WriteHeader(http.StatusNoContent)
	return nil
}
