package keygate

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/url"
	"strings"
	"time"
)

// Webhooks tell an organization's own systems about its tokens: an
// endpoint URL receives a signed POST for each event it subscribes to.
// Package webhook signs, sends and retries; the types below are what the
// stores keep. Payloads describe tokens by id, name and hint, never by
// their secret.

// Webhook events, in the Standard Webhooks "type" form.
const (
	EventTokenCreated  = "token.created"
	EventTokenDeleted  = "token.deleted"
	EventTokenExpiring = "token.expiring" // 7 days (TokenExpiringWindow) before expires_at
	EventTokenExpired  = "token.expired"
	// EventTokenRotated goes out each time a token gets a new secret; the
	// data's previous_secret_expires_at says when the old one stops working.
	EventTokenRotated = "token.rotated"
	// EventWebhookTest is sent to one endpoint on request, so its owner can
	// check their receiver; endpoints cannot subscribe to it.
	EventWebhookTest = "webhook.test"
	// EventAudit subscribes an endpoint to every audit log entry of its
	// organization, each sent as "audit.<action>" (audit.token.created,
	// audit.login.failed…), for shipping to a SIEM. Only endpoints that
	// name it receive audit events; an empty list means token events only.
	EventAudit = "audit.*"
)

// AuditEventPrefix starts the type of every audit event.
const AuditEventPrefix = "audit."

// IsDeliverableEvent reports whether event can be emitted to endpoints:
// one of WebhookEvents, or an audit event.
func IsDeliverableEvent(event string) bool {
	return isWebhookEvent(event) || (strings.HasPrefix(event, AuditEventPrefix) && IsAuditAction(event[len(AuditEventPrefix):]))
}

// WebhookEvents lists the events an endpoint can subscribe to, in the order
// forms show them.
var WebhookEvents = []string{EventTokenCreated, EventTokenRotated, EventTokenDeleted, EventTokenExpiring, EventTokenExpired}

// TokenExpiringWindow is how long before its expiry a token's
// token.expiring event goes out.
const TokenExpiringWindow = 7 * 24 * time.Hour

// DefaultMaxWebhooksPerOrganization caps an organization's endpoints when
// the config does not: each token event fans out to every endpoint, with
// retries, so endpoints multiply the delivery work.
const DefaultMaxWebhooksPerOrganization = 10

// TooManyWebhooksError is the refusal of an endpoint over the cap.
func TooManyWebhooksError(max int) *Error {
	return Errorf(ECONFLICT, "This organization already has %d webhook endpoints, the most allowed. Delete one before adding another.", max)
}

// MaxWebhookURLLength bounds an endpoint URL.
const MaxWebhookURLLength = 2048

// Webhook is an organization's endpoint. Secret signs every delivery
// (Standard Webhooks, HMAC-SHA256). Unlike a token it must be kept as it is:
// keygate needs it to sign, and it is not a credential anyone presents to
// keygate. It is shown to the endpoint's owner once, at creation.
type Webhook struct {
	ID             string
	OrganizationID string
	URL            string
	// Events the endpoint receives; empty means every event in
	// WebhookEvents.
	Events    []string
	Secret    string // "whsec_" + base64 of 32 random bytes
	Disabled  bool   // no deliveries are made; set by its owner or on 410 Gone
	CreatedAt time.Time
}

// Subscribes reports whether the endpoint receives event.
func (w *Webhook) Subscribes(event string) bool {
	if len(w.Events) == 0 {
		return isWebhookEvent(event)
	}
	if strings.HasPrefix(event, AuditEventPrefix) {
		return HasAll(w.Events, []string{EventAudit})
	}
	return HasAll(w.Events, []string{event})
}

// WebhookSecretPrefix marks a Standard Webhooks symmetric signing secret.
const WebhookSecretPrefix = "whsec_"

// NewWebhookSecret returns a new signing secret: the prefix and the base64
// of 32 random bytes (Standard Webhooks asks for 24 to 64).
func NewWebhookSecret() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("keygate: crypto/rand failed: " + err.Error())
	}
	return WebhookSecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// WebhookRequest is what an organization's owner asks for when adding an
// endpoint.
type WebhookRequest struct {
	OrganizationID string
	URL            string
	Events         []string // empty: every event
}

