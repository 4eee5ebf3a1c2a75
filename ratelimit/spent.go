package ratelimit

import (
	"sync"
	"time"
)

// maxSpentBudgets bounds the keys a SpentBudgets remembers. Past it, more
// are not remembered: their requests are asked of the limiter as before,
// only at the cost of the work the memo saves.
const maxSpentBudgets = 100_000

// SpentBudgets remembers which failure budgets are spent and until when,
// so that a caller can refuse a request before doing the work a failure
// costs (a store lookup of a guessed credential). The limiter keeps the
// truth; this only saves the work. It is exact for a sliding window: while
// a bucket is full nothing is added to it, so it stays full until the
// window frees a request.
//
// That moment is kept on this instance's clock, as the time the limiter
// was asked plus the wait it reported (Result.ResetIn), never as the
// ResetAt it reported: the Redis limiter's ResetAt is on Redis's clock,
// and an instance whose clock ran behind it would refuse the key for that
// much longer than the window. The limiter decided no earlier than it was
// asked, so the memo ends no later than the window frees.
type SpentBudgets struct {
	mu        sync.Mutex
	until     map[string]spentBudget // by bucket key
	lastSweep time.Time
}

// spentBudget is one spent bucket: the result that spent it and when,
// on this instance's clock, its window frees a request.
type spentBudget struct {
	res   Result
	until time.Time
}

// NewSpentBudgets returns an empty memo.
func NewSpentBudgets() *SpentBudgets {
	return &SpentBudgets{until: map[string]spentBudget{}}
}

// Spent reports whether key's budget is spent at now, with the refusal to
// answer (headers and Retry-After).
func (s *SpentBudgets) Spent(key string, now time.Time) (Result, bool) {
	s.mu.Lock()
	b, ok := s.until[key]
	if ok && !now.Before(b.until) {
		delete(s.until, key)
		ok = false
	}
	s.mu.Unlock()
	if !ok {
		return Result{}, false
	}
	res := b.res
	res.Allowed, res.Remaining = false, 0
	res.ResetIn = b.until.Sub(now)
	res.RetryAfter = RetryAfter(res.ResetIn)
	return res, true
}

// Record notes res for key, the limiter having been asked at asked:
// spent when nothing remains.
func (s *SpentBudgets) Record(key string, res Result, asked time.Time) {
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
