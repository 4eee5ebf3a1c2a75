package api

import (
	"net/http"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
)

// emailSettingsJSON is an organization's choice of emails: every kind in
// keygate.EmailKinds with whether it is sent.
type emailSettingsJSON struct {
	Emails map[string]bool `json:"emails"`
	// Sending says whether this keygate has a mail server (email.smtp_url);
	// without one no email goes out whatever the settings.
	Sending   bool       `json:"sending"`
	UpdatedAt *time.Time `json:"updated_at"`
}

func (h *Handler) toEmailSettingsJSON(s *keygate.EmailSettings) emailSettingsJSON {
	out := emailSettingsJSON{Emails: map[string]bool{}, Sending: h.d.EmailSending}
	for _, k := range keygate.EmailKinds {
		out.Emails[k] = s.Enabled(k)
	}
	if !s.UpdatedAt.IsZero() {
		out.UpdatedAt = &s.UpdatedAt
	}
	return out
}

func (h *Handler) getEmailSettings(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	s, err := manage.EmailSettings(r.Context(), h.d.Store, a)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h.toEmailSettingsJSON(s))
	return nil
}

// updateEmailSettingsRequest turns the kinds named on or off; the others
// stay as they are.
type updateEmailSettingsRequest struct {
	Emails map[string]bool `json:"emails"`
}

func (h *Handler) updateEmailSettings(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	var req updateEmailSettingsRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	s, err := manage.SetEmailKinds(r.Context(), h.d.Store, a, req.Emails, h.d.Now())
	if err != nil {
		return err
	}
	h.d.Logger.InfoContext(r.Context(), "email settings changed", "org", a.Organization.Slug, "disabled", s.Disabled, "by", c.Name())
	writeJSON(w, http.StatusOK, h.toEmailSettingsJSON(s))
	return nil
}