// NewWebhook validates req and returns the endpoint to store, with a new
// id and secret. Whether the URL's host is a public address is checked when
// delivering, after DNS resolution, not here.
func NewWebhook(req WebhookRequest, now time.Time) (*Webhook, error) {
	u, err := CleanWebhookURL(req.URL)
	if err != nil {
		return nil, err
	}
	events, err := CleanWebhookEvents(req.Events)
	if err != nil {
		return nil, err
	}
	return &Webhook{
		ID:             NewID("whk"),
		OrganizationID: req.OrganizationID,
		URL:            u,
		Events:         events,
		Secret:         NewWebhookSecret(),
		CreatedAt:      now.UTC(),
	}, nil
}

// CleanWebhookURL returns the endpoint URL trimmed, or EINVALID unless it
// is an absolute http or https URL with a host and no fragment.
func CleanWebhookURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", Errorf(EINVALID, "Webhook URL is required.")
	} else if len(raw) > MaxWebhookURLLength {
		return "", Errorf(EINVALID, "Webhook URL must be at most %d characters.", MaxWebhookURLLength)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", Errorf(EINVALID, "Webhook URL is not a valid URL.")
	case u.Scheme != "https" && u.Scheme != "http":
		return "", Errorf(EINVALID, "Webhook URL must start with https:// or http://.")
	case u.Hostname() == "":
		return "", Errorf(EINVALID, "Webhook URL must name a host.")
	case u.User != nil:
		return "", Errorf(EINVALID, "Webhook URL must not contain a user name or password.")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "", Errorf(EINVALID, "Webhook URL must not contain a fragment (#).")
	}
	return raw, nil
}

// CleanWebhookEvents returns events without blanks and duplicates, or
// EINVALID when one is not in WebhookEvents.
func CleanWebhookEvents(events []string) ([]string, error) {
	out := dedupe(events)
	for _, e := range out {
		if !isWebhookEvent(e) && e != EventAudit {
			return nil, Errorf(EINVALID, "Unknown webhook event %q: choose from %s, %s.", e, strings.Join(WebhookEvents, ", "), EventAudit)
		}
	}
	return out, nil
}

func isWebhookEvent(event string) bool {
	return HasAll(WebhookEvents, []string{event})
}

// States of a webhook delivery.
const (
	DeliveryPending   = "pending"   // waiting for its next attempt
	DeliveryDelivered = "delivered" // an attempt got a 2xx answer
	DeliveryFailed    = "failed"    // attempts ran out, or the endpoint answered 410 Gone
)

// WebhookDelivery is one event on its way to one endpoint, and its entry in
// the delivery log. Its ID is the webhook-id header of every attempt, so a
// receiver can tell a retry from a new event.
type WebhookDelivery struct {
	ID             string // "msg_…"
	WebhookID      string
	OrganizationID string
	Event          string
	// Payload is the request body exactly as it is signed and sent.
	Payload       []byte
	State         string // one of the Delivery constants
	Attempts      int    // attempts started, including one in flight
	NextAttemptAt *time.Time
	LastAttemptAt *time.Time
	LastStatus    int    // HTTP status of the last answer; 0 when none came
	LastError     string // why the last attempt failed; "" after success
	LastResponse  string // the start of the last answer's body
	DeliveredAt   *time.Time
	CreatedAt     time.Time
}

// Queue gives the delivery what it has on entering the queue: an id unless
// it has one, createdAt, pending, due at createdAt unless it is already
// scheduled, and an empty payload rather than none. Stores call it on
// enqueue with createdAt at their own precision, so every store queues a
// delivery alike.
func (d *WebhookDelivery) Queue(createdAt time.Time) {
	if d.ID == "" {
		d.ID = NewID("msg")
	}
	d.CreatedAt = createdAt
	if d.NextAttemptAt == nil {
		due := createdAt
		d.NextAttemptAt = &due
	}
	d.State = DeliveryPending
	if d.Payload == nil {
		d.Payload = []byte{}
	}
}

// WebhookAttempt is the outcome of one delivery attempt. It also says what
// happens next: Delivered, another attempt at NextAttemptAt, or neither,
// which fails the delivery.
type WebhookAttempt struct {
	DeliveryID string
	Attempt    int // 1 for the first; the Attempts the claim returned
	At         time.Time
	Duration   time.Duration
	Status     int    // 0 when no answer came
	Error      string // "" on success
	Response   string // the start of the answer's body
	Delivered  bool
	// NextAttemptAt schedules a retry; nil with Delivered false gives up.
	NextAttemptAt *time.Time
}

// Result is what the attempt leaves the delivery as: delivered at At and
// due no more, pending until NextAttemptAt, or failed. Every store records
// it so.
func (a *WebhookAttempt) Result() (state string, next, deliveredAt *time.Time) {
	switch {
	case a.Delivered:
		return DeliveryDelivered, nil, &a.At
	case a.NextAttemptAt != nil:
		return DeliveryPending, a.NextAttemptAt, nil
	}
	return DeliveryFailed, nil, nil
}

