package manage

import (
	"context"
	"time"

	"github.com/keygate/keygate"
)

// WebhookDispatcher is what managing endpoints needs from the webhook
// dispatcher (*webhook.Dispatcher): a check that deliveries could reach a
// URL, and test events.
type WebhookDispatcher interface {
	// CheckURL returns EINVALID for a URL deliveries could not reach, such
	// as one on a private address.
	CheckURL(ctx context.Context, raw string) error
	// SendTest stores a webhook.test delivery for one endpoint.
	SendTest(ctx context.Context, webhookID string) (*keygate.WebhookDelivery, error)
	// MaxEndpoints is how many endpoints one organization may have.
	MaxEndpoints() int
}

// ListWebhooks returns org's endpoints, oldest first.
func ListWebhooks(ctx context.Context, store keygate.WebhookStore, org *keygate.Organization) ([]*keygate.Webhook, error) {
	return store.ListWebhooks(ctx, org.ID)
}

// FindWebhook returns org's endpoint with the given id; ENOTFOUND when there
// is none or it belongs to another organization, so ids of other
// organizations' endpoints reveal nothing.
func FindWebhook(ctx context.Context, store keygate.WebhookStore, org *keygate.Organization, id string) (*keygate.Webhook, error) {
	w, err := store.FindWebhook(ctx, id)
	if err != nil && keygate.ErrorCode(err) != keygate.ENOTFOUND {
		return nil, err
	}
	if w == nil || w.OrganizationID != org.ID {
		return nil, keygate.Errorf(keygate.ENOTFOUND, "Webhook %q not found.", id)
	}
	return w, nil
}

// CreateWebhook validates the URL and events, checks that deliveries could
// reach the URL, and stores a new endpoint for org with a new signing
// secret, unless org has d.MaxEndpoints() already (ECONFLICT). The
// returned endpoint's Secret is shown to the caller once.
func CreateWebhook(ctx context.Context, store keygate.WebhookStore, d WebhookDispatcher, org *keygate.Organization, url string, events []string, now time.Time) (*keygate.Webhook, error) {
	w, err := keygate.NewWebhook(keygate.WebhookRequest{OrganizationID: org.ID, URL: url, Events: events}, now)
	if err != nil {
		return nil, err
	}
	if err := d.CheckURL(ctx, w.URL); err != nil {
		return nil, err
	}
	if err := store.CreateWebhook(ctx, w, d.MaxEndpoints()); err != nil {
		return nil, err
	}
	return w, nil
}

// WebhookUpdate changes the fields that are not nil.
type WebhookUpdate struct {
	URL      *string
	Events   *[]string // an empty list: every event
	Disabled *bool
}

// UpdateWebhook changes org's endpoint id. A new URL is checked as on
// creation; the signing secret stays. Enabling an endpoint lets its pending
// deliveries go out.
func UpdateWebhook(ctx context.Context, store keygate.WebhookStore, d WebhookDispatcher, org *keygate.Organization, id string, u WebhookUpdate) (*keygate.Webhook, error) {
	w, err := FindWebhook(ctx, store, org, id)
	if err != nil {
		return nil, err
	}
	if u.URL != nil {
		if w.URL, err = keygate.CleanWebhookURL(*u.URL); err != nil {
			return nil, err
		}
		if err := d.CheckURL(ctx, w.URL); err != nil {
			return nil, err
		}
	}
	if u.Events != nil {
		if w.Events, err = keygate.CleanWebhookEvents(*u.Events); err != nil {
			return nil, err
		}
	}
	if u.Disabled != nil {
		w.Disabled = *u.Disabled
	}
	if err := store.UpdateWebhook(ctx, w); err != nil {
		return nil, err
	}
	return w, nil
}

