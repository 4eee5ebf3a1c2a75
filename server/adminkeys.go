package server

import (
	"net/http"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/statusrec"
	"github.com/keygate/keygate/ratelimit"
)

// Failed admin keys: every request to the management API or the verify
// API whose admin key is refused (missing scheme, malformed, unknown or
// revoked) counts against a budget per client address, as refused API
// tokens count against an API's failed_auth budget. Once an address has
// spent it, each of its requests that carries an admin key is refused 429
// before the key is looked up, the right key's included (as a spent
// failed_auth budget refuses a token not yet verified): a client sending
// random keys costs no database query until the window frees a request.
// Dashboard sessions, which carry no Authorization header, are not
// counted and not refused.
//
// The key space makes guessing hopeless; the budget is about cost. It is
// far above what an operator's scripts reach by mistake, and small enough
// that a flood of wrong keys is a query every two seconds per address.
var adminKeyFailureLimit = keygate.RateLimit{Key: keygate.LimitByIP, Limit: 30, Period: time.Minute}

// adminKeyFailures counts refused admin keys per client address.
type adminKeyFailures struct {
	s       *Server
	limiter ratelimit.Limiter
	// spent remembers the addresses refused, so that the next request of
	// one is answered without asking the limiter, or the store.
	spent *ratelimit.SpentBudgets
}

// newAdminKeyFailures counts in the shared limiter and, while it fails
// (Redis down, in the closed mode), in this instance's memory: see
// ratelimit.Backstop.
func (s *Server) newAdminKeyFailures() *adminKeyFailures {
	return &adminKeyFailures{
		s:       s,
		limiter: ratelimit.NewBackstop(s.limiter.Limiter(), s.limiter.Memory(), ratelimit.BackstopOptions{What: "failed admin keys", Logger: s.logger}),
		spent:   ratelimit.NewSpentBudgets(),
	}
}

// guard refuses the requests of an address that has spent its budget and
// charges each admin key next refuses (a 401 to a request carrying an
// Authorization header: the management API and the verify API read that
// header as an admin key and nothing else) to the request's address.
//
// A refusal is counted after it is answered, so the request that spends
// the budget still gets its 401 and the next one the 429. With several
// instances sharing Redis, an instance that has not yet seen the address
// refused looks one more key up before it remembers.
func (f *adminKeyFailures) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			next.ServeHTTP(w, r)
			return
		}
		key := "admin:admin-key-failures:ip:" + f.s.clientIP.Bucket(f.s.clientIP.ClientIP(r))
		if res, spent := f.spent.Spent(key, time.Now()); spent {
			res.SetHeaders(w.Header())
			writeJSON(w, http.StatusTooManyRequests, `{"error":{"code":"`+keygate.ERATELIMITED+`","message":"Too many failed admin key attempts from this address; retry later."}}`)
			return
		}
		status := &statusrec.Recorder{ResponseWriter: w}
		next.ServeHTTP(status, r)
		if status.Code == http.StatusUnauthorized {
			f.charge(r, key)
		}
	})
}

// charge counts one refused admin key under key, remembering the address
// as refused once its budget is spent.
func (f *adminKeyFailures) charge(r *http.Request, key string) {
	asked := time.Now()
	res, err := f.limiter.Allow(r.Context(), key, adminKeyFailureLimit.Limit, adminKeyFailureLimit.Period)
	if err != nil {
		if r.Context().Err() == nil {
			f.s.logger.WarnContext(r.Context(), "rate limiter failed counting a refused admin key", "error", err)
		}
		return
	}
	if res.Remaining == 0 || !res.Allowed {
		f.s.logger.WarnContext(r.Context(), "an address spent its budget of failed admin keys; refusing its admin keys until the window frees one",
			"ip", f.s.clientAddr(r), "limit", adminKeyFailureLimit.Limit, "period", adminKeyFailureLimit.Period.String(), "retry_in", res.ResetIn.Round(time.Second).String())
	}
	f.spent.Record(key, res, asked)
}
