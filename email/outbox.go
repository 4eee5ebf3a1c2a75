// Package email sends keygate's emails: a token about to expire (7 days
// and 1 day before), a token created (a security notice to its creator),
// a member added. Each goes through a durable outbox in the store, so the
// request that caused it never waits for a mail server and nothing is lost
// when an instance stops; workers on every instance claim due emails (a
// claim is exclusive and expires), submit them over SMTP and retry
// failures with backoff and jitter.
//
// The package never puts a token secret in an email (it describes tokens
// by name, hint and scopes) and never logs or returns the SMTP password:
// the server is named by its redacted URL everywhere.
package email

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/workloop"
)

// Store is what the outbox needs from keygate's store.
type Store interface {
	keygate.EmailStore
	FindOrganizationByID(ctx context.Context, id string) (*keygate.Organization, error)
	FindTokenByID(ctx context.Context, id string) (*keygate.Token, error)
	FindUserByID(ctx context.Context, id string) (*keygate.User, error)
	ListMemberships(ctx context.Context, filter keygate.MembershipFilter) ([]*keygate.Membership, error)
	ListTokensForNotice(ctx context.Context, q keygate.TokenNoticeQuery) ([]*keygate.Token, error)
	ListInvitations(ctx context.Context, filter keygate.InvitationFilter) ([]*keygate.Invitation, error)
}

// DefaultRetries are the delays before the second, third, … attempt: the
// seventh and last comes about 17 hours after the first.
var DefaultRetries = []time.Duration{
	30 * time.Second,
	2 * time.Minute,
	10 * time.Minute,
	time.Hour,
	4 * time.Hour,
	12 * time.Hour,
}

// Defaults for Options.
const (
	DefaultPollInterval = time.Second
	DefaultScanInterval = time.Minute
	DefaultConcurrency  = 2
	DefaultRetention    = 30 * 24 * time.Hour
	DefaultJitter       = 0.2
)

// Options configure an Outbox; zero fields take their defaults.
type Options struct {
	// Server is where emails are submitted; nil turns email off: Send
	// stores nothing and Run only waits.
	Server *Server
	// From is the sender, "keygate@example.com" or "keygate <…>".
	From string
	// PublicURL is the dashboard's address for links, without a trailing
	// slash; "" leaves links out (and invitation emails unsent).
	PublicURL string
	// LinkKey is email.link_key: invitation links are derived from it
	// (keygate.InvitationSecret) when an invitation email is sent. Every
	// instance must have the same. Never log it.
	LinkKey []byte
	Retries []time.Duration
	Jitter  float64
	// PollInterval is how often an idle instance looks for emails queued
	// elsewhere or due for a retry: one claim per interval, whatever
	// Concurrency is. Send wakes this instance's workers at once.
	PollInterval time.Duration
	// ScanInterval is how often tokens are checked for expiry emails.
	ScanInterval time.Duration
	Concurrency  int
	// Retention is how long sent and failed emails stay in the outbox.
	Retention time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
	Random    func() float64
	// OnAttempt, when set, hears each attempt's outcome: "sent", "retry"
	// or "failed" (metrics).
	OnAttempt func(kind, outcome string)
}

// Outbox queues emails in the store and sends them.
type Outbox struct {
	store     Store
	server    *Server
	from      *mail.Address
	publicURL string
	linkKey   []byte
	retries   []time.Duration
	jitter    float64
	scan      time.Duration
	retention time.Duration
	lease     time.Duration
	logger    *slog.Logger
	now       func() time.Time
	random    func() float64
	onAttempt func(kind, outcome string)
	workers   *workloop.Loop[*keygate.Email]
}