// DeleteWebhook removes org's endpoint id with its delivery log; pending
// deliveries to it are dropped.
func DeleteWebhook(ctx context.Context, store keygate.WebhookStore, org *keygate.Organization, id string) (*keygate.Webhook, error) {
	w, err := FindWebhook(ctx, store, org, id)
	if err != nil {
		return nil, err
	}
	if err := store.DeleteWebhook(ctx, w.ID); err != nil {
		return nil, err
	}
	return w, nil
}

// SendTestWebhook queues a webhook.test event for org's endpoint id and
// returns its delivery, to follow in the log.
func SendTestWebhook(ctx context.Context, store keygate.WebhookStore, d WebhookDispatcher, org *keygate.Organization, id string) (*keygate.WebhookDelivery, error) {
	w, err := FindWebhook(ctx, store, org, id)
	if err != nil {
		return nil, err
	}
	return d.SendTest(ctx, w.ID)
}

// WebhookDeliveryStates are the states the delivery log can be filtered by.
var WebhookDeliveryStates = []string{keygate.DeliveryPending, keygate.DeliveryDelivered, keygate.DeliveryFailed}

// MaxWebhookDeliveries bounds one page of the delivery log.
const MaxWebhookDeliveries = 100

// ListWebhookDeliveries returns the newest deliveries to org's endpoint id,
// at most limit (0: MaxWebhookDeliveries), only those in state when it is
// set.
func ListWebhookDeliveries(ctx context.Context, store keygate.WebhookStore, org *keygate.Organization, id, state string, limit int) ([]*keygate.WebhookDelivery, error) {
	w, err := FindWebhook(ctx, store, org, id)
	if err != nil {
		return nil, err
	}
	if state != "" && !keygate.HasAll(WebhookDeliveryStates, []string{state}) {
		return nil, keygate.Errorf(keygate.EINVALID, "Unknown delivery state %q: choose pending, delivered or failed.", state)
	}
	if limit < 0 || limit > MaxWebhookDeliveries {
		return nil, keygate.Errorf(keygate.EINVALID, "The limit must be 1 to %d.", MaxWebhookDeliveries)
	} else if limit == 0 {
		limit = MaxWebhookDeliveries
	}
	return store.ListWebhookDeliveries(ctx, keygate.WebhookDeliveryFilter{
		OrganizationID: org.ID, WebhookID: w.ID, State: state, Limit: limit,
	})
}

// FindWebhookDelivery returns the delivery to org's endpoint webhookID with
// the given id; ENOTFOUND when there is none, or it went to another
// endpoint or organization.
func FindWebhookDelivery(ctx context.Context, store keygate.WebhookStore, org *keygate.Organization, webhookID, id string) (*keygate.WebhookDelivery, error) {
	w, err := FindWebhook(ctx, store, org, webhookID)
	if err != nil {
		return nil, err
	}
	del, err := store.FindWebhookDelivery(ctx, id)
	if err != nil && keygate.ErrorCode(err) != keygate.ENOTFOUND {
		return nil, err
	}
	if del == nil || del.WebhookID != w.ID || del.OrganizationID != org.ID {
		return nil, keygate.Errorf(keygate.ENOTFOUND, "Webhook delivery %q not found.", id)
	}
	return del, nil
}

// RedeliverWebhook sends a delivered or failed delivery once more, with the
// same webhook-id and body, and returns it as it now stands: pending.
// ECONFLICT while it is still pending.
func RedeliverWebhook(ctx context.Context, store keygate.WebhookStore, org *keygate.Organization, webhookID, id string, now time.Time) (*keygate.WebhookDelivery, error) {
	del, err := FindWebhookDelivery(ctx, store, org, webhookID, id)
	if err != nil {
		return nil, err
	}
	if del.State == keygate.DeliveryPending {
		return nil, keygate.Errorf(keygate.ECONFLICT, "This delivery is still pending: it will be attempted again on its own.")
	}
	if err := store.RedeliverWebhook(ctx, del.ID, now); err != nil {
		return nil, err
	}
	return store.FindWebhookDelivery(ctx, del.ID)
}
