package dashboard

import (
	"net/http"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
)

// The Email page: an organization's owners choose which emails keygate
// sends about it.

type emailKindOption struct {
	Name    string
	Title   string
	Help    string
	Enabled bool
}

var emailKindText = map[string][2]string{
	keygate.EmailTokenExpiring: {"Token expiring", "7 days and again 1 day before a token expires, to the person who created it and to the organization's owners."},
	keygate.EmailTokenCreated:  {"Token created", "A security notice to the person a new token was created for, with its name, hint, scopes and expiry (never the token)."},
	keygate.EmailMemberAdded:   {"Member added", "A note to a person added to the organization."},
}

type emailPage struct {
	frame
	Kinds   []emailKindOption
	Sending bool
}

func (h *Handler) emailSettings(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	s, err := manage.EmailSettings(r.Context(), h.d.Store, a)
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	if r.URL.Query().Get("done") == "saved" {
		f.Notice = "Saved."
	}
	p := emailPage{frame: *f, Sending: h.d.EmailSending}
	for _, k := range keygate.EmailKinds {
		p.Kinds = append(p.Kinds, emailKindOption{Name: k, Title: emailKindText[k][0], Help: emailKindText[k][1], Enabled: s.Enabled(k)})
	}
	p.Title, p.Section = "Email", "email"
	h.render(w, r, http.StatusOK, "email", p)
}

func (h *Handler) updateEmailSettings(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	if err := r.ParseForm(); err != nil {
		h.showError(w, r, f, keygate.Errorf(keygate.EINVALID, "The form could not be read."))
		return
	}
	on := map[string]bool{}
	for _, k := range r.PostForm["emails"] {
		on[k] = true
	}
	kinds := map[string]bool{}
	for _, k := range keygate.EmailKinds {
		kinds[k] = on[k]
	}
	s, err := manage.SetEmailKinds(r.Context(), h.d.Store, a, kinds, h.d.Now())
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	h.d.Logger.InfoContext(r.Context(), "email settings changed", "org", a.Organization.Slug, "disabled", s.Disabled, "by", f.User.ID)
	redirect(w, r, h.orgPath(a, "/email?done=saved"))
}
