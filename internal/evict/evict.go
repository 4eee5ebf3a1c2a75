// Package evict makes room in a bounded map cache without starting over.
package evict

// MakeRoom frees one share-th of a full map m of the given bound (at
// least one entry): entries expired says are gone first, then random
// ones (map order, which Go randomises). Freeing a whole share at once
// keeps the scan to once per share of the cache's inserts, a few entries
// visited per insert, even under a flood of new keys that frees little by
// expiry; and the rest of the warm entries stay: more live keys than the
// bound cost a refill for the few evicted, not for everyone, as clearing
// the map would. The caller holds whatever lock guards m.
func MakeRoom[K comparable, V any](m map[K]V, bound, share int, expired func(V) bool) {
	for k, v := range m {
		if expired(v) {
			delete(m, k)
		}
	}
	target := bound - max(bound/share, 1)
	for k := range m {
		if len(m) <= target {
			return
		}
		delete(m, k)
	}
}
