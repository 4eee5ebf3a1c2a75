package api

import (
	"net/http"

	"github.com/keygate/keygate"

	"github.com/keygate/keygate/manage"
)

func (h *Handler) listMembers(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	members, err := manage.ListMembers(r.Context(), h.d.Store, a.Organization)
	if err != nil {
		return err
	}
	out := make([]memberJSON, len(members))
	for i := range members {
		out[i] = toMemberJSON(&members[i])
	}
	writeJSON(w, http.StatusOK, map[string]any{"members": out})
	return nil
}

type addMemberRequest struct {
	Email    string `json:"email"`
	Name     string `json:"name"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

func (h *Handler) addMember(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	if err := a.RequireMemberManager(); err != nil {
		return err
	}
	// Adding a person directly is the site operator's power: an owner
	// invites instead, and this refusal is the same for every email.
	if !a.Admin {
		return keygate.Errorf(keygate.EFORBIDDEN, "Owners invite members: POST /api/v1/orgs/%s/invitations. Adding a person directly is for site administrators.", a.Organization.Slug)
	}
	var req addMemberRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	m, err := manage.AddMember(r.Context(), h.d.Store, a.Organization, manage.NewMember{
		Email: req.Email, Name: req.Name, Password: req.Password, Role: req.Role,
	}, h.d.Now())
	if err != nil {
		return err
	}
	h.d.Logger.InfoContext(r.Context(), "member added",
		"org", a.Organization.Slug, "user_id", m.User.ID, "role", m.Role, "by", c.Name())
	writeJSON(w, http.StatusCreated, toMemberJSON(m))
	return nil
}

type setRoleRequest struct {
	Role string `json:"role"`
}

func (h *Handler) setMemberRole(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	if err := a.RequireMemberManager(); err != nil {
		return err
	}
	var req setRoleRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	m, err := manage.SetRole(r.Context(), h.d.Store, a.Organization, r.PathValue("user"), req.Role, h.d.Now())
	if err != nil {
		return err
	}
	h.d.Logger.InfoContext(r.Context(), "member role changed",
		"org", a.Organization.Slug, "user_id", m.User.ID, "role", m.Role, "by", c.Name())
	writeJSON(w, http.StatusOK, toMemberJSON(m))
	return nil
}

func (h *Handler) removeMember(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	if err := a.RequireMemberManager(); err != nil {
		return err
	}
	userID := r.PathValue("user")
	if err := manage.RemoveMember(r.Context(), h.d.Store, a.Organization, userID, h.d.Now()); err != nil {
		return err
	}
	h.d.Logger.InfoContext(r.Context(), "member removed", "org", a.Organization.Slug, "user_id", userID, "by", c.Name())
	w.WriteHeader(http.StatusNoContent)
	return nil
}
