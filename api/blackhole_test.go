package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/api"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/postgres"
	"github.com/keygate/keygate/postgres/pgtest"
)

// A PostgreSQL that stops answering does not hold management API calls:
// the admin key lookup runs under the store timeout, so the caller gets a
// 503 within it although its own request has no deadline, and the key
// works again once the database answers.
func TestAdminKeyLookupIsBoundedWhenTheDatabaseStopsAnswering(t *testing.T) {
	base := pgtest.NewSchema(t)
	proxy := pgtest.NewProxy(t, base)
	ctx := context.Background()
	st, err := postgres.Open(ctx, proxy.URL(base))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	_, key, err := manage.CreateAdminKey(ctx, st, "ops", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	const storeTimeout = 500 * time.Millisecond
	h := api.New(api.Deps{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StoreTimeout: storeTimeout})
	call := func() (*httptest.ResponseRecorder, time.Duration) {
		req := httptest.NewRequest("GET", "/api/v1/orgs", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		start := time.Now()
		done := make(chan struct{})
		go func() { defer close(done); h.ServeHTTP(rec, req) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("a management API call was still waiting for the database 30s later")
		}
		return rec, time.Since(start)
	}
	if rec, _ := call(); rec.Code != http.StatusOK {
		t.Fatalf("before the outage: %d %s", rec.Code, rec.Body)
	}
	proxy.Blackhole()
	rec, took := call()
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "The database did not answer in time; try again.") {
		t.Errorf("database not answering: %d %s, want 503", rec.Code, rec.Body)
	}
	t.Logf("database blackholed, store timeout %v: the call was answered %d after %v", storeTimeout, rec.Code, took.Round(time.Millisecond))
	if limit := storeTimeout + time.Second; took > limit {
		t.Errorf("answered after %v, want within %v", took, limit)
	}
	proxy.Forward()
	restored := time.Now()
	for {
		rec, _ := call()
		if rec.Code == http.StatusOK {
			break
		}
		if time.Since(restored) > 10*time.Second {
			t.Fatalf("still %d %s 10s after the database answered again", rec.Code, rec.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
