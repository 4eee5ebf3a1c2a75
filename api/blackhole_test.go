package api_test

import (
	"context"
	"fmt"
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
	st, proxy := pgtest.OpenBehindProxy(t, postgres.Open)
	ctx := context.Background()
	_, key, err := manage.CreateAdminKey(ctx, st, "ops", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	const storeTimeout = 500 * time.Millisecond
	h := api.New(api.Deps{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StoreTimeout: storeTimeout})
	call := func() error {
		req := httptest.NewRequest("GET", "/api/v1/orgs", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			return fmt.Errorf("%d %s", rec.Code, rec.Body)
		}
		return nil
	}
	during, took := pgtest.Outage(t, proxy, storeTimeout+time.Second, call)
	t.Logf("database blackholed, store timeout %v: the call was answered %v after %v", storeTimeout, during, took.Round(time.Millisecond))
	if got := fmt.Sprint(during); !strings.HasPrefix(got, "503 ") || !strings.Contains(got, "The database did not answer in time; try again.") {
		t.Errorf("database not answering: %s, want 503", got)
	}
}
