package session

import (
	"testing"
	"time"
)

// A zero LoginLimiter allows 5 failures per account and address, 20 per
// address and 10 per account before spacing its attempts up to a minute
// apart, in 15 minutes.
func TestLoginLimiterDefaults(t *testing.T) {
	var l LoginLimiter
	pair, address, account := l.limits()
	if pair != 5 || address != 20 || account != 10 || l.maxAccountDelay() != time.Minute || l.window() != 15*time.Minute {
		t.Fatalf("defaults %d per account and address, %d per address, %d per account, delay up to %s, window %s",
			pair, address, account, l.maxAccountDelay(), l.window())
	}
}
