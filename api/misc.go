package api

import (
	_ "embed"
	"net/http"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
)

// openAPIDocument is the OpenAPI 3.1 description of every /api/v1/ route.
//
//go:embed openapi.json
var openAPIDocument []byte

func (h *Handler) openAPI(w http.ResponseWriter, r *http.Request, _ manage.Caller) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openAPIDocument)
	return nil
}

type meJSON struct {
	User          *userJSON          `json:"user"`
	AdminKey      *adminKeyJSON      `json:"admin_key"`
	Admin         bool               `json:"admin"`
	CSRFToken     string             `json:"csrf_token,omitempty"`
	Organizations []organizationJSON `json:"organizations"`
}

type userJSON struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

type adminKeyJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Hint      string    `json:"hint"`
	CreatedAt time.Time `json:"created_at"`
}

// me tells a caller who they are, and a session its CSRF token, which every
// change made with the session must carry.
func (h *Handler) me(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	out := meJSON{Admin: c.IsAdmin()}
	if c.User != nil {
		out.User = &userJSON{ID: c.User.ID, Email: c.User.Email, Name: c.User.Name}
		if s, _, err := h.d.Sessions.Current(r); err == nil {
			out.CSRFToken = s.CSRFToken
		}
	}
	if k := c.AdminKey; k != nil {
		out.AdminKey = &adminKeyJSON{ID: k.ID, Name: k.Name, Hint: k.Hint, CreatedAt: k.CreatedAt}
	}
	all, err := manage.Organizations(r.Context(), h.d.Store, c)
	if err != nil {
		return err
	}
	out.Organizations = make([]organizationJSON, len(all))
	for i, a := range all {
		out.Organizations[i] = toOrganizationJSON(a)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type apiJSON struct {
	Name            string   `json:"name"`
	Preset          string   `json:"preset"`
	TokenPrefixes   []string `json:"token_prefixes"`
	Scopes          []string `json:"scopes"`
	ExpiryChoices   []string `json:"expiry_choices"`
	DefaultExpiry   string   `json:"default_expiry"`
	MaxActiveTokens int      `json:"max_active_tokens"`
	Plans           []string `json:"plans"`
}

// listAPIs describes the APIs tokens can be created for: what to send as
// "api", "scopes" and "expires_in", and which plans their routes name.
func (h *Handler) listAPIs(w http.ResponseWriter, r *http.Request, _ manage.Caller) error {
	out := make([]apiJSON, len(h.d.APIs))
	for i, a := range h.d.APIs {
		choices := manage.ExpiryChoices(a)
		j := apiJSON{
			Name:            a.Name,
			TokenPrefixes:   a.TokenPrefixes(),
			Scopes:          append([]string{}, a.Tokens.Scopes...),
			ExpiryChoices:   make([]string, len(choices)),
			DefaultExpiry:   string(keygate.DefaultExpiry),
			MaxActiveTokens: a.Tokens.MaxActiveTokens,
			Plans:           routePlans(a),
		}
		if a.Preset != nil {
			j.Preset = a.Preset.Name
		}
		for k, c := range choices {
			j.ExpiryChoices[k] = string(c)
		}
		out[i] = j
	}
	writeJSON(w, http.StatusOK, map[string]any{"apis": out})
	return nil
}

// routePlans lists, once each in order of appearance, the plans an API's
// routes require.
func routePlans(a *keygate.API) []string {
	plans := []string{}
	seen := map[string]bool{}
	for _, rt := range a.Routes {
		for _, p := range rt.Plans {
			if !seen[p] {
				seen[p] = true
				plans = append(plans, p)
			}
		}
	}
	return plans
}

func (h *Handler) usage(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	period, err := manage.ParseUsagePeriod(r.URL.Query().Get("period"))
	if err != nil {
		return err
	}
	tokenID := r.URL.Query().Get("token")
	if tokenID != "" {
		if _, err := manage.FindToken(r.Context(), h.d.Store, a.Organization, tokenID); err != nil {
			return err
		}
	}
	u, err := manage.ReadUsage(r.Context(), h.d.Store, a.Organization, tokenID, period, h.d.Now())
	if err != nil {
		return err
	}
	hours := make([]usageCountJSON, len(u.Buckets))
	for i, b := range u.Buckets {
		hours[i] = toUsageCountJSON(b, true)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"period": u.Period,
		"from":   u.From,
		"to":     u.To,
		"token":  tokenID,
		"totals": toUsageCountJSON(u.Total, false),
		"hours":  hours,
	})
	return nil
}
