package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
)

// Wire shapes of webhook endpoints and their delivery log.

type webhookJSON struct {
	ID  string `json:"id"`
	URL string `json:"url"`
	// Events is what the endpoint subscribes to; empty: every token event.
	Events    []string  `json:"events"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

// newWebhookJSON adds the signing secret, present only in the create
// response.
type newWebhookJSON struct {
	webhookJSON
	Secret string `json:"secret"`
}

func toWebhookJSON(w *keygate.Webhook) webhookJSON {
	events := w.Events
	if events == nil {
		events = []string{}
	}
	return webhookJSON{ID: w.ID, URL: w.URL, Events: events, Disabled: w.Disabled, CreatedAt: w.CreatedAt}
}

type deliveryJSON struct {
	ID        string `json:"id"`
	WebhookID string `json:"webhook_id"`
	Event     string `json:"event"`
	State     string `json:"state"`
	Attempts  int    `json:"attempts"`
	// NextAttemptAt is set only while the delivery is pending.
	NextAttemptAt *time.Time      `json:"next_attempt_at"`
	LastAttemptAt *time.Time      `json:"last_attempt_at"`
	LastStatus    int             `json:"last_status"` // 0: no answer
	LastError     string          `json:"last_error"`
	LastResponse  string          `json:"last_response"`
	DeliveredAt   *time.Time      `json:"delivered_at"`
	CreatedAt     time.Time       `json:"created_at"`
	Payload       json.RawMessage `json:"payload"`
	AttemptLog    []attemptJSON   `json:"attempt_log"`
}

type attemptJSON struct {
	Attempt       int        `json:"attempt"`
	At            time.Time  `json:"at"`
	DurationMS    int64      `json:"duration_ms"`
	Status        int        `json:"status"`
	Error         string     `json:"error"`
	Response      string     `json:"response"`
	Delivered     bool       `json:"delivered"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
}

func toDeliveryJSON(d *keygate.WebhookDelivery, attempts []*keygate.WebhookAttempt) deliveryJSON {
	out := deliveryJSON{
		ID: d.ID, WebhookID: d.WebhookID, Event: d.Event, State: d.State, Attempts: d.Attempts,
		LastAttemptAt: d.LastAttemptAt, LastStatus: d.LastStatus, LastError: d.LastError,
		LastResponse: d.LastResponse, DeliveredAt: d.DeliveredAt, CreatedAt: d.CreatedAt,
		Payload: json.RawMessage("null"), AttemptLog: make([]attemptJSON, len(attempts)),
	}
	if d.State == keygate.DeliveryPending {
		out.NextAttemptAt = d.NextAttemptAt
	}
	// The payload is the body exactly as signed; it is keygate's own JSON.
	if json.Valid(d.Payload) {
		out.Payload = d.Payload
	}
	for i, a := range attempts {
		out.AttemptLog[i] = attemptJSON{
			Attempt: a.Attempt, At: a.At, DurationMS: a.Duration.Milliseconds(), Status: a.Status,
			Error: a.Error, Response: a.Response, Delivered: a.Delivered, NextAttemptAt: a.NextAttemptAt,
		}
	}
	return out
}

// webhookAccess returns the caller's standing in the path's organization
// and the store's webhooks, when the caller may manage them.
func (h *Handler) webhookAccess(r *http.Request, c manage.Caller) (*manage.Access, keygate.WebhookStore, error) {
	a, err := h.access(r, c)
	if err != nil {
		return nil, nil, err
	}
	if err := a.RequireWebhookManager(); err != nil {
		return nil, nil, err
	}
	store, ok := h.d.Store.(keygate.WebhookStore)
	if !ok || h.d.Webhooks == nil {
		return nil, nil, keygate.Errorf(keygate.EUNAVAILABLE, "Webhooks are off: this keygate's store does not keep them.")
	}
	return a, store, nil
}

func (h *Handler) listWebhooks(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, store, err := h.webhookAccess(r, c)
	if err != nil {
		return err
	}
	hooks, err := manage.ListWebhooks(r.Context(), store, a.Organization)
	if err != nil {
		return err
	}
	out := make([]webhookJSON, len(hooks))
	for i, hook := range hooks {
		out[i] = toWebhookJSON(hook)
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": out})
	return nil
}

type createWebhookRequest struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
}

func (h *Handler) createWebhook(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, store, err := h.webhookAccess(r, c)
	if err != nil {
		return err
	}
	var req createWebhookRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	hook, err := manage.CreateWebhook(r.Context(), store, h.d.Webhooks, a.Organization, req.URL, req.Events, h.d.Now())
	if err != nil {
		return err
	}
	h.d.Logger.InfoContext(r.Context(), "webhook created",
		"org", a.Organization.Slug, "webhook_id", hook.ID, "host", urlHost(hook.URL), "by", c.Name())
	writeJSON(w, http.StatusCreated, newWebhookJSON{webhookJSON: toWebhookJSON(hook), Secret: hook.Secret})
	return nil
}

func (h *Handler) getWebhook(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, store, err := h.webhookAccess(r, c)
	if err != nil {
		return err
	}
	hook, err := manage.FindWebhook(r.Context(), store, a.Organization, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toWebhookJSON(hook))
	return nil
}

// updateWebhookRequest changes only the fields present.
type updateWebhookRequest struct {
	URL      *string   `json:"url"`
	Events   *[]string `json:"events"`
	Disabled *bool     `json:"disabled"`
}

func (h *Handler) updateWebhook(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, store, err := h.webhookAccess(r, c)
	if err != nil {
		return err
	}
	var req updateWebhookRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	hook, err := manage.UpdateWebhook(r.Context(), store, h.d.Webhooks, a.Organization, r.PathValue("id"),
		manage.WebhookUpdate{URL: req.URL, Events: req.Events, Disabled: req.Disabled})
	if err != nil {
		return err
	}
	h.d.Logger.InfoContext(r.Context(), "webhook updated", "org", a.Organization.Slug, "webhook_id", hook.ID,
		"host", urlHost(hook.URL), "disabled", hook.Disabled, "by", c.Name())
	writeJSON(w, http.StatusOK, toWebhookJSON(hook))
	return nil
}

func (h *Handler) deleteWebhook(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, store, err := h.webhookAccess(r, c)
	if err != nil {
		return err
	}
	hook, err := manage.DeleteWebhook(r.Context(), store, a.Organization, r.PathValue("id"))
	if err != nil {
		return err
	}
	h.d.Logger.InfoContext(r.Context(), "webhook deleted",
		"org", a.Organization.Slug, "webhook_id", hook.ID, "host", urlHost(hook.URL), "by", c.Name())
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) testWebhook(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, store, err := h.webhookAccess(r, c)
	if err != nil {
		return err
	}
	del, err := manage.SendTestWebhook(r.Context(), store, h.d.Webhooks, a.Organization, r.PathValue("id"))
	if err != nil {
		return err
	}
	h.d.Logger.InfoContext(r.Context(), "webhook test queued",
		"org", a.Organization.Slug, "webhook_id", del.WebhookID, "delivery_id", del.ID, "by", c.Name())
	writeJSON(w, http.StatusAccepted, toDeliveryJSON(del, nil))
	return nil
}

func (h *Handler) listWebhookDeliveries(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, store, err := h.webhookAccess(r, c)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit := 0
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 {
			return keygate.Errorf(keygate.EINVALID, "The limit must be 1 to %d.", manage.MaxWebhookDeliveries)
		}
	}
	deliveries, err := manage.ListWebhookDeliveries(r.Context(), store, a.Organization, r.PathValue("id"), q.Get("state"), limit)
	if err != nil {
		return err
	}
	out := make([]deliveryJSON, len(deliveries))
	for i, d := range deliveries {
		attempts, err := store.ListWebhookAttempts(r.Context(), d.ID)
		if err != nil {
			return err
		}
		out[i] = toDeliveryJSON(d, attempts)
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": out})
	return nil
}

func (h *Handler) getWebhookDelivery(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, store, err := h.webhookAccess(r, c)
	if err != nil {
		return err
	}
	del, err := manage.FindWebhookDelivery(r.Context(), store, a.Organization, r.PathValue("id"), r.PathValue("delivery"))
	if err != nil {
		return err
	}
	attempts, err := store.ListWebhookAttempts(r.Context(), del.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toDeliveryJSON(del, attempts))
	return nil
}

func (h *Handler) redeliverWebhook(w http.ResponseWriter, r *http.Request, c manage.Caller) error {
	a, store, err := h.webhookAccess(r, c)
	if err != nil {
		return err
	}
	del, err := manage.RedeliverWebhook(r.Context(), store, a.Organization, r.PathValue("id"), r.PathValue("delivery"), h.d.Now())
	if err != nil {
		return err
	}
	attempts, err := store.ListWebhookAttempts(r.Context(), del.ID)
	if err != nil {
		return err
	}
	h.d.Logger.InfoContext(r.Context(), "webhook delivery queued again",
		"org", a.Organization.Slug, "webhook_id", del.WebhookID, "delivery_id", del.ID, "by", c.Name())
	writeJSON(w, http.StatusAccepted, toDeliveryJSON(del, attempts))
	return nil
}

// urlHost is how logs name an endpoint: its host only, since the rest of
// a URL often carries the receiver's own secret.
func urlHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}
