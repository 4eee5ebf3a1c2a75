package dashboard

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
)

// Developers → Webhooks: an organization's endpoints, each with its
// delivery log. Only owners and site administrators see these pages (an
// endpoint's URL often carries its receiver's own secret); for members the
// sidebar has no link and the pages answer 403.

// maxLoggedDeliveries is how much of an endpoint's log its page shows.
const maxLoggedDeliveries = 50

// webhookOrg runs next for a caller who may manage the organization's
// webhooks, with the store's webhooks. Without a dispatcher (a store that
// keeps no webhooks) every page says webhooks are off.
func (h *Handler) webhookOrg(next func(http.ResponseWriter, *http.Request, *frame, *manage.Access, keygate.WebhookStore)) http.Handler {
	return h.org(func(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access) {
		if err := a.RequireWebhookManager(); err != nil {
			h.showError(w, r, f, err)
			return
		}
		store, ok := h.d.Store.(keygate.WebhookStore)
		if !ok || h.d.Webhooks == nil {
			p := webhooksPage{frame: *f, Off: true}
			p.Title, p.Section = "Webhooks", "webhooks"
			h.render(w, r, http.StatusServiceUnavailable, "webhooks", p)
			return
		}
		next(w, r, f, a, store)
	})
}

type webhooksPage struct {
	frame
	Webhooks []*keygate.Webhook
	// Off: this keygate's store keeps no webhooks.
	Off bool
}

var webhookNotices = map[string]string{
	"deleted":     "Endpoint deleted. It receives nothing more, and its delivery log is gone.",
	"test":        "Test event queued. It appears in the log below, and is sent within seconds.",
	"enabled":     "Endpoint enabled. It receives events from now on, and deliveries that were waiting are sent.",
	"disabled":    "Endpoint disabled. It receives no new events; deliveries already queued wait until it is enabled.",
	"redelivered": "Delivery queued again, with the same webhook-id.",
}

func (h *Handler) webhooks(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access, store keygate.WebhookStore) {
	hooks, err := manage.ListWebhooks(r.Context(), store, a.Organization)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	f.Notice = webhookNotices[r.URL.Query().Get("done")]
	p := webhooksPage{frame: *f, Webhooks: hooks}
	p.Title, p.Section = "Webhooks", "webhooks"
	h.render(w, r, http.StatusOK, "webhooks", p)
}

type eventOption struct {
	Name    string
	Help    string
	Checked bool
}

var eventHelp = map[string]string{
	keygate.EventTokenCreated:  "A token was created.",
	keygate.EventTokenDeleted:  "A token was deleted.",
	keygate.EventTokenExpiring: "A token expires within 7 days.",
	keygate.EventTokenExpired:  "A token has expired.",
}

type newWebhookPage struct {
	frame
	URL    string
	Events []eventOption
	FormID string
	Error  string
}

// newWebhookForm is the add-endpoint form with every event checked.
func (h *Handler) newWebhookForm(f *frame) *newWebhookPage {
	p := &newWebhookPage{frame: *f, FormID: h.forms.newID(h.d.Now())}
	p.Title, p.Section = "Add endpoint", "webhooks"
	for _, e := range keygate.WebhookEvents {
		p.Events = append(p.Events, eventOption{Name: e, Help: eventHelp[e], Checked: true})
	}
	return p
}

func (h *Handler) newWebhook(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access, _ keygate.WebhookStore) {
	h.render(w, r, http.StatusOK, "webhook_new", h.newWebhookForm(f))
}

type webhookCreatedPage struct {
	frame
	Webhook *keygate.Webhook
	// PageURL replaces the address after the page loads, so reloading shows
	// the endpoint rather than posting the form again.
	PageURL string
}

