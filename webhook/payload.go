package webhook

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/keygate/keygate"
)

// Message is the body of every delivery, in the Standard Webhooks shape:
// the event type, when it happened, and its data.
type Message struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// encodeMessage returns the body for an event. It is built once, at
// emission, and stored: every attempt sends and signs the same bytes.
func encodeMessage(event string, at time.Time, data any) ([]byte, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("webhook: encode %s data: %w", event, err)
	}
	return json.Marshal(Message{Type: event, Timestamp: at.UTC(), Data: raw})
}

// TokenData is the data of every token event. It names the token the way
// the dashboard does (name, hint) and never carries its secret: the stored
// token has none to give.
type TokenData struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Hint        string     `json:"hint"`
	API         string     `json:"api"`
	Environment string     `json:"environment"`
	Scopes      []string   `json:"scopes"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at"` // null: never expires
	DeletedAt   *time.Time `json:"deleted_at,omitempty"`
	// RotatedAt and PreviousSecretExpiresAt are set once the token has
	// been rotated: when, and until when the replaced secret works.
	RotatedAt               *time.Time       `json:"rotated_at,omitempty"`
	PreviousSecretExpiresAt *time.Time       `json:"previous_secret_expires_at,omitempty"`
	Organization            OrganizationData `json:"organization"`
}

// OrganizationData names the organization a token event belongs to.
type OrganizationData struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
}

// NewTokenData describes tok, of org, for a token event.
func NewTokenData(tok *keygate.Token, org *keygate.Organization) TokenData {
	scopes := tok.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return TokenData{
		ID:                      tok.ID,
		Name:                    tok.Name,
		Hint:                    tok.Hint,
		API:                     tok.API,
		Environment:             tok.Environment,
		Scopes:                  scopes,
		CreatedAt:               tok.CreatedAt.UTC(),
		ExpiresAt:               utc(tok.ExpiresAt),
		DeletedAt:               utc(tok.RevokedAt),
		RotatedAt:               utc(tok.RotatedAt),
		PreviousSecretExpiresAt: utc(tok.PreviousHashExpiresAt),
		Organization:            OrganizationData{ID: org.ID, Slug: org.Slug},
	}
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// TestData is the data of a webhook.test event.
type TestData struct {
	WebhookID    string           `json:"webhook_id"`
	Message      string           `json:"message"`
	Organization OrganizationData `json:"organization"`
}

// AuditData is the data of an audit.* event: the entry as the management
// API lists it.
type AuditData struct {
	ID             string          `json:"id"`
	At             time.Time       `json:"at"`
	Action         string          `json:"action"`
	Actor          keygate.Actor   `json:"actor"`
	OrganizationID string          `json:"organization_id"`
	TargetID       string          `json:"target_id"`
	Details        json.RawMessage `json:"details"`
}

// NewAuditData describes an audit entry for an audit.* event. The event
// goes to the organization's own endpoints, so the actor is as its owners
// see it (keygate.Actor.ForOrganization).
func NewAuditData(e *keygate.AuditEntry) AuditData {
	details := e.Details
	if len(details) == 0 {
		details = json.RawMessage(`{}`)
	}
	return AuditData{ID: e.ID, At: e.At.UTC(), Action: e.Action, Actor: e.Actor.ForOrganization(),
		OrganizationID: e.OrganizationID, TargetID: e.TargetID, Details: details}
}
