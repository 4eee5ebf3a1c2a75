package dashboard_test

import (
	"context"
	"path/filepath"
	"testing"
	"testing/synctest"

	"github.com/keygate/keygate/dashboard"
	"github.com/keygate/keygate/ratelimit"
	"github.com/keygate/keygate/session"
	"github.com/keygate/keygate/sqlite"
)

// A dashboard given a Limiter but no MemoryLimiter (or neither) starts a
// memory limiter of its own, and Close stops it: no goroutine of the
// dashboard outlives it. synctest.Test fails the test
// if a goroutine started in its bubble is still blocked when it ends.
func TestDashboardCloseStopsWhatItStarted(t *testing.T) {
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	synctest.Test(t, func(t *testing.T) {
		for _, limiter := range []ratelimit.Limiter{nil, ratelimit.NewMemory(ratelimit.MemoryOptions{SweepInterval: -1})} {
			h := dashboard.New(dashboard.Deps{Store: store, Sessions: &session.Manager{Sessions: store, Users: store}, Limiter: limiter})
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
