// Package webhook sends an organization's events to its webhook endpoints,
// signed as Standard Webhooks (webhook-id, webhook-timestamp,
// webhook-signature: HMAC-SHA256), and gives receivers Verify to check
// them.
//
// Emit stores one delivery per subscribed endpoint before it returns, so an
// event survives the instance being killed. Workers on every instance claim
// due deliveries from the store (a claim is exclusive and expires, so a
// dead worker's deliveries are taken over), POST them, and record each
// attempt in the delivery log; failures are retried with backoff and
// jitter until the attempts run out. An expiry scanner emits
// token.expiring and token.expired once per token.
//
// The package never sends or logs a token secret (token events describe a
// stored token, which has none), never logs a signing secret, and logs an
// endpoint by id and host only, since URLs often carry a secret of the
// receiver's. It refuses to connect to private and loopback addresses
// unless told otherwise.
package webhook

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/workloop"
)

// Store is what the dispatcher needs from keygate's store; sqlite.Store
// provides it.
type Store interface {
	keygate.WebhookStore
	FindOrganizationByID(ctx context.Context, id string) (*keygate.Organization, error)
}

// DefaultRetries are the delays before the second, third, … attempt: the
// eighth and last attempt comes about 31 hours after the first.
var DefaultRetries = []time.Duration{
	5 * time.Second,
	30 * time.Second,
	2 * time.Minute,
	10 * time.Minute,
	time.Hour,
	6 * time.Hour,
	24 * time.Hour,
}

// Defaults for Options.
const (
	DefaultTimeout         = 10 * time.Second
	DefaultJitter          = 0.2
	DefaultPollInterval    = time.Second
	DefaultScanInterval    = time.Minute
	DefaultRetention       = 30 * 24 * time.Hour
	DefaultConcurrency     = 4
	DefaultExpiredLookback = 7 * 24 * time.Hour
	// MaxResponseExcerpt is how much of an answer's body the delivery log
	// keeps.
	MaxResponseExcerpt = 1024
)

// Options configure a Dispatcher; the zero value of each field means its
// default.
type Options struct {
	// Client sends deliveries. The default refuses non-public addresses
	// (see AllowPrivateAddresses), uses no proxy and follows no redirect.
	// A Client given here is used as it is.
	Client *http.Client
	// AllowPrivateAddresses lets endpoints be on loopback, private and
	// link-local addresses: for development, tests, and endpoints inside
	// the operator's own network.
	AllowPrivateAddresses bool
	// Timeout bounds one attempt, from connecting to reading the answer.
	Timeout time.Duration
	// Retries are the delays between attempts (DefaultRetries); a delivery
	// gets len(Retries)+1 attempts.
	Retries []time.Duration
	// Jitter spreads each delay by up to this fraction either way, so
	// endpoints that failed together are not retried together.
	Jitter float64
	// PollInterval is how often an idle instance looks for deliveries
	// queued elsewhere or due for a retry: one claim per interval,
	// whatever Concurrency is. Emit wakes this instance's workers at once.
	PollInterval time.Duration
	// ScanInterval is how often tokens are checked for expiry.
	ScanInterval time.Duration
	// ExpiredLookback is how long after a token expired its token.expired
	// may still go out, e.g. when keygate was down at the time.
	ExpiredLookback time.Duration
	// Retention is how long finished deliveries stay in the log.
	Retention time.Duration
	// Concurrency is how many deliveries this instance sends at once.
	Concurrency int
	// MaxEndpointsPerOrganization caps an organization's endpoints
	// (keygate.DefaultMaxWebhooksPerOrganization when 0), since every
	// event fans out to each of them with retries.
	MaxEndpointsPerOrganization int
	Logger                      *slog.Logger
	// Now and Random replace the clock and the jitter's randomness ([0,1)).
	Now    func() time.Time
	Random func() float64
	// OnAttempt, when set, is called after every attempt, e.g. to count
	// outcomes in metrics.
	OnAttempt func(event string, a *keygate.WebhookAttempt)
}

// Dispatcher emits events and delivers them.
type Dispatcher struct {
	store        Store
	client       *http.Client
	resolver     *net.Resolver
	allowPrivate bool
	timeout      time.Duration
	lease        time.Duration
	retries      []time.Duration
	jitter       float64
	scan         time.Duration
	lookback     time.Duration
	retention    time.Duration
	concurrency  int
	maxEndpoints int
	logger       *slog.Logger
	now          func() time.Time
	random       func() float64
	onAttempt    func(string, *keygate.WebhookAttempt)
	workers      *workloop.Loop[*keygate.WebhookDelivery]
}

// MaxEndpoints is how many endpoints one organization may have.
func (d *Dispatcher) MaxEndpoints() int { return d.maxEndpoints }

