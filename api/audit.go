package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
)

type auditEntryJSON struct {
	ID             string          `json:"id"`
	At             time.Time       `json:"at"`
	Action         string          `json:"action"`
	Actor          keygate.Actor   `json:"actor"`
	OrganizationID string          `json:"organization_id"`
	TargetID       string          `json:"target_id"`
	Details        json.RawMessage `json:"details"`
}

func (h *Handler) orgAuditLog(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, err := h.access(r, c)
	if err != nil {
		return err
	}
	return h.auditLog(w, r, c, a)
}

func (h *Handler) siteAuditLog(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	return h.auditLog(w, r, c, nil)
}

// auditLog answers a page of entries and the cursor of the next one.
func (h *Handler) auditLog(w http.ResponseWriter, r *http.Request, c manage.Caller, a *manage.Access) error {
	q := r.URL.Query()
	limit := 0
	if s := q.Get("limit"); s != "" {
		var err error
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 {
			return keygate.Errorf(keygate.EINVALID, "limit must be 1 to %d.", keygate.MaxAuditPage)
		}
	}
	page, err := manage.ListAudit(r.Context(), h.d.Store, c, a, manage.AuditQuery{
		Action: q.Get("action"), Actor: q.Get("actor"), From: q.Get("from"), To: q.Get("to"),
		Cursor: q.Get("cursor"), Limit: limit,
	})
	if err != nil {
		return err
	}
	out := make([]auditEntryJSON, len(page.Entries))
	for i, e := range page.Entries {
		out[i] = auditEntryJSON{ID: e.ID, At: e.At, Action: e.Action, Actor: e.Actor,
			OrganizationID: e.OrganizationID, TargetID: e.TargetID, Details: e.Details}
	}
	var next *string
	if page.NextCursor != "" {
		next = &page.NextCursor
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": out, "next_cursor": next})
	return nil
}
