package dashboard

import (
	"net/http"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
)

type membersPage struct {
	frame
	Members []manage.Member
	// Invitations are the pending ones, shown to those who manage members.
	Invitations []*keygate.Invitation
	CanManage   bool
	Form        manage.NewMember
	Error       string
}

var memberNotices = map[string]string{
	"added":              "Member added.",
	"role":               "Role changed.",
	"removed":            "Member removed. Tokens they created stay with the organization; MCP clients they connected to it lost access.",
	"invitation-revoked": "Invitation revoked. Its link no longer works.",
}

func (h *Handler) members(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	f.Notice = memberNotices[r.URL.Query().Get("done")]
	h.renderMembers(w, r, f, a, http.StatusOK, manage.NewMember{Role: keygate.RoleMember}, "")
}

func (h *Handler) renderMembers(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access, status int, form manage.NewMember, msg string) {
	members, err := manage.ListMembers(r.Context(), h.d.Store, a.Organization)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	form.Password = "" // never echoed back into a page
	p := membersPage{frame: *f, Members: members, CanManage: a.CanManageMembers(), Form: form, Error: msg}
	if p.CanManage {
		if p.Invitations, err = manage.ListInvitations(r.Context(), h.d.Store, a.Organization, h.d.Now()); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	p.Title, p.Section = "Members", "members"
	h.render(w, r, status, "members", p)
}

func (h *Handler) setMemberRole(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	if err := a.RequireMemberManager(); err != nil {
		h.showError(w, r, f, err)
		return
	}
	m, err := manage.SetRole(r.Context(), h.d.Store, a.Organization, r.PathValue("user"), r.PostFormValue("role"), h.d.Now())
	if err != nil {
		if status, msg, ok := formError(err); ok {
			h.renderMembers(w, r, f, a, status, manage.NewMember{Role: keygate.RoleMember}, msg)
			return
		}
		h.showError(w, r, f, err)
		return
	}
	h.d.Logger.InfoContext(r.Context(), "member role changed", "org", a.Organization.Slug, "user_id", m.User.ID, "role", m.Role, "by", f.User.ID)
	redirect(w, r, h.orgPath(a, "/members?done=role"))
}

type removeMemberPage struct {
	frame
	Member manage.Member
}

func (h *Handler) confirmRemoveMember(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	if err := a.RequireMemberManager(); err != nil {
		h.showError(w, r, f, err)
		return
	}
	members, err := manage.ListMembers(r.Context(), h.d.Store, a.Organization)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	for _, m := range members {
		if m.User.ID == r.PathValue("user") {
			p := removeMemberPage{frame: *f, Member: m}
			p.Title, p.Section = "Remove member", "members"
			h.render(w, r, http.StatusOK, "member_remove", p)
			return
		}
	}
	h.showError(w, r, f, keygate.Errorf(keygate.ENOTFOUND, "Member %q not found.", r.PathValue("user")))
}

func (h *Handler) removeMember(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	if err := a.RequireMemberManager(); err != nil {
		h.showError(w, r, f, err)
		return
	}
	userID := r.PathValue("user")
	if err := manage.RemoveMember(r.Context(), h.d.Store, a.Organization, userID, h.d.Now()); err != nil {
		if status, msg, ok := formError(err); ok {
			h.renderMembers(w, r, f, a, status, manage.NewMember{Role: keygate.RoleMember}, msg)
			return
		}
		h.showError(w, r, f, err)
		return
	}
	h.d.Logger.InfoContext(r.Context(), "member removed", "org", a.Organization.Slug, "user_id", userID, "by", f.User.ID)
	if userID == f.User.ID && !f.User.IsAdmin {
		redirect(w, r, "/orgs")
		return
	}
	redirect(w, r, h.orgPath(a, "/members?done=removed"))
}
