package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keygate/keygate"
)

// outcome is what one POST came to.
type outcome struct {
	status     int
	err        string // "" on a 2xx answer
	response   string
	retryAfter time.Duration // from the answer's Retry-After, if any
}

// attempt sends a claimed delivery and records the attempt and what
// follows: delivered, a retry, or failure. Run's workers call it with a
// context that outlives claiming, so an attempt in flight at shutdown
// completes and is recorded, neither lost nor repeated, unless the
// shutdown's grace ends first. It ends with the claim's lease in any
// case: past it another worker may hold the delivery, and a database that
// stops answering holds this worker no longer.
func (d *Dispatcher) attempt(ctx context.Context, del *keygate.WebhookDelivery) {
	ctx, cancel := context.WithTimeout(ctx, d.lease)
	defer cancel()
	hook, err := d.store.FindWebhook(ctx, del.WebhookID)
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return // deleted since the claim, deliveries with it
	} else if err != nil {
		d.logger.Error("webhook: reading the endpoint failed", "webhook_id", del.WebhookID, "delivery_id", del.ID, "error", err)
		return // the claim runs out and the delivery is tried again
	}
	at := d.now()
	start := time.Now()
	out := d.post(ctx, hook, del, at)
	a := &keygate.WebhookAttempt{
		DeliveryID: del.ID,
		Attempt:    del.Attempts,
		At:         at.UTC().Truncate(time.Millisecond),
		Duration:   time.Since(start).Truncate(time.Millisecond),
		Status:     out.status,
		Error:      out.err,
		Response:   out.response,
		Delivered:  out.err == "",
	}
	gone := out.status == http.StatusGone
	if !a.Delivered && !gone && del.Attempts < d.MaxAttempts() {
		next := a.At.Add(max(d.retryDelay(del.Attempts), min(out.retryAfter, d.retries[len(d.retries)-1])))
		a.NextAttemptAt = &next
	}
	d.record(ctx, hook, del, a)
	if gone {
		d.disable(ctx, hook)
	}
}

// retryDelay is the delay after failed attempt n (1-based), with jitter.
func (d *Dispatcher) retryDelay(n int) time.Duration {
	base := d.retries[min(n, len(d.retries))-1]
	spread := 1 + d.jitter*(2*d.random()-1)
	return time.Duration(float64(base) * spread).Truncate(time.Millisecond)
}

func (d *Dispatcher) record(ctx context.Context, hook *keygate.Webhook, del *keygate.WebhookDelivery, a *keygate.WebhookAttempt) {
	log := d.logger.With("webhook_id", hook.ID, "delivery_id", del.ID, "event", del.Event,
		"host", host(hook.URL), "attempt", a.Attempt, "status", a.Status)
	switch err := d.store.RecordWebhookAttempt(ctx, a); {
	case keygate.ErrorCode(err) == keygate.ECONFLICT:
		// Its claim ran out and another worker took over: that worker's
		// result is the one kept.
		log.Warn("webhook: attempt finished after its claim ended; not recorded", "error", a.Error)
	case keygate.ErrorCode(err) == keygate.ENOTFOUND:
		log.Info("webhook: endpoint deleted during the attempt; not recorded")
	case err != nil:
		log.Error("webhook: recording the attempt failed; the delivery will be tried again", "error", err)
	case a.Delivered:
		log.Info("webhook: delivered", "duration", a.Duration)
	case a.NextAttemptAt != nil:
		log.Warn("webhook: attempt failed; retrying", "error", a.Error, "next_attempt_at", a.NextAttemptAt)
	default:
		log.Warn("webhook: delivery failed; giving up", "error", a.Error)
	}
	if d.onAttempt != nil {
		d.onAttempt(del.Event, a)
	}
}

// disable turns an endpoint off after it answered 410 Gone, as Standard
// Webhooks asks: the receiver said it wants nothing more.
func (d *Dispatcher) disable(ctx context.Context, hook *keygate.Webhook) {
	hook.Disabled = true
	if err := d.store.UpdateWebhook(ctx, hook); err != nil && keygate.ErrorCode(err) != keygate.ENOTFOUND {
		d.logger.Error("webhook: disabling the endpoint after 410 Gone failed", "webhook_id", hook.ID, "error", err)
		return
	}
	d.logger.Warn("webhook: endpoint answered 410 Gone and is now disabled", "webhook_id", hook.ID, "host", host(hook.URL))
}

// post signs and sends one attempt of del to hook.
func (d *Dispatcher) post(ctx context.Context, hook *keygate.Webhook, del *keygate.WebhookDelivery, at time.Time) outcome {
	signature, err := Sign(hook.Secret, del.ID, at, del.Payload)
	if err != nil {
		return outcome{err: "the endpoint's signing secret is not valid"}
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(del.Payload))
	if err != nil {
		return outcome{err: "the endpoint's URL is not valid"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "keygate-webhooks/1")
	req.Header.Set(HeaderID, del.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	req.Header.Set(HeaderSignature, signature)
	resp, err := d.client.Do(req)
	if err != nil {
		return outcome{err: describe(err, d.timeout)}
	}
	defer resp.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponseExcerpt))
	// Reading a little more lets the connection be reused; an endless
	// answer is cut off here.
	io.CopyN(io.Discard, resp.Body, 64<<10)
	out := outcome{status: resp.StatusCode, response: cleanExcerpt(excerpt)}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		out.err = fmt.Sprintf("HTTP %d", resp.StatusCode)
		out.retryAfter = retryAfter(resp.Header.Get("Retry-After"), at)
	}
	return out
}

// describe turns a transport error into a log line that leaves out the
// URL, which may carry a secret of the receiver's.
func describe(err error, timeout time.Duration) string {
	switch {
	case errors.Is(err, errPrivateAddress):
		return errPrivateAddress.Error()
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return fmt.Sprintf("no answer within %s", timeout)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return err.Error()
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// cleanExcerpt keeps the start of an answer as valid UTF-8 text.
func cleanExcerpt(b []byte) string {
	if !utf8.Valid(b) {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(b)
}

// maxRetryAfter bounds what a receiver's Retry-After is read as; the
// dispatcher caps it at its last delay anyway. Bounding it first keeps a
// huge number of seconds from overflowing into a negative wait.
const maxRetryAfter = 365 * 24 * time.Hour

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s > 0 {
		return time.Duration(min(s, int(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter)
	}
	return 0
}

// host returns the URL's host for logs, without path or query.
func host(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}
