package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/logtest"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/postgres"
	"github.com/keygate/keygate/postgres/pgtest"
	"github.com/keygate/keygate/server"
	"github.com/keygate/keygate/webhook"
)

// A webhook attempt waiting on a PostgreSQL that stopped answering does
// not hold keygate's shutdown for the claim's lease (a minute and more):
// Shutdown returns within listeners.shutdown_grace and the 5 s the last
// writes get. (The store is the test's, which Shutdown leaves open; the
// next test has keygate close its own.)
func TestShutdownEndsWebhookAttemptsWithTheGraceWhenTheDatabaseStopsAnswering(t *testing.T) {
	st, proxy := pgtest.OpenBehindProxy(t, postgres.Open)
	cfg := parseConfig(t, fmt.Sprintf(`
data_dir: %q
admin: {listen: %s}
listeners: {shutdown_grace: 1s}
webhooks: {allow_private_addresses: true}
apis:
  - name: events
    preset: canskan
    listen: %s
    upstream: http://127.0.0.1:9
    routes:
      - {methods: [GET], path: /attendees, access: token}
`, t.TempDir(), freeAddr(t), freeAddr(t)))
	srv := newServer(t, cfg, server.Options{Store: st, Logger: quietLogger()})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	got, release := make(chan struct{}, 1), make(chan struct{})
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		got <- struct{}{}
		<-release
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)
	ctx := context.Background()
	org := &keygate.Organization{Slug: "acme"}
	if err := manage.CreateOrganization(ctx, srv.Store(), org, time.Now()); err != nil {
		t.Fatal(err)
	}
	hook, err := keygate.NewWebhook(keygate.WebhookRequest{OrganizationID: org.ID, URL: receiver.URL}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Store().CreateWebhook(ctx, hook, 0); err != nil {
		t.Fatal(err)
	}
	if err := srv.Webhooks().Emit(ctx, org.ID, keygate.EventTokenCreated, map[string]string{"id": "tok_1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the delivery was not sent")
	}
	proxy.Blackhole() // the attempt's record waits on a silent database
	close(release)

	began := time.Now()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.Listeners.ShutdownGrace)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(shutdownCtx) }()
	lease := webhook.DefaultTimeout + time.Minute
	select {
	case err := <-done:
		took := time.Since(began)
		proxy.Forward()
		t.Logf("database blackholed, shutdown_grace 1s: Shutdown returned after %v (%v); the claim's lease is %v", took.Round(time.Millisecond), err, lease)
		if limit := cfg.Listeners.ShutdownGrace + 5*time.Second + 2*time.Second; took > limit {
			t.Errorf("Shutdown took %v, want within the grace and the final writes' 5 s (%v)", took.Round(time.Millisecond), limit)
		}
	case <-time.After(30 * time.Second):
		proxy.Forward()
		t.Fatalf("Shutdown still running 30s into a 1s grace on a silent database (the claim's lease is %v)", lease)
	}
}

// keygate's own PostgreSQL pool does not hold its shutdown either: with
// the database silent and usage waiting to be written, Shutdown gives the
// writes the grace, then leaves the pool's connections (whose close pgx
// gives 15 s each) to the process's exit, and says so once.
func TestShutdownClosesItsOwnStoreWithinTheGraceWhenTheDatabaseStopsAnswering(t *testing.T) {
	base := pgtest.NewSchema(t)
	proxy := pgtest.NewProxy(t, base)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(upstream.Close)
	events := freeAddr(t)
	cfg := parseConfig(t, fmt.Sprintf(`
database_url: %q
admin: {listen: %s}
listeners: {shutdown_grace: 1s}
last_used: {flush_interval: 1h}
usage: {flush_interval: 1h}
apis:
  - name: events
    preset: canskan
    listen: %s
    upstream: %s
    scopes: [attendees:read]
    routes:
      - {methods: [GET], path: /attendees, access: token, scopes: [attendees:read]}
`, proxy.URL(base), freeAddr(t), events, upstream.URL))
	logs := &logtest.Buffer{}
	srv := newServer(t, cfg, server.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	r := &running{srv: srv}
	_, secret := r.token(t)
	if status, body, _ := fetch(t, "http://"+events+"/attendees", "Authorization", "Bearer "+secret); status != http.StatusOK {
		t.Fatalf("status %d %s, want 200", status, body)
	}
	proxy.Blackhole() // the request's usage and last use wait on a silent database

	began := time.Now()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.Listeners.ShutdownGrace)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(shutdownCtx) }()
	select {
	case err := <-done:
		took := time.Since(began)
		t.Logf("database blackholed, shutdown_grace 1s: Shutdown, closing its store, returned after %v (%v)", took.Round(time.Millisecond), err)
		if limit := cfg.Listeners.ShutdownGrace + 5*time.Second + 2*time.Second; took > limit {
			t.Errorf("Shutdown took %v, want within the grace and the final writes' 5 s (%v)", took.Round(time.Millisecond), limit)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown still running 30s into a 1s grace on a silent database")
	}
	got := logs.String()
	if n := strings.Count(got, "closing the database connections"); n != 1 {
		t.Errorf("the abandoned close is logged %d times, want once:\n%s", n, got)
	}
	if strings.Contains(got, secret) || strings.Contains(got, proxy.URL(base)) {
		t.Errorf("the logs show the token or the database URL:\n%s", got)
	}
}