// createWebhook answers the add-endpoint form with the signing secret,
// shown this once, as createToken does for a token.
func (h *Handler) createWebhook(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access, store keygate.WebhookStore) {
	p := h.newWebhookForm(f)
	p.URL = r.PostFormValue("url")
	events := r.PostForm["events"]
	for i := range p.Events {
		p.Events[i].Checked = keygate.HasAll(events, []string{p.Events[i].Name})
	}
	refuse := func(err error) {
		status, msg, ok := formError(err)
		if !ok {
			h.fail(w, r, err)
			return
		}
		p.Error = msg
		h.render(w, r, status, "webhook_new", p)
	}
	// The form lists events explicitly; an empty list would mean "every
	// event", the opposite of what unticking them all says.
	if len(events) == 0 {
		refuse(keygate.Errorf(keygate.EINVALID, "Choose at least one event."))
		return
	}
	formID := r.PostFormValue("form_id")
	switch err := h.forms.use(formID, h.d.Now()); err {
	case nil:
	case errFormUsed:
		refuse(keygate.Errorf(keygate.ECONFLICT, "This form was already submitted and the endpoint's signing secret was shown once. The endpoint is in the list; if the secret was lost, delete it and add it again."))
		return
	default:
		refuse(keygate.Errorf(keygate.EINVALID, "This form has expired. Open it again to add an endpoint."))
		return
	}
	hook, err := manage.CreateWebhook(r.Context(), store, h.d.Webhooks, a.Organization, p.URL, events, h.d.Now())
	if err != nil {
		h.forms.release(formID)
		refuse(err)
		return
	}
	h.d.Logger.InfoContext(r.Context(), "webhook created",
		"org", a.Organization.Slug, "webhook_id", hook.ID, "host", urlHost(hook.URL), "user_id", f.User.ID)
	out := webhookCreatedPage{frame: *f, Webhook: hook, PageURL: h.orgPath(a, "/webhooks/"+url.PathEscape(hook.ID))}
	out.Title, out.Section = "Endpoint added", "webhooks"
	w.Header().Set("Referrer-Policy", "no-referrer")
	h.render(w, r, http.StatusCreated, "webhook_created", out)
}

// deliveryRow is a delivery as the log shows it.
type deliveryRow struct {
	*keygate.WebhookDelivery
	// Redeliverable: delivered or failed, so it can be sent again.
	Redeliverable bool
}

type webhookPage struct {
	frame
	Webhook     *keygate.Webhook
	Deliveries  []deliveryRow
	MaxAttempts int
}

func (h *Handler) webhook(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access, store keygate.WebhookStore) {
	hook, err := manage.FindWebhook(r.Context(), store, a.Organization, r.PathValue("id"))
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	deliveries, err := manage.ListWebhookDeliveries(r.Context(), store, a.Organization, hook.ID, "", maxLoggedDeliveries)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	f.Notice = webhookNotices[r.URL.Query().Get("done")]
	p := webhookPage{frame: *f, Webhook: hook, MaxAttempts: h.d.Webhooks.MaxAttempts()}
	p.Title, p.Section = endpointLabel(hook.URL), "webhooks"
	for _, d := range deliveries {
		p.Deliveries = append(p.Deliveries, deliveryRow{WebhookDelivery: d, Redeliverable: d.State != keygate.DeliveryPending})
	}
	h.render(w, r, http.StatusOK, "webhook", p)
}

func (h *Handler) testWebhook(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access, store keygate.WebhookStore) {
	del, err := manage.SendTestWebhook(r.Context(), store, h.d.Webhooks, a.Organization, r.PathValue("id"))
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	h.d.Logger.InfoContext(r.Context(), "webhook test queued",
		"org", a.Organization.Slug, "webhook_id", del.WebhookID, "delivery_id", del.ID, "user_id", f.User.ID)
	redirect(w, r, h.orgPath(a, "/webhooks/"+url.PathEscape(del.WebhookID)+"?done=test"))
}

