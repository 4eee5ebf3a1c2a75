package gateway_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/internal/logtest"
	"github.com/keygate/keygate/sqlite"
)

// stallingStore is a real SQLite store whose lookups can be made to
// stall, as a database that stops answering does: a stalled lookup returns
// only when released or when its context ends, like a driver would.
type stallingStore struct {
	*sqlite.Store
	lookups atomic.Int64
	stall   atomic.Pointer[chan struct{}] // nil: answer at once
}

func (s *stallingStore) FindTokenByHash(ctx context.Context, hash string) (*keygate.Token, error) {
	s.lookups.Add(1)
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.Store.FindTokenByHash(ctx, hash)
}

func (s *stallingStore) FindOrganizationByID(ctx context.Context, id string) (*keygate.Organization, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.Store.FindOrganizationByID(ctx, id)
}

func (s *stallingStore) wait(ctx context.Context) error {
	if gate := s.stall.Load(); gate != nil {
		select {
		case <-*gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// stallLookups makes lookups wait until the returned function is called.
func (s *stallingStore) stallLookups() (release func()) {
	gate := make(chan struct{})
	s.stall.Store(&gate)
	return func() {
		s.stall.Store(nil)
		close(gate)
	}
}

func newStallingStore(t *testing.T) (*stallingStore, *keygate.Organization) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free"}
	if err := st.CreateOrganization(ctx, org); err != nil {
		t.Fatal(err)
	}
	return &stallingStore{Store: st}, org
}

func createToken(t *testing.T, st keygate.Store, org *keygate.Organization) keygate.TokenDigest {
	t.Helper()
	policy := keygate.TokenPolicy{BasePrefix: "csk_", AllowNever: true}
	tok, secret, err := keygate.NewToken(policy, keygate.TokenRequest{OrganizationID: org.ID, API: "canskan", Name: "t", Expiry: keygate.ExpiryNever}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateToken(context.Background(), tok, 0); err != nil {
		t.Fatal(err)
	}
	return keygate.DigestToken(secret)
}

// Requests for one token share one store read; the first of them going away
// must not fail the others, which get the token once the store answers.
func TestOneWaiterCancellingDoesNotFailTheOthers(t *testing.T) {
	st, org := newStallingStore(t)
	hash := createToken(t, st, org)
	tokens := gateway.NewTokens(st, gateway.TokensOptions{StoreTimeout: 5 * time.Second})
	release := st.stallLookups()

	first, cancelFirst := context.WithCancel(context.Background())
	firstDone := make(chan error, 1)
	go func() {
		_, _, err := tokens.Lookup(first, hash)
		firstDone <- err
	}()
	waitFor(t, "the first lookup to reach the store", func() bool { return st.lookups.Load() == 1 })
	const others = 8
	othersDone := make(chan error, others)
	for range others {
		go func() {
			_, _, err := tokens.Lookup(context.Background(), hash)
			othersDone <- err
		}()
	}
	time.Sleep(50 * time.Millisecond) // let them join the read in flight
	cancelAt := time.Now()
	cancelFirst()
	if err := <-firstDone; keygate.ErrorCode(err) != keygate.ECANCELED {
		t.Fatalf("the cancelled lookup returned %v, want code %s", err, keygate.ECANCELED)
	}
	t.Logf("cancelled lookup returned after %v", time.Since(cancelAt).Round(time.Microsecond))
	time.Sleep(50 * time.Millisecond) // a cancelled shared read would fail the others now
	release()
	for range others {
		if err := <-othersDone; err != nil {
			t.Errorf("a lookup waiting on the same read failed: %v", err)
		}
	}
	if n := st.lookups.Load(); n != 1 {
		t.Errorf("%d store reads for one token, want 1 shared read", n)
	}
	t.Logf("%d waiters served by %d store read after the first caller left", others, st.lookups.Load())
}

// A store that stops answering costs a request at most StoreTimeout: a
// cached token past its TTL is served stale (and at once while the store
// is known to be down), an uncached one is EUNAVAILABLE. When the store
// answers again the cache notices without help.
func TestStoreThatStopsAnsweringIsBoundedByStoreTimeout(t *testing.T) {
	st, org := newStallingStore(t)
	cachedHash, uncachedHash := createToken(t, st, org), createToken(t, st, org)
	const storeTimeout = time.Second
	var skew atomic.Int64 // how far the cache's clock is ahead
	tokens := gateway.NewTokens(st, gateway.TokensOptions{
		TTL: time.Second, StaleIfError: time.Minute, StoreTimeout: storeTimeout,
		Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
	})
	ctx := context.Background()
	if _, _, err := tokens.Lookup(ctx, cachedHash); err != nil {
		t.Fatal(err)
	}
	release := st.stallLookups()
	defer func() { release() }()
	skew.Store(int64(2 * time.Second)) // past the TTL

	start := time.Now()
	if _, _, err := tokens.Lookup(ctx, cachedHash); err != nil {
		t.Fatalf("cached token past its TTL with the store stalled: %v", err)
	}
	firstStale := time.Since(start)
	start = time.Now()
	if _, _, err := tokens.Lookup(ctx, cachedHash); err != nil {
		t.Fatalf("cached token, store known down: %v", err)
	}
	knownDown := time.Since(start)
	start = time.Now()
	_, _, err := tokens.Lookup(ctx, uncachedHash)
	uncached := time.Since(start)
	if keygate.ErrorCode(err) != keygate.EUNAVAILABLE {
		t.Fatalf("uncached token with the store stalled: %v, want %s", err, keygate.EUNAVAILABLE)
	}
	t.Logf("store stalled, timeout %v: stale answer %v, stale answer once known down %v, uncached refusal %v",
		storeTimeout, firstStale.Round(time.Millisecond), knownDown.Round(time.Microsecond), uncached.Round(time.Millisecond))
	if firstStale > storeTimeout+time.Second || uncached > storeTimeout+time.Second {
		t.Errorf("a request waited past the store timeout")
	}
	if knownDown >= storeTimeout {
		t.Errorf("with the store known down a cached token still waited %v", knownDown)
	}
	if !tokens.StoreDown() {
		t.Error("the cache does not report the store down")
	}

	release()
	release = func() {}
	// A read that timed out just before the release may report its failure
	// after the first success; the next read corrects it.
	waitFor(t, "the uncached token to be served and the store reported up", func() bool {
		_, _, err := tokens.Lookup(ctx, uncachedHash)
		return err == nil && !tokens.StoreDown()
	})
}

// The warning that the token store is unreachable says what the cache
// does about it: with stale_if_error on it serves cached tokens up to that
// age; with it off it serves none past their TTL, and says so rather than
// promising cached tokens. The store is a real SQLite file, closed.
func TestStoreDownWarningSaysWhetherCachedTokensAreServed(t *testing.T) {
	for _, tt := range []struct {
		staleIfError time.Duration
		want         string
	}{
		{time.Minute, `level=WARN msg="token store unreachable; serving cached tokens up to stale_if_error old while it recovers" stale_if_error=1m0s`},
		{-1, `level=WARN msg="token store unreachable; refusing tokens not cached within their TTL until it recovers (stale_if_error is off)"`},
	} {
		st, org := newStallingStore(t)
		hash := createToken(t, st, org)
		logs := &logtest.Buffer{}
		tokens := gateway.NewTokens(st, gateway.TokensOptions{
			StaleIfError: tt.staleIfError, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		})
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := tokens.Lookup(context.Background(), hash); keygate.ErrorCode(err) != keygate.EUNAVAILABLE {
			t.Fatalf("stale_if_error %v, store closed: %v, want %s", tt.staleIfError, err, keygate.EUNAVAILABLE)
		}
		if got := logs.String(); strings.Count(got, "level=WARN") != 1 || !strings.Contains(got, tt.want) {
			t.Errorf("stale_if_error %v, store closed: logged\n%s\nwant the one warning %s", tt.staleIfError, got, tt.want)
		}
	}
}
