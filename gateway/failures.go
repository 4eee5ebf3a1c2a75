package gateway

import (
	"context"
	"net/http"

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
	res, spent := g.failures.Spent(key, g.now())
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
			g.failures.Record(key, res, asked)
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