// New returns a Dispatcher on store. Run starts its workers.
func New(store Store, opts Options) *Dispatcher {
	d := &Dispatcher{
		store:        store,
		client:       opts.Client,
		resolver:     net.DefaultResolver,
		allowPrivate: opts.AllowPrivateAddresses,
		timeout:      or(opts.Timeout, DefaultTimeout),
		retries:      opts.Retries,
		jitter:       opts.Jitter,
		scan:         or(opts.ScanInterval, DefaultScanInterval),
		lookback:     or(opts.ExpiredLookback, DefaultExpiredLookback),
		retention:    or(opts.Retention, DefaultRetention),
		concurrency:  or(opts.Concurrency, DefaultConcurrency),
		maxEndpoints: or(opts.MaxEndpointsPerOrganization, keygate.DefaultMaxWebhooksPerOrganization),
		logger:       opts.Logger,
		now:          opts.Now,
		random:       opts.Random,
		onAttempt:    opts.OnAttempt,
	}
	if d.retries == nil {
		d.retries = DefaultRetries
	}
	if d.jitter <= 0 {
		d.jitter = DefaultJitter
	}
	if d.logger == nil {
		d.logger = slog.Default()
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.random == nil {
		d.random = rand.Float64
	}
	if d.client == nil {
		d.client = newClient(d.allowPrivate, d.timeout)
	}
	// A claim must outlast the attempt and its recording; a worker that
	// dies loses its claim when the lease ends.
	d.lease = d.timeout + time.Minute
	// Notices are remembered (and so sent once) only while their record
	// is kept: longer than any token stays a candidate for one.
	d.retention = max(d.retention, keygate.TokenExpiringWindow+d.lookback+24*time.Hour)
	d.workers = workloop.New(workloop.Config[*keygate.WebhookDelivery]{
		Name: "webhook deliveries", Claim: d.claim, Handle: d.attempt,
		Workers: d.concurrency, PollInterval: or(opts.PollInterval, DefaultPollInterval), Logger: d.logger,
	})
	return d
}

func or[T comparable](v, fallback T) T {
	var zero T
	if v == zero {
		return fallback
	}
	return v
}

// MaxAttempts is how many attempts a delivery gets before it fails.
func (d *Dispatcher) MaxAttempts() int { return len(d.retries) + 1 }

// Emit stores a delivery of event, with data as its "data", for every
// enabled endpoint of the organization that subscribes to it, and wakes the
// workers. When Emit returns nil the event is durable: it will be delivered
// even if this instance stops. An organization without such endpoints
// costs one read.
func (d *Dispatcher) Emit(ctx context.Context, organizationID, event string, data any) error {
	if !keygate.IsDeliverableEvent(event) {
		return keygate.Errorf(keygate.EINVALID, "Unknown webhook event %q.", event)
	}
	var err error
	// A second try covers an endpoint deleted between listing and storing.
	for range 2 {
		var hooks []*keygate.Webhook
		if hooks, err = d.store.ListWebhooks(ctx, organizationID); err != nil {
			return err
		}
		var deliveries []*keygate.WebhookDelivery
		if deliveries, err = d.deliveries(event, data, subscribed(hooks, event)); err != nil {
			return err
		}
		if len(deliveries) == 0 {
			return nil
		}
		if err = d.store.EnqueueWebhookDeliveries(ctx, deliveries); keygate.ErrorCode(err) != keygate.ENOTFOUND {
			break
		}
	}
	if err == nil {
		d.workers.Wake()
	}
	return err
}

// EmitToken emits a token event (token.created, token.deleted, …) with
// the token's TokenData. org may be nil; it is then read from the store.
// For token.deleted, a token without RevokedAt is reported deleted now.
func (d *Dispatcher) EmitToken(ctx context.Context, event string, tok *keygate.Token, org *keygate.Organization) error {
	if org == nil {
		var err error
		if org, err = d.store.FindOrganizationByID(ctx, tok.OrganizationID); err != nil {
			return err
		}
	}
	if event != keygate.EventTokenCreated && event != keygate.EventTokenDeleted {
		data := NewTokenData(tok, org)
		return d.Emit(ctx, org.ID, event, data)
	}
	if event == keygate.EventTokenDeleted && tok.RevokedAt == nil {
		tok.RevokedAt = new(d.now())
	}
	hooks, err := d.store.ListWebhooks(ctx, org.ID)
	if err != nil {
		return err
	}
	// Recorded as a token notice, so the scan that catches events an
	// instance stopped before sending never sends one twice.
	err = d.sendNotice(ctx, tok, org, event, subscribed(hooks, event))
	if keygate.ErrorCode(err) == keygate.ECONFLICT {
		return nil
	}
	return err
}

// EmitAudit sends an audit log entry of an organization to its endpoints
// that subscribe to keygate.EventAudit, as "audit.<action>". Site-wide
// entries (admin keys, logins) belong to no organization and are not sent.
// A failure is logged: the entry itself is stored.
func (d *Dispatcher) EmitAudit(ctx context.Context, e *keygate.AuditEntry) {
	if e.OrganizationID == "" {
		return
	}
	if err := d.Emit(ctx, e.OrganizationID, keygate.AuditEventPrefix+e.Action, NewAuditData(e)); err != nil &&
		keygate.ErrorCode(err) != keygate.ENOTFOUND {
		d.logger.ErrorContext(ctx, "webhook: audit event could not be stored; it will not be sent",
			"action", e.Action, "entry_id", e.ID, "error", err)
	}
}

// SendTest stores a webhook.test delivery for one endpoint, whatever it
// subscribes to and even if it is disabled (it is then sent once the
// endpoint is enabled), and returns it so its log entry can be shown.
func (d *Dispatcher) SendTest(ctx context.Context, webhookID string) (*keygate.WebhookDelivery, error) {
	hook, err := d.store.FindWebhook(ctx, webhookID)
	if err != nil {
		return nil, err
	}
	org, err := d.store.FindOrganizationByID(ctx, hook.OrganizationID)
	if err != nil {
		return nil, err
	}
	data := TestData{
		WebhookID:    hook.ID,
		Message:      "A test event from keygate: if its signature verifies, the endpoint is ready.",
		Organization: OrganizationData{ID: org.ID, Slug: org.Slug},
	}
	deliveries, err := d.deliveries(keygate.EventWebhookTest, data, []*keygate.Webhook{hook})
	if err != nil {
		return nil, err
	}
	if err := d.store.EnqueueWebhookDeliveries(ctx, deliveries); err != nil {
		return nil, err
	}
	d.workers.Wake()
	return deliveries[0], nil
}

// deliveries builds one pending delivery of the event per endpoint, all
// with the same body.
func (d *Dispatcher) deliveries(event string, data any, hooks []*keygate.Webhook) ([]*keygate.WebhookDelivery, error) {
	if len(hooks) == 0 {
		return nil, nil
	}
	now := d.now().UTC().Truncate(time.Millisecond)
	body, err := encodeMessage(event, now, data)
	if err != nil {
		return nil, err
	}
	out := make([]*keygate.WebhookDelivery, len(hooks))
	for i, h := range hooks {
		out[i] = &keygate.WebhookDelivery{
			ID:             keygate.NewID("msg"),
			WebhookID:      h.ID,
			OrganizationID: h.OrganizationID,
			Event:          event,
			Payload:        body,
			CreatedAt:      now,
		}
	}
	return out, nil
}

// subscribed returns the enabled endpoints that receive event.
func subscribed(hooks []*keygate.Webhook, event string) []*keygate.Webhook {
	var out []*keygate.Webhook
	for _, h := range hooks {
		if !h.Disabled && h.Subscribes(event) {
			out = append(out, h)
		}
	}
	return out
}

// Run delivers due deliveries with Concurrency workers, scans for token
// expiries and purges the log, until ctx ends or Shutdown is called.
// Attempts in flight then finish and are recorded before Run returns:
// each within Timeout, and within its lease (Timeout + 1 min) when the
// store stops answering, unless Shutdown's grace ends first.
func (d *Dispatcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { d.maintain(ctx) })
	d.workers.Run(ctx)
	wg.Wait()
	return nil
}

