package keygate

import (
	"context"
	"strings"
	"time"
)

// Emails tell people about their tokens and organizations: a token about
// to expire, a token created in their name, a member added. Package email
// writes and sends them; the types below are what the stores keep. An
// email describes a token by name, hint and scopes, never by its secret,
// and nothing stored here is a credential.

// Kinds of email. An organization's owners can turn each off.
const (
	// EmailTokenExpiring goes to a token's creator and the organization's
	// owners 7 days and again 1 day before the token expires.
	EmailTokenExpiring = "token.expiring"
	// EmailTokenCreated is a security notice to a token's creator.
	EmailTokenCreated = "token.created"
	// EmailMemberAdded tells a user they were added to an organization.
	EmailMemberAdded = "member.added"
)

// EmailKinds lists the kinds an organization can turn off, in the order
// forms show them.
var EmailKinds = []string{EmailTokenExpiring, EmailTokenCreated, EmailMemberAdded}

// IsEmailKind reports whether kind is one of EmailKinds.
func IsEmailKind(kind string) bool { return HasAll(EmailKinds, []string{kind}) }

// States of an email in the outbox.
const (
	EmailPending = "pending" // waiting for its next attempt
	EmailSent    = "sent"    // the mail server accepted it
	EmailFailed  = "failed"  // attempts ran out, or every recipient was refused
)

// Email is one message in the outbox, from being queued until it is sent
// or given up (and then purged). Text and HTML are the two alternatives of
// one multipart/alternative body.
type Email struct {
	ID             string // "eml_…"
	OrganizationID string // "" when it concerns no organization
	Kind           string // one of EmailKinds, or another word for site-wide mail
	To             []string
	Subject        string
	Text           string
	HTML           string
	State          string // one of the Email states
	Attempts       int    // attempts started, including one in flight
	NextAttemptAt  *time.Time
	LastAttemptAt  *time.Time
	// LastError is why the last attempt failed, as the mail server or the
	// network put it; it never holds the SMTP password.
	LastError string
	SentAt    *time.Time
	CreatedAt time.Time
	// InvitationID, on an invitation email, names the invitation whose
	// link the sender puts in the email when it sends it: the link's
	// secret is never stored, so Subject is stored and the bodies are
	// rendered then (Text and HTML are empty).
	InvitationID string
}

// Queue gives the email what it has on entering the outbox: an id unless
// it has one, createdAt, pending, and due at createdAt unless it is already
// scheduled. Stores call it on enqueue with createdAt at their own
// precision, so every store queues an email alike.
func (e *Email) Queue(createdAt time.Time) {
	if e.ID == "" {
		e.ID = NewID("eml")
	}
	e.CreatedAt = createdAt
	if e.NextAttemptAt == nil {
		due := createdAt
		e.NextAttemptAt = &due
	}
	e.State = EmailPending
}

// EmailAttempt is the outcome of one attempt to send an email: Sent, or
// another attempt at NextAttemptAt, or neither, which fails the email.
type EmailAttempt struct {
	EmailID       string
	Attempt       int // the Attempts the claim returned
	At            time.Time
	Sent          bool
	Error         string
	NextAttemptAt *time.Time
}

// Result is what the attempt leaves the email as: sent at At and due no
// more, pending until NextAttemptAt, or failed. Every store records it so.
func (a *EmailAttempt) Result() (state string, next, sentAt *time.Time) {
	switch {
	case a.Sent:
		return EmailSent, nil, &a.At
	case a.NextAttemptAt != nil:
		return EmailPending, a.NextAttemptAt, nil
	}
	return EmailFailed, nil, nil
}

// EmailFilter selects outbox emails; empty fields match everything.
type EmailFilter struct {
	OrganizationID string
	State          string
	Limit          int // 0: a store default of 100
}

// EmailSettings are an organization's choices of which emails keygate
// sends about it. Every kind is on until an owner turns it off.
type EmailSettings struct {
	OrganizationID string
	Disabled       []string // kinds turned off
	UpdatedAt      time.Time
}

// Enabled reports whether emails of kind go out for the organization.
func (s *EmailSettings) Enabled(kind string) bool {
	return s == nil || !HasAll(s.Disabled, []string{kind})
}

