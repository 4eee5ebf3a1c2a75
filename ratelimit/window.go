package ratelimit

// window is one key's log of allowed requests: a ring of timestamps in
// nanoseconds since the limiter started, oldest at head. The ring grows on
// demand up to the key's limit, so a key seen once costs one timestamp.
type window struct {
	stamps []int64
	head   int32
	n      int32
	period int64 // of the latest request, for the sweeper
}

type decision struct {
	allowed   bool
	remaining int
	resetAt   int64
}

// allow records a request at now if fewer than limit requests remain in
// (now-period, now], and says when the window next frees a request.
func (w *window) allow(now int64, limit int, period int64) decision {
	// A clock that steps back (only a test's fake clock can) must not
	// reorder the log: count the request at the newest time seen.
	if w.n > 0 {
		now = max(now, w.at(int(w.n)-1))
	}
	w.period = period
	w.expire(now - period)

	n := int(w.n)
	if n < limit {
		w.push(now, limit)
		return decision{allowed: true, remaining: limit - n - 1, resetAt: w.at(0) + period}
	}
	// Full (or over a limit that was lowered): the next request passes when
	// only limit-1 of the logged ones are left in the window.
	return decision{resetAt: w.at(n-limit) + period}
}

// idle reports whether every logged request has left the window.
func (w *window) idle(now int64) bool {
	return w.n == 0 || w.at(int(w.n)-1) <= now-w.period
}

// at returns the i-th oldest timestamp.
func (w *window) at(i int) int64 {
	return w.stamps[(int(w.head)+i)%len(w.stamps)]
}

// expire drops timestamps at or before cutoff: a request at exactly
// now-period has left the window (now-period, now].
func (w *window) expire(cutoff int64) {
	for w.n > 0 && w.stamps[w.head] <= cutoff {
		w.head = int32((int(w.head) + 1) % len(w.stamps))
		w.n--
	}
	if w.n == 0 {
		w.head = 0
	}
}

func (w *window) push(t int64, limit int) {
	if int(w.n) == len(w.stamps) {
		w.grow(limit)
	}
	w.stamps[(int(w.head)+int(w.n))%len(w.stamps)] = t
	w.n++
}

// grow doubles the ring, capped at limit, and lays it out from index 0.
func (w *window) grow(limit int) {
	size := min(max(2*len(w.stamps), 1), limit)
	stamps := make([]int64, size)
	for i := range int(w.n) {
		stamps[i] = w.at(i)
	}
	w.stamps, w.head = stamps, 0
}
