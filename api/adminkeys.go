package api

import (
	"net/http"

	"github.com/keygate/keygate/manage"
)

// Admin keys are listed and revoked here; they are created with
// `keygate admin-keys create`, which shows the secret once. No response
// carries a key's secret or hash, only its hint.

func (h *Handler) listAdminKeys(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	keys, err := manage.ListAdminKeys(r.Context(), h.d.Store, c)
	if err != nil {
		return err
	}
	out := make([]adminKeyJSON, len(keys))
	for i, k := range keys {
		out[i] = adminKeyJSON{ID: k.ID, Name: k.Name, Hint: k.Hint, CreatedAt: k.CreatedAt}
	}
	writeJSON(w, http.StatusOK, map[string]any{"admin_keys": out})
	return nil
}

func (h *Handler) revokeAdminKey(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	id := r.PathValue("id")
	if err := manage.RevokeAdminKey(r.Context(), h.d.Store, c, id, h.d.Now()); err != nil {
		return err
	}
	h.d.Logger.InfoContext(r.Context(), "admin key revoked", "admin_key_id", id, "by", c.Name())
	w.WriteHeader(http.StatusNoContent)
	return nil
}