// WebhookDeliveryFilter selects deliveries for the log; empty fields match
// everything.
type WebhookDeliveryFilter struct {
	OrganizationID string
	WebhookID      string
	State          string
	Limit          int // 0: a store default of 100
}

// TokenNotice records that a once-per-token event (token.expiring,
// token.expired, an audit entry, an email) went out, so it never goes out
// twice.
type TokenNotice struct {
	TokenID   string
	Event     string
	CreatedAt time.Time
}

// WebhookStore keeps endpoints, the delivery queue and log, and the token
// notices already sent.
type WebhookStore interface {
	// CreateWebhook stores an endpoint, filling in an empty ID and a zero
	// CreatedAt; ENOTFOUND when the organization does not exist. When the
	// organization already has maxPerOrganization endpoints (0: no limit)
	// it stores nothing and returns TooManyWebhooksError; the count and the
	// insert are one atomic step.
	CreateWebhook(ctx context.Context, w *Webhook, maxPerOrganization int) error
	// FindWebhook returns ENOTFOUND when unknown.
	FindWebhook(ctx context.Context, id string) (*Webhook, error)
	// ListWebhooks returns an organization's endpoints ("" for every
	// organization's), oldest first.
	ListWebhooks(ctx context.Context, organizationID string) ([]*Webhook, error)
	// UpdateWebhook replaces URL, events and disabled; ENOTFOUND when unknown.
	UpdateWebhook(ctx context.Context, w *Webhook) error
	// DeleteWebhook removes the endpoint with its deliveries; ENOTFOUND
	// when unknown.
	DeleteWebhook(ctx context.Context, id string) error

	// EnqueueWebhookDeliveries stores pending deliveries, all or none,
	// filling in zero CreatedAt and nil NextAttemptAt (both: now).
	// ENOTFOUND when an endpoint does not exist.
	EnqueueWebhookDeliveries(ctx context.Context, deliveries []*WebhookDelivery) error
	// EnqueueTokenNotice records the notice and stores the deliveries in
	// one atomic step. When the notice was already recorded it stores
	// nothing and returns ECONFLICT, so of several instances noticing the
	// same expiry exactly one sends it.
	EnqueueTokenNotice(ctx context.Context, notice *TokenNotice, deliveries []*WebhookDelivery) error
	// ListTokensForNotice returns the tokens q selects, in (q.Field, ID)
	// order: those with q.Field in (q.From, q.To] and no notice for
	// q.Event, after the cursor, at most q.Limit.
	ListTokensForNotice(ctx context.Context, q TokenNoticeQuery) ([]*Token, error)
	// ClaimWebhookDeliveries takes up to limit pending deliveries due at
	// now whose endpoint is enabled, earliest due first. Each one's
	// Attempts goes up by one and its NextAttemptAt moves to now+lease,
	// atomically, so no other claimer gets it until the lease runs out (a
	// claimer that died is then replaced). The deliveries are returned as
	// updated, oldest first.
	ClaimWebhookDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*WebhookDelivery, error)
	// RecordWebhookAttempt stores the attempt and updates its delivery,
	// if the delivery is still pending with a.Attempt attempts, i.e. still
	// held by the claim that made the attempt; ECONFLICT otherwise, and
	// nothing is stored. ENOTFOUND when the delivery is unknown.
	RecordWebhookAttempt(ctx context.Context, a *WebhookAttempt) error
	// RedeliverWebhook makes a delivered or failed delivery pending again,
	// due at at; ENOTFOUND when unknown, ECONFLICT when it is pending.
	RedeliverWebhook(ctx context.Context, id string, at time.Time) error
	// FindWebhookDelivery returns ENOTFOUND when unknown.
	FindWebhookDelivery(ctx context.Context, id string) (*WebhookDelivery, error)
	// ListWebhookDeliveries returns matching deliveries, newest first.
	ListWebhookDeliveries(ctx context.Context, filter WebhookDeliveryFilter) ([]*WebhookDelivery, error)
	// ListWebhookAttempts returns a delivery's attempts, oldest first.
	ListWebhookAttempts(ctx context.Context, deliveryID string) ([]*WebhookAttempt, error)
	// PurgeWebhooks deletes delivered and failed deliveries, and token
	// notices, created before before.
	PurgeWebhooks(ctx context.Context, before time.Time) error
}
