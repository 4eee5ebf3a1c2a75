package dashboard

import (
	"net/http"
	"net/url"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
)

type auditPage struct {
	frame
	Entries []*keygate.AuditEntry
	Actions []string
	Query   manage.AuditQuery
	// NextURL is the next (older) page with the same filters; "" on the
	// last page.
	NextURL string
	Error   string
}

// auditLog shows the organization's audit log to its owners (and site
// administrators), newest first, filtered by action, actor and dates.
func (h *Handler) auditLog(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
	q := r.URL.Query()
	p := auditPage{frame: *f, Actions: keygate.AuditActions, Query: manage.AuditQuery{
		Action: q.Get("action"), Actor: q.Get("actor"), From: q.Get("from"), To: q.Get("to"), Cursor: q.Get("cursor"),
	}}
	p.Title, p.Section = "Audit log", "audit"
	page, err := manage.ListAudit(r.Context(), h.d.Store, caller(f), a, p.Query)
	if keygate.ErrorCode(err) == keygate.EINVALID {
		p.Error = keygate.ErrorMessage(err)
		h.render(w, r, http.StatusBadRequest, "audit", p)
		return
	} else if err != nil {
		h.showError(w, r, f, err)
		return
	}
	p.Entries = page.Entries
	if page.NextCursor != "" {
		next := url.Values{"cursor": {page.NextCursor}}
		for k, v := range map[string]string{"action": p.Query.Action, "actor": p.Query.Actor, "from": p.Query.From, "to": p.Query.To} {
			if v != "" {
				next.Set(k, v)
			}
		}
		p.NextURL = h.orgPath(a, "/audit-log?"+next.Encode())
	}
	h.render(w, r, http.StatusOK, "audit", p)
}
