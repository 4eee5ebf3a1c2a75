package ratelimit

// Sweep runs one sweep now, as the sweeper does every interval.
func (m *Memory) Sweep() { m.sweep() }

// Stamps returns how many timestamps key's ring can hold and holds.
func (m *Memory) Stamps(key string) (capacity, held int) {
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		w, ok := s.windows[key]
		if ok {
			capacity, held = len(w.stamps), int(w.n)
		}
		s.mu.Unlock()
		if ok {
			return capacity, held
		}
	}
	return 0, 0
}