// New returns an Outbox on store; Run starts its workers. It fails only
// on a From that is not an email address while a Server is set.
func New(store Store, opts Options) (*Outbox, error) {
	o := &Outbox{
		store: store, server: opts.Server, publicURL: strings.TrimRight(opts.PublicURL, "/"), linkKey: opts.LinkKey,
		retries: opts.Retries, jitter: opts.Jitter, scan: opts.ScanInterval,
		retention: opts.Retention, logger: opts.Logger,
		now: opts.Now, random: opts.Random, onAttempt: opts.OnAttempt,
	}
	if o.server != nil {
		from, err := CheckAddress(opts.From)
		if err != nil {
			return nil, err
		}
		o.from = from
	}
	if o.retries == nil {
		o.retries = DefaultRetries
	}
	if o.jitter <= 0 {
		o.jitter = DefaultJitter
	}
	if o.scan <= 0 {
		o.scan = DefaultScanInterval
	}
	if o.retention <= 0 {
		o.retention = DefaultRetention
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.random == nil {
		o.random = rand.Float64
	}
	timeout := 30 * time.Second
	if o.server != nil && o.server.Timeout > 0 {
		timeout = o.server.Timeout
	}
	o.lease = timeout + time.Minute
	poll := opts.PollInterval
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	workers := opts.Concurrency
	if workers <= 0 {
		workers = DefaultConcurrency
	}
	o.workers = workloop.New(workloop.Config[*keygate.Email]{
		Name: "emails", Claim: o.claim, Handle: o.attempt, Workers: workers, PollInterval: poll, Logger: o.logger,
	})
	return o, nil
}

// Enabled reports whether an SMTP server is configured. Without one Send
// and the notices store nothing.
func (o *Outbox) Enabled() bool { return o != nil && o.server != nil }

// Message is an email to queue. HTML may be empty: the text is then shown
// as preformatted HTML.
type Message struct {
	OrganizationID string // "" when it concerns no organization
	Kind           string // a short word for logs and metrics, e.g. "invitation"
	To             []string
	Subject        string
	Text           string
	HTML           string
}

// Send queues m for sending and returns once it is stored: it is sent
// even if this instance stops. It never waits for the mail server. With
// email off it does nothing and returns nil. The text must not hold a
// secret other than what its recipient is meant to get (a one-time link).
func (o *Outbox) Send(ctx context.Context, m Message) error {
	if !o.Enabled() {
		return nil
	}
	if len(m.To) == 0 {
		return keygate.Errorf(keygate.EINVALID, "An email needs a recipient.")
	}
	for _, to := range m.To {
		if _, err := mail.ParseAddress(to); err != nil {
			return keygate.Errorf(keygate.EINVALID, "%q is not an email address.", to)
		}
	}
	return o.enqueue(ctx, nil, []*keygate.Email{{
		OrganizationID: m.OrganizationID, Kind: m.Kind, To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML,
	}})
}

func (o *Outbox) enqueue(ctx context.Context, notice *keygate.TokenNotice, emails []*keygate.Email) error {
	now := o.now().UTC().Truncate(time.Millisecond)
	for _, e := range emails {
		e.CreatedAt = now
	}
	if notice != nil {
		notice.CreatedAt = now
	}
	if err := o.store.EnqueueEmails(ctx, notice, emails); err != nil {
		return err
	}
	if len(emails) > 0 {
		o.workers.Wake()
	}
	return nil
}

// Run sends due emails with Concurrency workers, scans tokens for expiry
// emails and purges old ones, until ctx ends or Shutdown is called; an
// attempt in flight then finishes and is recorded (within its lease,
// unless Shutdown's grace ends first). With email off it returns at once.
func (o *Outbox) Run(ctx context.Context) error {
	if !o.Enabled() {
		return nil
	}
	var wg sync.WaitGroup
	wg.Go(func() { o.maintain(ctx) })
	o.workers.Run(ctx)
	wg.Wait()
	return nil
}

// Shutdown stops the workers claiming emails and gives the attempts in
// flight until ctx ends to finish; those still running then are cancelled
// and their emails sent again once their lease ends. It returns ctx's
// error when it cut attempts short. The scan and purge stop with Run's ctx.
func (o *Outbox) Shutdown(ctx context.Context) error {
	if !o.Enabled() {
		return nil
	}
	return o.workers.Shutdown(ctx)
}

// claim claims up to limit due emails under a lease.
func (o *Outbox) claim(ctx context.Context, limit int) ([]*keygate.Email, error) {
	return o.store.ClaimEmails(ctx, o.now(), o.lease, limit)
}

func (o *Outbox) maintain(ctx context.Context) {
	scan := time.NewTicker(o.scan)
	defer scan.Stop()
	purge := time.NewTicker(time.Hour)
	defer purge.Stop()
	for {
		if err := o.ScanExpiring(ctx); err != nil && ctx.Err() == nil {
			o.logger.Error("email: token expiry scan failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-scan.C:
		case <-purge.C:
			if n, err := o.store.PurgeEmails(ctx, o.now().Add(-o.retention)); err != nil && ctx.Err() == nil {
				o.logger.Error("email: purging the outbox failed", "error", err)
			} else if n > 0 {
				o.logger.Info("email: purged sent and failed emails", "emails", n)
			}
		}
	}
}

// SendDue claims and sends due emails one at a time until none is due,
// and returns how many attempts it made: a single pass of what Run does,
// for tests and the CLI.
func (o *Outbox) SendDue(ctx context.Context) (int, error) {
	if !o.Enabled() {
		return 0, nil
	}
	n := 0
	for {
		claimed, err := o.claim(ctx, 1)
		if err != nil || len(claimed) == 0 {
			return n, err
		}
		o.attempt(ctx, claimed[0])
		n++
	}
}

// attempt submits a claimed email and records the outcome: sent, a retry,
// or failed. Run's workers call it with a context that outlives claiming,
// so an email in flight at shutdown is neither lost nor sent twice, unless
// the shutdown's grace ends first. It ends with the claim's lease in any
// case, after which another worker may hold the email: a database that
// stops answering holds this worker no longer.
func (o *Outbox) attempt(ctx context.Context, e *keygate.Email) {
	ctx, cancel := context.WithTimeout(ctx, o.lease)
	defer cancel()
	at := o.now()
	a := &keygate.EmailAttempt{EmailID: e.ID, Attempt: e.Attempts, At: at.UTC().Truncate(time.Millisecond)}
	var err error
	if e.InvitationID != "" {
		err = o.renderInvitation(ctx, e, at)
	}
	var msg []byte
	if err == nil {
		msg, err = compose(o.from, e, at)
	}
	if err == nil {
		err = o.server.Send(ctx, o.from.Address, e.To, msg)
	}
	outcome := "sent"
	permanent := false
	if err != nil {
		a.Error = err.Error()
		if e.InvitationID != "" && len(o.linkKey) > 0 {
			// A server's reply may quote the message, link included (some
			// content filters do): the secret must not reach the
			// database or the log through it.
			a.Error = strings.ReplaceAll(a.Error, keygate.InvitationSecret(o.linkKey, e.InvitationID), "…")
		}
		if se, ok := err.(*SendError); ok {
			permanent = se.Permanent
		}
		permanent = permanent || isUnsendable(err)
		outcome = "failed"
		if !permanent && e.Attempts <= len(o.retries) {
			next := a.At.Add(o.retryDelay(e.Attempts))
			a.NextAttemptAt = &next
			outcome = "retry"
		}
	} else {
		a.Sent = true
	}
	log := o.logger.With("email_id", e.ID, "kind", e.Kind, "org_id", e.OrganizationID, "attempt", e.Attempts, "recipients", len(e.To))
	switch rerr := o.store.RecordEmailAttempt(ctx, a); {
	case keygate.ErrorCode(rerr) == keygate.ECONFLICT:
		log.Warn("email: attempt finished after its claim ended; not recorded", "error", a.Error)
		return
	case rerr != nil:
		log.Error("email: recording the attempt failed; the email is tried again when its claim ends", "error", rerr)
		return
	}
	switch outcome {
	case "sent":
		log.Info("email: sent")
	case "retry":
		log.Warn("email: sending failed; will retry", "next_attempt_at", a.NextAttemptAt, "error", a.Error)
	default:
		log.Error("email: sending failed; giving up", "error", a.Error)
	}
	if o.onAttempt != nil {
		o.onAttempt(e.Kind, outcome)
	}
}

// retryDelay is the delay after failed attempt n (1-based), with jitter.
func (o *Outbox) retryDelay(n int) time.Duration {
	base := o.retries[min(n, len(o.retries))-1]
	spread := 1 + o.jitter*(2*o.random()-1)
	return time.Duration(float64(base) * spread).Truncate(time.Millisecond)
}
