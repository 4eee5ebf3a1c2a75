package postgres

// ReplicaReads reports how many token lookups a replica answered and how
// many went to the primary instead.
func (s *Store) ReplicaReads() (hits, fallbacks int64) {
	return s.replicaStats.hits.Load(), s.replicaStats.fallbacks.Load()
}
