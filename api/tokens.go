package api

import (
	"net/http"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
)

func (h *Handler) listTokens(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	tokens, err := manage.ListTokens(r.Context(), h.d.Store, a.Organization)
	if err != nil {
		return err
	}
	manage.MergeLastUsed(h.d.PendingUsage, tokens...)
	now := h.d.Now()
	out := make([]tokenJSON, len(tokens))
	for i, t := range tokens {
		out[i] = toTokenJSON(t, now)
	}
	limits := manage.TokenLimits(h.d.APIs, a.Organization, tokens, now)
	limitsOut := make([]tokenLimitJSON, len(limits))
	for i, l := range limits {
		limitsOut[i] = tokenLimitJSON{API: l.API.Name, Active: l.Active, Max: l.Max}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out, "limits": limitsOut})
	return nil
}

type createTokenRequest struct {
	Name        string   `json:"name"`
	ExpiresIn   string   `json:"expires_in"`
	Scopes      []string `json:"scopes"`
	API         string   `json:"api"`
	Environment string   `json:"environment"`
}

func (h *Handler) createToken(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	var req createTokenRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	api, err := manage.FindAPI(h.d.APIs, req.API)
	if err != nil {
		return err
	}
	now := h.d.Now()
	tok, secret, err := h.tokens().Create(r.Context(), api, a.Organization, keygate.TokenRequest{
		Name:        req.Name,
		Scopes:      req.Scopes,
		Environment: req.Environment,
		Expiry:      keygate.ExpiryChoice(req.ExpiresIn),
		CreatedBy:   c.CreatedBy(),
	}, now)
	if err != nil {
		return err
	}
	h.notify(keygate.ChangeTokenCreated, tok.ID)
	h.d.Logger.InfoContext(r.Context(), "token created",
		"org", a.Organization.Slug, "api", api.Name, "token_id", tok.ID, "hint", tok.Hint, "by", c.Name())
	writeJSON(w, http.StatusCreated, newTokenJSON{tokenJSON: toTokenJSON(tok, now), Token: secret})
	return nil
}

func (h *Handler) getToken(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	tok, err := manage.FindToken(r.Context(), h.d.Store, a.Organization, r.PathValue("id"))
	if err != nil {
		return err
	}
	manage.MergeLastUsed(h.d.PendingUsage, tok)
	writeJSON(w, http.StatusOK, toTokenJSON(tok, h.d.Now()))
	return nil
}

func (h *Handler) deleteToken(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	tok, err := h.tokens().Delete(r.Context(), a.Organization, r.PathValue("id"), h.d.Now())
	if err != nil {
		return err
	}
	h.notify(keygate.ChangeToken, tok.ID)
	h.d.Logger.InfoContext(r.Context(), "token deleted",
		"org", a.Organization.Slug, "api", tok.API, "token_id", tok.ID, "hint", tok.Hint, "by", c.Name())
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type rotateTokenRequest struct {
	// Grace is how long the old secret keeps working: "0", "1h", "24h" or
	// "7d".
	Grace string `json:"grace"`
}

// rotateToken answers 200 with the token and its new secret, shown once.
func (h *Handler) rotateToken(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	var req rotateTokenRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	now := h.d.Now()
	tok, secret, err := h.tokens().Rotate(r.Context(), h.d.APIs, a.Organization, r.PathValue("id"), keygate.RotationGrace(req.Grace), now)
	if err != nil {
		return err
	}
	h.notify(keygate.ChangeToken, tok.ID)
	h.d.Logger.InfoContext(r.Context(), "token rotated",
		"org", a.Organization.Slug, "api", tok.API, "token_id", tok.ID, "hint", tok.Hint, "grace", req.Grace, "by", c.Name())
	writeJSON(w, http.StatusOK, newTokenJSON{tokenJSON: toTokenJSON(tok, now), Token: secret})
	return nil
}
