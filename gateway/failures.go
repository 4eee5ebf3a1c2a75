package gateway

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/ratelimit"
)

// Failed authentication: every request that presents no token, a malformed,
// unknown, revoked or expired one counts against the API's failed_auth
// budget per client address, and against its public per-IP limit when it
// has one (guessing tokens is limited like anonymous traffic). Once an
// address has spent its budget, a request with a token this instance has
// not verified before is refused 429 before the store is asked: a guesser
// costs no database query until the window frees a request.

// errBudgetSpent marks a refusal decided before the lookup; it is answered
// as ERATELIMITED without counting again.
var errBudgetSpent = keygate.Errorf(keygate.ERATELIMITED, "Too many failed authentication attempts.")

// maxSpentBudgets bounds the addresses remembered as spent. Past it, more
// are not remembered: their requests are looked up and refused by the
// limiter as before, only at a store query each.
const maxSpentBudgets = 100_000

// spentBudgets remembers which failed-auth buckets are spent and until
// when. The limiter keeps the truth; this only saves the store lookup. It
// is exact for a sliding window: while a bucket is full nothing is added
// to it, so it stays full until the window frees a request.
//
// That moment is kept on this instance's clock, as the time the limiter
// was asked plus the wait it reported (Result.ResetIn), never as the
// ResetAt it reported: the Redis limiter's ResetAt is on Redis's clock,
// and an instance whose clock ran behind it would refuse the address for
// that much longer than the window. The limiter decided no earlier than
// it was asked, so the memo ends no later than the window frees.
type spentBudgets struct {
	mu        sync.Mutex
	until     map[string]spentBudget // by bucket key
	lastSweep time.Time
}

// spentBudget is one spent bucket: the result that spent it and when,
// on this instance's clock, its window frees a request.
type spentBudget struct {
	res   ratelimit.Result
	until time.Time
}

func newSpentBudgets() *spentBudgets {
	return &spentBudgets{until: map[string]spentBudget{}}
}

// spent reports whether key's budget is spent at now, with the refusal to
// answer (headers and Retry-After).
func (s *spentBudgets) spent(key string, now time.Time) (ratelimit.Result, bool) {
	s.mu.Lock()
	b, ok := s.until[key]
	if ok && !now.Before(b.until) {
		delete(s.until, key)
		ok = false
	}
	s.mu.Unlock()
	if !ok {
		return ratelimit.Result{}, false
	}
	res := b.res
	res.Allowed, res.Remaining = false, 0
	res.ResetIn = b.until.Sub(now)
	res.RetryAfter = ratelimit.RetryAfter(res.ResetIn)
	return res, true
}

// record notes res for key, the limiter having been asked at asked:
// spent when nothing remains.
func (s *spentBudgets) record(key string, res ratelimit.Result, asked time.Time) {
	if res.Remaining > 0 && res.Allowed {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.until) >= maxSpentBudgets && asked.Sub(s.lastSweep) >= time.Second {
		s.lastSweep = asked
		for k, b := range s.until {
			if !asked.Before(b.until) {
				delete(s.until, k)
			}
		}
	}
	if len(s.until) < maxSpentBudgets {
		s.until[key] = spentBudget{res: res, until: asked.Add(res.ResetIn)}
	}
}

// failedAuthKey is the bucket of req's client address in the failed_auth
// budget; "" when the API has none.
func (g *Gateway) failedAuthKey(req Request) string {
	if g.api.FailedAuthRateLimit == nil || g.limiter == nil {
		return ""
	}
	return g.limitKey(g.api.FailedAuthRateLimit, &Decision{}, req)
}

// budgetSpent reports whether req's address has spent its failed_auth
// budget, setting the refusal's rate limit headers on d.
func (g *Gateway) budgetSpent(d *Decision, req Request) bool {
	key := g.failedAuthKey(req)
	if key == "" {
		return false
	}
	res, spent := g.failures.spent(key, g.now())
	if spent {
		d.limitedBy(res)
	}
	return spent
}

// countsAsFailedAuth says which refusals spend the budget: a token that
// is missing (only where counted, see countFailure), malformed, unknown,
// revoked or expired. A store outage is keygate's failure, not the
// client's.
func countsAsFailedAuth(err error, missingCounts bool) bool {
	switch keygate.ErrorCode(err) {
	case keygate.ETOKENINVALID, keygate.ETOKENEXPIRED:
		return true
	case keygate.ETOKENMISSING:
		return missingCounts
	}
	return false
}

// countFailure charges a failed authentication to req's address and
// returns what to answer: err itself, or ERATELIMITED once a budget is
// spent. d gets the rate limit headers of the budget closest to running
// out.
func (g *Gateway) countFailure(ctx context.Context, d *Decision, req Request, err error, missingCounts bool) error {
	if err == errBudgetSpent {
		return errRateLimited
	}
	if !countsAsFailedAuth(err, missingCounts) || g.limiter == nil {
		return err
	}
	var closest *ratelimit.Result
	for _, rule := range []*keygate.RateLimit{g.api.FailedAuthRateLimit, g.api.PublicRateLimit} {
		if rule == nil {
			continue
		}
		key := g.limitKey(rule, &Decision{}, req)
		asked := g.now()
		res, limitErr := g.limiter.Allow(ctx, key, rule.Limit, rule.Period)
		if limitErr != nil {
			g.logger.Error("rate limiter unavailable", "error", limitErr)
			return keygate.Errorf(keygate.EUNAVAILABLE, "Rate limiter unavailable.")
		}
		if rule == g.api.FailedAuthRateLimit {
			g.failures.record(key, res, asked)
		}
		if !res.Allowed {
			d.limitedBy(res)
			return errRateLimited
		}
		if closest == nil || res.Remaining < closest.Remaining {
			closest = &res
		}
	}
	if closest != nil {
		d.limitedBy(*closest)
	}
	return err
}

// FailedAuthSpent reports whether r's client address has spent the API's
// failed_auth budget, setting the refusal's rate limit headers on h when
// it has: the MCP endpoint asks before it looks up an OAuth access token,
// as the routes do before looking up an API token.
func (g *Gateway) FailedAuthSpent(h http.Header, r *http.Request) bool {
	var d Decision
	if !g.budgetSpent(&d, g.requestOf(r)) {
		return false
	}
	d.RateLimit.SetHeaders(h)
	return true
}

// CountFailedAuth charges a credential refused elsewhere (an OAuth access
// token on the MCP endpoint) to r's client address, exactly as a refused
// API token: the failed_auth budget and the public per-IP limit. It sets
// the rate limit headers on h and returns ERATELIMITED once a limit is
// exceeded, EUNAVAILABLE when the limiter cannot be reached, else nil.
func (g *Gateway) CountFailedAuth(h http.Header, r *http.Request) error {
	var d Decision
	err := g.countFailure(r.Context(), &d, g.requestOf(r), errTokenInvalid, false)
	if d.HasRateLimit {
		d.RateLimit.SetHeaders(h)
	}
	if err == errTokenInvalid {
		return nil
	}
	return err
}
