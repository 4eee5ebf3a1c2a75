package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/postgres/pgtest"
	"github.com/keygate/keygate/server"
)

// unsteadyFeed is a real store whose change feed waits until released,
// then fails while failing is set, as a feed whose store is slow to answer
// and then fails it does.
type unsteadyFeed struct {
	keygate.Store
	release chan struct{}
	failing atomic.Bool
}

func (s *unsteadyFeed) WatchChanges(ctx context.Context, following func(bool), fn func(keygate.Change)) error {
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil
	}
	if s.failing.Load() {
		return errors.New("the changes table cannot be read")
	}
	return s.Store.WatchChanges(ctx, following, fn)
}

// /readyz says where the token cache stands with its change feed, and
// stays ready whatever it says: a cache that is not following makes
// lookups slower, not wrong. The metrics say it too.
func TestReadyzReportsTheTokenCachesFeed(t *testing.T) {
	admin := freeAddr(t)
	cfg := parseConfig(t, `
data_dir: `+t.TempDir()+`
admin: {listen: `+admin+`}
apis:
  - name: events
    preset: canskan
    listen: `+freeAddr(t)+`
    upstream: http://127.0.0.1:1
    token_prefix: ev_
    routes:
      - {methods: [GET], path: '/p/{code}', access: public}
`)
	st, err := server.OpenStore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	feed := &unsteadyFeed{Store: st, release: make(chan struct{})}
	feed.failing.Store(true)
	startServer(t, newServer(t, cfg, server.Options{Store: feed, Logger: quietLogger()}))

	waitFor := func(state string) {
		t.Helper()
		status, got := waitForTokenCache(t, admin, state)
		if checks, _ := got["checks"].(map[string]any); status != 200 || got["status"] != "ok" || checks["database"] != "ok" {
			t.Errorf("readyz with the token cache %s: %d %v; want 200 and status ok", state, status, got)
		}
	}
	metric := func(name string) string { t.Helper(); return adminMetric(t, admin, name) }

	waitFor("starting")
	if v := metric("keygate_token_cache_following"); v != "0" {
		t.Errorf("keygate_token_cache_following = %s while the feed starts, want 0", v)
	}
	close(feed.release)
	waitFor("restarting")
	for deadline := time.Now().Add(10 * time.Second); metric("keygate_token_cache_feed_restarts_total") == "0"; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("keygate_token_cache_feed_restarts_total still 0 10s after the feed failed")
		}
	}
	feed.failing.Store(false)
	waitFor("following")
	if v := metric("keygate_token_cache_following"); v != "1" {
		t.Errorf("keygate_token_cache_following = %s while the feed follows, want 1", v)
	}
}

// waitForTokenCache polls /readyz on the admin listener until it reports
// the token cache in state, and returns that answer's status and body.
func waitForTokenCache(t *testing.T, admin, state string) (int, map[string]any) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		status, body, _ := fetch(t, "http://"+admin+"/readyz")
		var got map[string]any
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("readyz body %q: %v", body, err)
		}
		checks, _ := got["checks"].(map[string]any)
		if checks["token_cache"] == state {
			return status, got
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz: %v after 10s, want token_cache %q", got, state)
		}
	}
}

// adminMetric returns the value of the metric named name on the admin
// listener's /metrics.
func adminMetric(t *testing.T, admin, name string) string {
	t.Helper()
	_, body, _ := fetch(t, "http://"+admin+"/metrics")
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	return m[1]
}

// While PostgreSQL's change feed reconnects by itself (its connection
// terminated, new ones refused for now), /readyz says so and the metric
// goes to 0, although the feed never stopped: changes are not reaching the
// cache meanwhile. Once the feed has reconnected and caught up, both say
// it follows again.
func TestReadyzReportsThePostgresFeedReconnecting(t *testing.T) {
	base := pgtest.NewSchema(t)
	// Short: PostgreSQL keeps 63 bytes of it.
	name := fmt.Sprintf("kgtest-readyz-%d", time.Now().UnixNano()%1e9)
	proxy := pgtest.NewProxy(t, base)
	admin := freeAddr(t)
	srv := runServer(t, fmt.Sprintf(`
database_url: %q
admin: {listen: %s}
`, proxy.URL(pgtest.WithParam(t, base, "application_name", name)), admin)+eventsAPI(freeAddr(t)), server.Options{Logger: quietLogger()})
	waitForTokenCache(t, admin, "following")

	proxy.Refuse()
	// The listening connection may come a moment after the feed follows,
	// or be refused: either way it is not there once the cache says so.
	for deadline := time.Now().Add(10 * time.Second); srv.TokenCache().FeedState() != "reconnecting"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("token cache %q 10s after the feed's connection was refused, want reconnecting", srv.TokenCache().FeedState())
		}
		pgtest.Terminate(t, base, name+" (changes)")
	}
	waitForTokenCache(t, admin, "reconnecting")
	if v := adminMetric(t, admin, "keygate_token_cache_following"); v != "0" {
		t.Errorf("keygate_token_cache_following = %s while the feed reconnects, want 0", v)
	}

	proxy.Restore()
	waitForTokenCache(t, admin, "following")
	if v := adminMetric(t, admin, "keygate_token_cache_following"); v != "1" {
		t.Errorf("keygate_token_cache_following = %s once the feed reconnected, want 1", v)
	}
}