// setWebhookDisabled returns the handler that disables (or enables) an
// endpoint.
func (h *Handler) setWebhookDisabled(disabled bool) func(http.ResponseWriter, *http.Request, *frame, *manage.Access, keygate.WebhookStore) {
	return func(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access, store keygate.WebhookStore) {
		hook, err := manage.UpdateWebhook(r.Context(), store, h.d.Webhooks, a.Organization, r.PathValue("id"), manage.WebhookUpdate{Disabled: &disabled})
		if err != nil {
			h.showError(w, r, f, err)
			return
		}
		h.d.Logger.InfoContext(r.Context(), "webhook updated",
			"org", a.Organization.Slug, "webhook_id", hook.ID, "disabled", hook.Disabled, "user_id", f.User.ID)
		done := "enabled"
		if disabled {
			done = "disabled"
		}
		redirect(w, r, h.orgPath(a, "/webhooks/"+url.PathEscape(hook.ID)+"?done="+done))
	}
}

func (h *Handler) confirmDeleteWebhook(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access, store keygate.WebhookStore) {
	hook, err := manage.FindWebhook(r.Context(), store, a.Organization, r.PathValue("id"))
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	p := webhookPage{frame: *f, Webhook: hook}
	p.Title, p.Section = "Delete endpoint", "webhooks"
	h.render(w, r, http.StatusOK, "webhook_delete", p)
}

func (h *Handler) deleteWebhook(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access, store keygate.WebhookStore) {
	hook, err := manage.DeleteWebhook(r.Context(), store, a.Organization, r.PathValue("id"))
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	h.d.Logger.InfoContext(r.Context(), "webhook deleted",
		"org", a.Organization.Slug, "webhook_id", hook.ID, "host", urlHost(hook.URL), "user_id", f.User.ID)
	redirect(w, r, h.orgPath(a, "/webhooks?done=deleted"))
}

type deliveryPage struct {
	frame
	Webhook     *keygate.Webhook
	Delivery    deliveryRow
	Payload     string // indented to read
	Attempts    []*keygate.WebhookAttempt
	MaxAttempts int
}

func (h *Handler) webhookDelivery(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access, store keygate.WebhookStore) {
	hook, err := manage.FindWebhook(r.Context(), store, a.Organization, r.PathValue("id"))
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	del, err := manage.FindWebhookDelivery(r.Context(), store, a.Organization, hook.ID, r.PathValue("delivery"))
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	attempts, err := store.ListWebhookAttempts(r.Context(), del.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p := deliveryPage{
		frame: *f, Webhook: hook, Attempts: attempts, MaxAttempts: h.d.Webhooks.MaxAttempts(),
		Delivery: deliveryRow{WebhookDelivery: del, Redeliverable: del.State != keygate.DeliveryPending},
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, del.Payload, "", "  ") == nil {
		p.Payload = pretty.String()
	} else {
		p.Payload = string(del.Payload)
	}
	p.Title, p.Section = del.Event+" delivery", "webhooks"
	h.render(w, r, http.StatusOK, "webhook_delivery", p)
}

func (h *Handler) redeliverWebhook(w http.ResponseWriter, r *http.Request, f *frame, a *manage.Access, store keygate.WebhookStore) {
	del, err := manage.RedeliverWebhook(r.Context(), store, a.Organization, r.PathValue("id"), r.PathValue("delivery"), h.d.Now())
	if err != nil {
		h.showError(w, r, f, err)
		return
	}
	h.d.Logger.InfoContext(r.Context(), "webhook delivery queued again",
		"org", a.Organization.Slug, "webhook_id", del.WebhookID, "delivery_id", del.ID, "user_id", f.User.ID)
	redirect(w, r, h.orgPath(a, "/webhooks/"+url.PathEscape(del.WebhookID)+"?done=redelivered"))
}

// endpointLabel is how lists name an endpoint: host and path, without the
// query, where receivers often put a secret of their own.
func endpointLabel(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host + u.EscapedPath()
}

// urlHost is how logs name an endpoint: its host only.
func urlHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}
