package api

import (
	"net/http"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
)

type invitationJSON struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	InvitedBy string    `json:"invited_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// newInvitationJSON adds the link, present only in the create response,
// and null when keygate emails it to an owner's invitee.
type newInvitationJSON struct {
	invitationJSON
	URL     *string `json:"url"`
	Emailed bool    `json:"emailed"`
}

func toInvitationJSON(inv *keygate.Invitation) invitationJSON {
	return invitationJSON{
		ID: inv.ID, Email: inv.Email, Role: inv.Role, InvitedBy: inv.InvitedBy,
		CreatedAt: inv.CreatedAt, ExpiresAt: inv.ExpiresAt,
	}
}

func (h *Handler) listInvitations(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	if err := a.RequireMemberManager(); err != nil {
		return err
	}
	list, err := manage.ListInvitations(r.Context(), h.d.Store, a.Organization, h.d.Now())
	if err != nil {
		return err
	}
	out := make([]invitationJSON, len(list))
	for i, inv := range list {
		out[i] = toInvitationJSON(inv)
	}
	writeJSON(w, http.StatusOK, map[string]any{"invitations": out})
	return nil
}

type createInvitationRequest struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

// createInvitation answers the same for any email: whether it has an
// account, or is a member already, is not looked at.
func (h *Handler) createInvitation(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	if err := a.RequireMemberManager(); err != nil {
		return err
	}
	var req createInvitationRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	created, err := h.invitations().Invite(r.Context(), c, a.Organization,
		manage.NewInvitation{Email: req.Email, Role: req.Role}, manage.LinkBase(h.d.PublicURL, r.Host, r.TLS != nil), h.d.Now())
	if err != nil {
		return err
	}
	h.d.Logger.InfoContext(r.Context(), "invitation created",
		"org", a.Organization.Slug, "invitation_id", created.Invitation.ID, "role", created.Invitation.Role, "by", c.Name())
	out := newInvitationJSON{invitationJSON: toInvitationJSON(created.Invitation), Emailed: created.Emailed}
	if created.Link != "" {
		out.URL = &created.Link
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (h *Handler) revokeInvitation(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	if err := a.RequireMemberManager(); err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := manage.RevokeInvitation(r.Context(), h.d.Store, a.Organization, id, h.d.Now()); err != nil {
		return err
	}
	h.d.Logger.InfoContext(r.Context(), "invitation revoked", "org", a.Organization.Slug, "invitation_id", id, "by", c.Name())
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// invitations creates invitations, handing each link to Deps.Invitations.
func (h *Handler) invitations() manage.Invitations {
	return manage.Invitations{Store: h.d.Store, Notifier: h.d.Invitations, Logger: h.d.Logger}
}

type answerInvitationRequest struct {
	// Secret is the last part of the invitation's link.
	Secret string `json:"secret"`
}

type acceptedInvitationJSON struct {
	Organization organizationJSON `json:"organization"`
	// Added is false when the caller already was a member: their role
	// stays what it was.
	Added bool `json:"added"`
}

// acceptInvitation lets a logged-in user accept an invitation sent to
// their email. The secret travels in the body, never in a URL.
func (h *Handler) acceptInvitation(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	if c.User == nil {
		return keygate.Errorf(keygate.EFORBIDDEN, "Only a user can accept an invitation: log in as the invited email.")
	}
	var req answerInvitationRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	org, added, err := manage.AcceptInvitation(r.Context(), h.d.Store, c.User, req.Secret, h.d.Now())
	if err != nil {
		return err
	}
	h.d.Logger.InfoContext(r.Context(), "invitation accepted", "org", org.Slug, "user_id", c.User.ID, "added", added)
	a, err := manage.OrganizationAccess(r.Context(), h.d.Store, c, org.Slug)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, acceptedInvitationJSON{Organization: toOrganizationJSON(a), Added: added})
	return nil
}

func (h *Handler) declineInvitation(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	if c.User == nil {
		return keygate.Errorf(keygate.EFORBIDDEN, "Only a user can decline an invitation: log in as the invited email.")
	}
	var req answerInvitationRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	org, err := manage.DeclineInvitation(r.Context(), h.d.Store, c.User, req.Secret, h.d.Now())
	if err != nil {
		return err
	}
	h.d.Logger.InfoContext(r.Context(), "invitation declined", "org", org.Slug, "user_id", c.User.ID)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
