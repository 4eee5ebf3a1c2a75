package redislimit_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate/ratelimit/redislimit"
	"github.com/keygate/keygate/sqlite"
)

// TestRedisSeed: requests seeded after an outage count in the key's window
// as decisions do.
func TestRedisSeed(t *testing.T) {
	client := newClient(t)
	l := redislimit.New(client, redislimit.Options{Prefix: uniquePrefix(t, client)})
	ctx := context.Background()
	if err := l.Seed(ctx, "token:tok_1", 7, time.Minute); err != nil {
		t.Fatal(err)
	}
	res, err := l.Allow(ctx, "token:tok_1", 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Allowed || res.Remaining != 2 {
		t.Fatalf("after seeding 7 of 10: %+v, want allowed with 2 remaining", res)
	}
	// Seeding ignores the limit: what was allowed elsewhere happened.
	if err := l.Seed(ctx, "token:tok_1", 5, time.Minute); err != nil {
		t.Fatal(err)
	}
	if res, _ := l.Allow(ctx, "token:tok_1", 10, time.Minute); res.Allowed {
		t.Fatalf("over the limit after seeding: %+v", res)
	}
}

// TestRedisEpoch: every instance reads the same epoch while Redis keeps
// its data, and a new one once it has lost it.
func TestRedisEpoch(t *testing.T) {
	client := newClient(t)
	prefix := uniquePrefix(t, client)
	a := redislimit.New(client, redislimit.Options{Prefix: prefix})
	b := redislimit.New(client, redislimit.Options{Prefix: prefix})
	ctx := context.Background()
	first, err := a.Epoch(ctx)
	if err != nil || first == "" {
		t.Fatalf("Epoch() = %q, %v", first, err)
	}
	if again, err := b.Epoch(ctx); err != nil || again != first {
		t.Fatalf("another instance's Epoch() = %q, %v; want %q", again, err, first)
	}
	if err := client.Del(ctx, prefix+"epoch").Err(); err != nil { // as a restart without persistence
		t.Fatal(err)
	}
	after, err := b.Epoch(ctx)
	if err != nil || after == first {
		t.Fatalf("Epoch() after Redis lost its data = %q, %v; want a new one", after, err)
	}
	if again, err := a.Epoch(ctx); err != nil || again != after {
		t.Fatalf("Epoch() = %q, %v; want %q, the new one", again, err, after)
	}
}

// TestRedisPeersCountsLiveInstances: instances that beat are counted; one
// that stops beating drops out after three intervals; the count is kept
// while Redis cannot be reached.
func TestRedisPeersCountsLiveInstances(t *testing.T) {
	client := newClient(t)
	prefix := uniquePrefix(t, client)
	ctx := context.Background()
	interval := 100 * time.Millisecond
	a := redislimit.NewPeers(client, nil, prefix, "a", interval)
	b := redislimit.NewPeers(client, nil, prefix, "b", interval)
	c := redislimit.NewPeers(client, nil, prefix, "c", interval)
	for _, p := range []*redislimit.Peers{a, b, c} {
		if err := p.Beat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Beat(ctx); err != nil || a.Live() != 3 {
		t.Fatalf("three instances beating: Live() = %d, %v", a.Live(), err)
	}
	for range 4 { // c stops beating
		time.Sleep(interval)
		b.Beat(ctx)
		a.Beat(ctx)
	}
	if a.Live() != 2 {
		t.Fatalf("after one instance stopped: Live() = %d, want 2", a.Live())
	}

	// Redis unreachable: the last count stays.
	dead := redislimit.NewPeers(unreachableClient(t), nil, prefix, "a", interval)
	if err := dead.Beat(ctx); err == nil {
		t.Fatal("Beat succeeded without Redis")
	}
	if dead.Live() != 1 {
		t.Fatalf("an instance that never reached Redis counts %d, want itself only", dead.Live())
	}
	beatingRun, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { b.Run(beatingRun); close(done) }()
	time.Sleep(interval / 2)
	stop()
	<-done
	a.Beat(ctx)
	if a.Live() != 1 {
		t.Fatalf("after b shut down gracefully: Live() = %d, want 1 (a)", a.Live())
	}
}

// TestRedisPeersHoldTheCountWhenRedisComesBackEmpty: a Redis restarted
// empty counts only the instances that have beaten since; the count
// before stays until every instance has had time to beat again.
func TestRedisPeersHoldTheCountWhenRedisComesBackEmpty(t *testing.T) {
	client := newClient(t)
	prefix := uniquePrefix(t, client)
	ctx := context.Background()
	var peers []*redislimit.Peers
	for _, name := range []string{"a", "b", "c"} {
		p := redislimit.NewPeers(client, nil, prefix, name, time.Hour)
		if err := p.Beat(ctx); err != nil {
			t.Fatal(err)
		}
		peers = append(peers, p)
	}
	peers[0].Beat(ctx)
	if n := peers[0].Live(); n != 3 {
		t.Fatalf("three instances beating: Live() = %d", n)
	}
	if err := client.Del(ctx, prefix+"instances").Err(); err != nil { // as a restart without persistence
		t.Fatal(err)
	}
	if err := peers[0].Beat(ctx); err != nil {
		t.Fatal(err)
	}
	if n := peers[0].Live(); n != 3 {
		t.Fatalf("first beat into an emptied Redis: Live() = %d, want the 3 from before", n)
	}
}

// TestPeersCountFromTheStoreWhileRedisIsDown: with Redis unreachable, the
// database's heartbeat rows keep the count: an instance that stops beating
// drops out, one that starts counts at once.
func TestPeersCountFromTheStoreWhileRedisIsDown(t *testing.T) {
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ctx := context.Background()
	interval := 100 * time.Millisecond
	dead := unreachableClient(t)
	a := redislimit.NewPeers(dead, store, "", "a", interval)
	b := redislimit.NewPeers(dead, store, "", "b", interval)
	c := redislimit.NewPeers(dead, store, "", "c", interval)
	for _, p := range []*redislimit.Peers{a, b, c} {
		if err := p.Beat(ctx); err == nil {
			t.Fatal("Beat succeeded without Redis")
		}
	}
	a.Beat(ctx)
	if n := a.Live(); n != 3 {
		t.Fatalf("three instances beating into the database: Live() = %d", n)
	}
	for range 4 { // c stops beating
		time.Sleep(interval)
		b.Beat(ctx)
		a.Beat(ctx)
	}
	if n := a.Live(); n != 2 {
		t.Fatalf("after c stopped beating: Live() = %d, want 2", n)
	}
	d := redislimit.NewPeers(dead, store, "", "d", interval)
	d.Beat(ctx)
	a.Beat(ctx)
	if n := a.Live(); n != 3 {
		t.Fatalf("after d started: Live() = %d, want 3", n)
	}
}

// unreachableClient is a client of a Redis that is not there: a port
// nothing listens on.
func unreachableClient(t *testing.T) *redis.Client {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { client.Close() })
	return client
}