// CleanEmailKinds returns kinds without blanks and duplicates, or EINVALID
// when one is not in EmailKinds.
func CleanEmailKinds(kinds []string) ([]string, error) {
	out := dedupe(kinds)
	for _, k := range out {
		if !IsEmailKind(k) {
			return nil, Errorf(EINVALID, "Unknown email kind %q: choose from %s.", k, strings.Join(EmailKinds, ", "))
		}
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// TokenNoticeQuery selects the tokens a once-per-token notice is due for:
// those whose Field time lies in (From, To] and that have no TokenNotice
// for Event yet. Scans page through them by (Field, ID) with After, so
// memory stays bounded by Limit and a scan that finds nothing new reads
// nothing but an index range.
type TokenNoticeQuery struct {
	Event string // tokens with a notice for Event are left out
	Field string // TokenCreatedAt, TokenExpiresAt or TokenRevokedAt
	From  time.Time
	To    time.Time
	// IncludeRevoked keeps revoked tokens; with Field TokenRevokedAt they
	// are the only ones there are.
	IncludeRevoked bool
	// OrganizationIDs, when not empty, limits the query to these
	// organizations.
	OrganizationIDs []string
	// AfterTime and AfterID continue from the last token of the previous
	// page (its Field time and ID); zero for the first page.
	AfterTime time.Time
	AfterID   string
	Limit     int // 0: a store default of 500
}

// Fields a TokenNoticeQuery can select on.
const (
	TokenCreatedAt = "created_at"
	TokenExpiresAt = "expires_at"
	TokenRevokedAt = "revoked_at"
)

// NoticeTime returns the token's time that field names; nil when unset.
func (t *Token) NoticeTime(field string) *time.Time {
	switch field {
	case TokenCreatedAt:
		return &t.CreatedAt
	case TokenExpiresAt:
		return t.ExpiresAt
	case TokenRevokedAt:
		return t.RevokedAt
	}
	return nil
}

// EmailStore keeps the outbox and each organization's email settings.
type EmailStore interface {
	// EnqueueEmails stores pending emails, all or none, filling in an
	// empty ID, a zero CreatedAt and a nil NextAttemptAt (both: now).
	// With a notice it records the notice in the same atomic step; when
	// the notice was already recorded it stores nothing and returns
	// ECONFLICT, so of several instances noticing the same thing exactly
	// one sends its emails.
	EnqueueEmails(ctx context.Context, notice *TokenNotice, emails []*Email) error
	// ClaimEmails takes up to limit pending emails due at now, earliest
	// due first; each one's Attempts goes up by one and its NextAttemptAt
	// moves to now+lease, atomically, so no other claimer gets it until
	// the lease runs out.
	ClaimEmails(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*Email, error)
	// RecordEmailAttempt updates the email with the attempt's outcome if
	// it is still pending with a.Attempt attempts (still held by the claim
	// that made the attempt); ECONFLICT otherwise, ENOTFOUND when unknown.
	RecordEmailAttempt(ctx context.Context, a *EmailAttempt) error
	// ListEmails returns matching emails, newest first.
	ListEmails(ctx context.Context, filter EmailFilter) ([]*Email, error)
	// PurgeEmails deletes sent and failed emails created before before and
	// returns how many.
	PurgeEmails(ctx context.Context, before time.Time) (int64, error)
	// FindEmailSettings returns the organization's settings; every kind
	// enabled when none were stored. ENOTFOUND when the organization does
	// not exist.
	FindEmailSettings(ctx context.Context, organizationID string) (*EmailSettings, error)
	// UpdateEmailSettings replaces the organization's settings;
	// ENOTFOUND when it does not exist.
	UpdateEmailSettings(ctx context.Context, s *EmailSettings) error
}

// TokenNoticeLister lists the tokens a notice is due for; every store is
// one.
type TokenNoticeLister interface {
	ListTokensForNotice(ctx context.Context, q TokenNoticeQuery) ([]*Token, error)
}

// EachTokenForNotice calls fn for every token q selects, a page of q.Limit
// at a time, and stops at fn's first error. fn is expected to record the
// notice (or find it recorded by another instance), so a later scan no
// longer sees the token: this is how every once-per-token scan (webhook
// events, audit entries, emails) stays incremental on every instance.
func EachTokenForNotice(ctx context.Context, store TokenNoticeLister, q TokenNoticeQuery, fn func(*Token) error) error {
	if q.Limit <= 0 {
		q.Limit = 500
	}
	for {
		page, err := store.ListTokensForNotice(ctx, q)
		if err != nil {
			return err
		}
		for _, tok := range page {
			if err := fn(tok); err != nil {
				return err
			}
		}
		if len(page) < q.Limit {
			return nil
		}
		last := page[len(page)-1]
		q.AfterTime, q.AfterID = *last.NoticeTime(q.Field), last.ID
	}
}
