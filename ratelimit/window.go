package ratelimit

// Buckets is how many counters a period is split into. A key's state is
// Buckets+1 counters whatever its limit and rate, and a request is counted
// for at most one bucket width (period/Buckets) longer than its period: the
// most a limit can under-admit is one request in Buckets+1.
const Buckets = 24

// slots is the counters a window keeps: the Buckets a period spans plus
// the one the window's oldest edge is in.
const slots = Buckets + 1

// BucketWidth is the time one counter covers for period: period/Buckets
// rounded up, so Buckets widths always cover a whole period.
func BucketWidth(period int64) int64 {
	return (period + Buckets - 1) / Buckets
}

// window is one key's sliding window of counters. Time is cut into
// buckets of one width each, aligned to multiples of the width; counts
// holds the allowed requests of buckets newest-Buckets … newest, bucket i
// at counts[i mod slots].
//
// A request at now in bucket b passes when the sum over b-Buckets … b is
// below the limit. The window (now-period, now] lies inside those buckets,
// so every span of one period ending at an allowed request holds at most
// limit allowed requests: never over, and under by at most the requests of
// the part of the oldest bucket that has already left the window.
type window struct {
	counts [slots]uint32
	newest int64 // bucket index of the newest counter
	width  int64 // bucket width, period/Buckets rounded up
}

type decision struct {
	allowed   bool
	remaining int
	resetAt   int64
}

// allow records a request at now if the window holds fewer than limit,
// and says when the window next frees a request.
func (w *window) allow(now int64, limit int, period int64) decision {
	b := w.advance(now, BucketWidth(period))
	total := w.total()
	if total < int64(limit) {
		w.counts[floorMod(b, slots)]++
		total++
		// As in a log, a request that passed learns when the oldest
		// request it shares the window with leaves.
		return decision{allowed: true, remaining: limit - int(total), resetAt: w.freesAt(1)}
	}
	// Full (or over a limit that was lowered): the next request passes
	// when total-limit+1 of the counted ones have left.
	return decision{resetAt: w.freesAt(total - int64(limit) + 1)}
}

// add counts n requests at now whatever the limit: requests decided
// elsewhere.
func (w *window) add(now int64, n int, period int64) {
	b := w.advance(now, BucketWidth(period))
	i := floorMod(b, slots)
	w.counts[i] = uint32(min(int64(w.counts[i])+int64(n), int64(^uint32(0))))
}

// advance moves the window to the bucket that holds now and returns its
// index. Buckets that left the window are zeroed; a clock that steps back
// (only a test's fake clock can) counts in the newest bucket, so nothing
// is forgotten early.
func (w *window) advance(now, width int64) int64 {
	b := floorDiv(now, width)
	switch {
	case w.width == 0:
		w.width, w.newest = width, b
	case w.width != width:
		// The key's period changed: keep every counted request, as if all
		// were made now, rather than forget any.
		total := w.total()
		*w = window{width: width, newest: b}
		w.counts[floorMod(b, slots)] = uint32(min(total, int64(^uint32(0))))
	case b > w.newest:
		for i := w.newest + 1; i <= b && i <= w.newest+slots; i++ {
			w.counts[floorMod(i, slots)] = 0
		}
		w.newest = b
	}
	return w.newest
}

func (w *window) total() int64 {
	var sum int64
	for _, c := range w.counts {
		sum += int64(c)
	}
	return sum
}

// freesAt returns when need counted requests have left the window: the end
// of the counting of the bucket that holds the need-th oldest. Bucket i is
// counted until bucket i+slots begins.
func (w *window) freesAt(need int64) int64 {
	var left int64
	for i := w.newest - Buckets; i <= w.newest; i++ {
		left += int64(w.counts[floorMod(i, slots)])
		if left >= need {
			return (i + slots) * w.width
		}
	}
	return (w.newest + slots) * w.width
}

// idle reports whether every counted request has left the window.
func (w *window) idle(now int64) bool {
	return w.width == 0 || floorDiv(now, w.width) >= w.newest+slots
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }
