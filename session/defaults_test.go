package session

import (
	"testing"
	"time"
)

// A zero LoginLimiter allows 5 failures per account and 20 per address in
// 15 minutes.
func TestLoginLimiterDefaults(t *testing.T) {
	var l LoginLimiter
	account, ip := l.limits()
	if account != 5 || ip != 20 || l.window() != 15*time.Minute {
		t.Fatalf("defaults %d per account, %d per address, window %s", account, ip, l.window())
	}
}
