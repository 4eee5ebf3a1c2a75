// Package ratelimit decides whether one more request may pass for a key
// (a client IP, a token id or an organization id) under a limit of n
// requests per period.
//
// Every Limiter here keeps a sliding window of counters: a period is cut
// into Buckets buckets, and a request passes when the requests allowed in
// the bucket it falls in and the Buckets before it number fewer than n.
// Those buckets cover the whole window (now-period, now], so no span of one
// period ever holds more than n allowed requests, unlike a fixed window (2n
// at a boundary) or a GCRA with a burst of n (n plus the tokens regained
// during the period). The price is that a request is counted up to one
// bucket (period/Buckets) longer than its period, and a key's state is a
// fixed Buckets+1 counters whatever its limit and rate, where an exact log
// would keep one timestamp per allowed request. Rejected requests are never
// counted, so a client hammering a full window is let in again as soon as
// its oldest allowed requests leave the window.
//
// Keys are opaque to this package. It never logs a key and never puts one
// in a metric label: keys are client addresses and token ids, unbounded in
// number and not for operators' dashboards.
package ratelimit

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/keygate/keygate"
)

// MinPeriod is the shortest window a Limiter accepts. The Redis limiter
// keeps microseconds and expires keys in milliseconds; nothing shorter is
// a useful rate limit anyway.
const MinPeriod = time.Millisecond

// Limiter is what the gateway asks on every rate-limited request.
type Limiter interface {
	// Allow records one request for key under limit (n per period) if
	// allowed. A limit below 1 or a period below MinPeriod is an EINVALID
	// error. A backend failure is an error; callers that must keep serving
	// wrap the backend in a Fallback.
	Allow(ctx context.Context, key string, limit int, period time.Duration) (Result, error)
}

// Result is one decision and what the client is told about its window.
type Result struct {
	Allowed bool
	Limit   int
	// Remaining is how many more requests the window holds after this one.
	Remaining int
	// ResetAt is when the window frees a request: the moment the bucket
	// holding the allowed request that blocks the next one stops being
	// counted (on a request that passed, the oldest counted one's).
	ResetAt time.Time
	// ResetIn is how long after the decision ResetAt comes, measured on
	// the limiter's clock. ResetAt is a reading of that clock (Redis's,
	// for the Redis limiter), which the caller's may disagree with;
	// ResetIn added to the caller's time taken before asking is a moment
	// on the caller's clock no later than the window frees a request.
	ResetIn time.Duration
	// RetryAfter is set only when the request was refused: whole seconds,
	// rounded up, until ResetAt.
	RetryAfter time.Duration
	// Remembered: a refusal this process answered from its memory of the
	// backend's earlier refusal, without asking the backend (Metrics
	// counts them).
	Remembered bool
}

// ResetUnix is ResetAt in Unix seconds, rounded up so a client that waits
// until then is not refused for the fraction of a second it lost.
func (r Result) ResetUnix() int64 {
	s := r.ResetAt.Unix()
	if r.ResetAt.Nanosecond() > 0 {
		s++
	}
	return s
}

// SetHeaders writes the rate limit headers every limited response carries,
// and Retry-After on a refusal.
//
// The names are written exactly as the APIs keygate reproduces send them
// (X-RateLimit-Limit, not Go's canonical X-Ratelimit-Limit): header names
// are case-insensitive, but clients and tests written against those APIs
// sometimes compare bytes.
func (r Result) SetHeaders(h http.Header) {
	// Every limited request sets these: the three numbers are formatted
	// into one string and the three values share one array.
	var buf [3 * 20]byte
	b := strconv.AppendInt(buf[:0], int64(r.Limit), 10)
	l := len(b)
	b = strconv.AppendInt(b, int64(r.Remaining), 10)
	m := len(b)
	b = strconv.AppendInt(b, r.ResetUnix(), 10)
	s := string(b)
	v := [...]string{s[:l], s[l:m], s[m:]}
	vs := v[:]
	for i, name := range rateLimitHeaders {
		// Any other spelling goes: a canonical one the upstream sent.
		delete(h, canonicalRateLimitHeaders[i])
		h[name] = vs[i : i+1 : i+1]
	}
	if !r.Allowed {
		h.Set("Retry-After", strconv.FormatInt(int64(r.RetryAfter/time.Second), 10))
	}
}

var (
	rateLimitHeaders          = [3]string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}
	canonicalRateLimitHeaders = [3]string{"X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset"}
)

// Validate reports whether limit and period describe a usable limit.
// Every Limiter calls it first so that all backends refuse the same input.
func Validate(limit int, period time.Duration) error {
	if limit < 1 || limit > math.MaxInt32 {
		return keygate.Errorf(keygate.EINVALID, "Rate limit must allow 1 to %d requests, got %d.", math.MaxInt32, limit)
	}
	if period < MinPeriod {
		return keygate.Errorf(keygate.EINVALID, "Rate limit period must be at least %s, got %s.", MinPeriod, period)
	}
	return nil
}

// RetryAfter rounds the wait until a refused request could pass up to whole
// seconds, and to at least one second: Retry-After carries seconds, and a
// client told "0" would retry at once and be refused again.
func RetryAfter(wait time.Duration) time.Duration {
	if wait < time.Second {
		return time.Second
	}
	return (wait + time.Second - 1).Truncate(time.Second)
}
