package cluster_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/postgres/pgtest"
)

// An instance cut off from PostgreSQL (its connections dropped, new ones
// refused): tokens it had cached keep working for stale_if_error, tokens
// it must look up get the preset's 503, /readyz says so, nothing panics;
// when the database is back it recovers without a restart and applies the
// revocation made meanwhile. A short TTL (1s) makes the stale window, not
// the TTL, what keeps cached tokens working here.
func TestDatabaseOutage(t *testing.T) {
	c := newCluster(t)
	first := c.start(1, defaults, "")[0]
	proxy := pgtest.NewProxy(t, c.db)
	cut := c.startOne(settings{ttl: "1s", staleIfError: "4s", flushInterval: "10s"}, proxy.URL(c.db))

	_, cachedSecret := c.token(first)
	_, uncachedSecret := c.token(first)
	revoked, revokedSecret := c.token(first)
	cut.mustCache(t, cachedSecret)
	cut.mustCache(t, revokedSecret)

	proxy.Cut()
	cutAt := time.Now()
	unavailable := answer{http.StatusServiceUnavailable, bodyUnavailable}
	cut.mustAccept(t, cachedSecret)
	if a := cut.get("/api/v1/organization", uncachedSecret); a != unavailable {
		t.Errorf("token not cached, database down: %d %s, want %d %s", a.status, a.body, unavailable.status, unavailable.body)
	}
	unknown := keygate.GenerateTokenSecret(keygate.TokenPrefix("csk_", keygate.EnvironmentLive))
	if a := cut.get("/api/v1/organization", unknown); a != unavailable {
		t.Errorf("unknown token, database down: %d %s, want %d %s", a.status, a.body, unavailable.status, unavailable.body)
	}
	if status := readyz(t, cut); status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the database down = %d, want 503", status)
	}
	if err := first.server.Store().RevokeToken(context.Background(), revoked.ID, time.Now()); err != nil {
		t.Fatal(err)
	}

	// Past the TTL, within stale_if_error: still served from the cache.
	time.Sleep(time.Until(cutAt.Add(2 * time.Second)))
	cut.mustAccept(t, cachedSecret)
	// Past stale_if_error: refused like any lookup that cannot be made.
	time.Sleep(time.Until(cutAt.Add(5 * time.Second)))
	if a := cut.get("/api/v1/organization", cachedSecret); a != unavailable {
		t.Errorf("cached token after stale_if_error: %d %s, want %d %s", a.status, a.body, unavailable.status, unavailable.body)
	}

	proxy.Restore()
	restoredAt := time.Now()
	for {
		if a := cut.get("/api/v1/organization", cachedSecret); a.status == http.StatusOK {
			break
		} else if time.Since(restoredAt) > 10*time.Second {
			t.Fatalf("still %d %s 10s after the database came back", a.status, a.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("database back: first token accepted again after %s, without a restart", time.Since(restoredAt))
	cut.mustAccept(t, uncachedSecret)
	if a := cut.get("/api/v1/organization", revokedSecret); a.status != http.StatusUnauthorized || a.body != bodyInvalid {
		t.Errorf("token revoked during the outage: %d %s, want 401 %s", a.status, a.body, bodyInvalid)
	}
	if status := readyz(t, cut); status != http.StatusOK {
		t.Errorf("/readyz with the database back = %d, want 200", status)
	}
}

func readyz(t *testing.T, in *instance) int {
	t.Helper()
	resp, err := client.Get(in.admin + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// An instance whose database stops answering (connections stay open,
// nothing comes back, as when a network drops packets or the database
// hangs): every request is bounded by cache.store_timeout. Cached tokens
// keep working past the TTL for stale_if_error, and at once once the
// outage is known; uncached tokens get the preset's 503 within the store
// timeout; when the database answers again the instance recovers without
// a restart.
func TestDatabaseBlackhole(t *testing.T) {
	c := newCluster(t)
	first := c.start(1, defaults, "")[0]
	proxy := pgtest.NewProxy(t, c.db)
	const storeTimeout = time.Second
	held := c.startOne(settings{ttl: "1s", staleIfError: "1m", flushInterval: "10s", storeTimeout: storeTimeout.String()}, proxy.URL(c.db))

	_, cachedSecret := c.token(first)
	_, uncachedSecret := c.token(first)
	held.mustCache(t, cachedSecret)

	proxy.Blackhole()
	time.Sleep(1100 * time.Millisecond) // past the TTL: the cache must ask the database
	timed := func(secret string) (answer, time.Duration) {
		start := time.Now()
		a := held.get("/api/v1/organization", secret)
		return a, time.Since(start)
	}
	a, firstCached := timed(cachedSecret)
	if a.status != http.StatusOK {
		t.Fatalf("cached token past its TTL, database not answering: %d %s, want 200", a.status, a.body)
	}
	var slowestCached time.Duration
	for range 20 {
		a, took := timed(cachedSecret)
		if a.status != http.StatusOK {
			t.Fatalf("cached token, outage known: %d %s, want 200", a.status, a.body)
		}
		slowestCached = max(slowestCached, took)
	}
	unavailable := answer{http.StatusServiceUnavailable, bodyUnavailable}
	a, uncached := timed(uncachedSecret)
	if a != unavailable {
		t.Errorf("uncached token, database not answering: %d %s, want %d %s", a.status, a.body, unavailable.status, unavailable.body)
	}
	unknown := keygate.GenerateTokenSecret(keygate.TokenPrefix("csk_", keygate.EnvironmentLive))
	a, unknownTook := timed(unknown)
	if a != unavailable {
		t.Errorf("unknown token, database not answering: %d %s, want %d %s", a.status, a.body, unavailable.status, unavailable.body)
	}
	t.Logf("database blackholed, store_timeout %v: first cached request %v, slowest of 20 more %v, uncached 503 after %v, unknown 503 after %v",
		storeTimeout, firstCached.Round(time.Millisecond), slowestCached.Round(time.Millisecond), uncached.Round(time.Millisecond), unknownTook.Round(time.Millisecond))
	// A scheduling margin on a shared machine, far below the minute the
	// requests hung for without a deadline.
	const margin = 500 * time.Millisecond
	if firstCached > storeTimeout+margin || uncached > storeTimeout+margin || unknownTook > storeTimeout+margin {
		t.Errorf("a request waited past the store timeout (%v)", storeTimeout)
	}
	if slowestCached > storeTimeout {
		t.Errorf("with the outage known, a cached token still waited %v", slowestCached)
	}

	proxy.Forward()
	restoredAt := time.Now()
	for {
		if a := held.get("/api/v1/organization", uncachedSecret); a.status == http.StatusOK {
			break
		} else if time.Since(restoredAt) > 10*time.Second {
			t.Fatalf("still %d %s 10s after the database answered again", a.status, a.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("database answering again: uncached token accepted after %v, without a restart", time.Since(restoredAt).Round(time.Millisecond))
}

// cache.stale_if_error: 0s turns stale answers off: cut off from the
// database, a token cached a moment ago answers 503 once its TTL passes,
// like any lookup that cannot be made.
func TestStaleIfErrorZeroServesNothingStale(t *testing.T) {
	c := newCluster(t)
	first := c.start(1, defaults, "")[0]
	proxy := pgtest.NewProxy(t, c.db)
	cut := c.startOne(settings{ttl: "1s", staleIfError: "0s", flushInterval: "10s"}, proxy.URL(c.db))
	_, secret := c.token(first)
	cut.mustAccept(t, secret)
	proxy.Cut()
	time.Sleep(1100 * time.Millisecond) // past the TTL
	unavailable := answer{http.StatusServiceUnavailable, bodyUnavailable}
	if a := cut.get("/api/v1/organization", secret); a != unavailable {
		t.Errorf("cached token past its TTL, database down, stale_if_error 0s: %d %s, want %d %s", a.status, a.body, unavailable.status, unavailable.body)
	}
	proxy.Restore() // so the instance shuts down cleanly
}