// Shutdown stops the workers claiming deliveries and gives the attempts in
// flight until ctx ends to finish; those still running then are cancelled
// and their deliveries sent again once their lease ends. It returns ctx's
// error when it cut attempts short. The scan and purge stop with Run's ctx.
func (d *Dispatcher) Shutdown(ctx context.Context) error {
	return d.workers.Shutdown(ctx)
}

// claim claims up to limit due deliveries under a lease.
func (d *Dispatcher) claim(ctx context.Context, limit int) ([]*keygate.WebhookDelivery, error) {
	return d.store.ClaimWebhookDeliveries(ctx, d.now(), d.lease, limit)
}

// maintain runs the expiry scan every ScanInterval and the purge every
// hour.
func (d *Dispatcher) maintain(ctx context.Context) {
	scan := time.NewTicker(d.scan)
	defer scan.Stop()
	purge := time.NewTicker(time.Hour)
	defer purge.Stop()
	for {
		if err := d.ScanTokens(ctx); err != nil && ctx.Err() == nil {
			d.logger.Error("webhook: token expiry scan failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-scan.C:
		case <-purge.C:
			if err := d.Purge(ctx); err != nil && ctx.Err() == nil {
				d.logger.Error("webhook: purging the delivery log failed", "error", err)
			}
		}
	}
}

// Purge deletes finished deliveries older than Retention.
func (d *Dispatcher) Purge(ctx context.Context) error {
	return d.store.PurgeWebhooks(ctx, d.now().Add(-d.retention))
}

// DeliverDue claims and sends due deliveries, Concurrency at a time, until
// none is due, and returns how many attempts it made. Run does the same
// continuously; DeliverDue is for a single pass (the CLI, tests).
func (d *Dispatcher) DeliverDue(ctx context.Context) (int, error) {
	total := 0
	for {
		claimed, err := d.claim(ctx, d.concurrency)
		if err != nil || len(claimed) == 0 {
			return total, err
		}
		var wg sync.WaitGroup
		for _, del := range claimed {
			wg.Go(func() { d.attempt(ctx, del) })
		}
		wg.Wait()
		total += len(claimed)
	}
}
