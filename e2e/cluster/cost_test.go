package cluster_test

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/ratelimit/redislimit"
)

// lookupCounter counts the store calls a token lookup makes; each is one
// SQL statement (FindTokenByHash one SELECT on the primary, or on a
// replica and, when the replica misses, on the primary).
type lookupCounter struct {
	keygate.Store
	tokens, orgs atomic.Int64
}

func (l *lookupCounter) FindTokenByHash(ctx context.Context, hash string) (*keygate.Token, error) {
	l.tokens.Add(1)
	return l.Store.FindTokenByHash(ctx, hash)
}

func (l *lookupCounter) FindOrganizationByID(ctx context.Context, id string) (*keygate.Organization, error) {
	l.orgs.Add(1)
	return l.Store.FindOrganizationByID(ctx, id)
}

// TestCostPerRequest measures what requests cost the services instances
// share, for the capacity model in docs/deployment.md: Redis commands and
// bytes per rate-limited request, and PostgreSQL statements per token
// lookup that misses the cache. It asserts what the model relies on: one
// Redis call per limited request, none for a refusal the instance
// remembers, one statement per uncached token (and one per organization),
// none for a cached one.
func TestCostPerRequest(t *testing.T) {
	redisServer := startOwnRedis(t)
	c := newCluster(t)
	counter := &lookupCounter{}
	c.start(1, settings{ttl: "5m", staleIfError: "5m", flushInterval: "1h",
		redisURL: "redis://" + redisServer.addr + "/0", onRedisDown: "local",
		wrap: func(s keygate.Store) keygate.Store { counter.Store = s; return counter }}, "")
	in := c.instances[0]
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: redisServer.addr})
	defer rdb.Close()

	// PostgreSQL: the first request of each of 50 new tokens, then each
	// again until every one is served from the cache. (A lookup during
	// which a change arrives, such as another of these tokens' creation, is
	// not cached: the next request reads the token again.)
	const tokens = 50
	secrets := make([]string, tokens)
	for i := range secrets {
		_, secrets[i] = c.token(in)
	}
	for round := 1; ; round++ {
		before, beforeOrgs := counter.tokens.Load(), counter.orgs.Load()
		for _, secret := range secrets {
			if a := in.get("/api/v1/organization", secret); a.status != http.StatusOK {
				t.Fatalf("%d %s", a.status, a.body)
			}
		}
		got, orgs := counter.tokens.Load()-before, counter.orgs.Load()-beforeOrgs
		t.Logf("round %d: %d requests with %d tokens: %d token statements, %d organization statements", round, tokens, tokens, got, orgs)
		if round == 1 && (got != tokens || orgs != 1) {
			t.Errorf("%d token and %d organization statements for the first request of %d tokens of one organization, want %d and 1", got, orgs, tokens, tokens)
		}
		if round > 1 && got == 0 && orgs == 0 {
			break
		}
		if round == 5 {
			t.Fatalf("the cache still reads the store in round %d: %d token statements", round, got)
		}
	}

	// Redis: requests on a rate-limited route, from 16 clients, once the
	// instance has loaded its scripts and read Redis's epoch (which it does
	// once, after its first decision). Each of 40 tokens sends its limit's
	// worth, so that every request is a decision Redis makes; a refusal
	// the instance remembers costs Redis nothing (below).
	in.get("/api/v1/limited", secrets[1])
	for deadline := time.Now().Add(5 * time.Second); rdb.Exists(ctx, redislimit.DefaultPrefix+"epoch").Val() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the instance did not read Redis's epoch within 5s of its first decision")
		}
		time.Sleep(10 * time.Millisecond)
	}
	const requests = 2000
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	passing := secrets[tokens-requests/limitPerMinute:]
	for range 16 {
		wg.Go(func() {
			for n := next.Add(1); n <= requests; n = next.Add(1) {
				if a := in.get("/api/v1/limited", passing[n%int64(len(passing))]); a.status != http.StatusOK {
					t.Errorf("%d %s", a.status, a.body)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(began)
	stats := redisInfo(t, rdb, "stats")
	commands := redisInfo(t, rdb, "commandstats")
	// commandstats counts the commands scripts run too (GET, TIME, SET):
	// what crosses the network is EVALSHA (EVAL once, for a script Redis
	// does not know yet) and HELLO per new connection.
	var roundTrips, scripts int64
	var names []string
	for name, v := range commands {
		n := field(v, "calls")
		if name == "cmdstat_info" || name == "cmdstat_config|resetstat" {
			continue
		}
		switch name {
		case "cmdstat_evalsha", "cmdstat_eval":
			scripts += n
			roundTrips += n
		case "cmdstat_hello":
			roundTrips += n
		}
		names = append(names, strings.TrimPrefix(name, "cmdstat_")+"="+strconv.FormatInt(n, 10))
	}
	slices.Sort(names)
	// The instance's heartbeat is one script call every 2 s.
	beats := int64(elapsed/(2*time.Second)) + 1
	in0, out0 := stats["total_net_input_bytes"], stats["total_net_output_bytes"]
	inBytes, _ := strconv.ParseInt(in0, 10, 64)
	outBytes, _ := strconv.ParseInt(out0, 10, 64)
	t.Logf("%d limited requests in %s: Redis commands %v; %.2f script calls per request (up to %d heartbeats included), %.0f bytes in and %.0f bytes out per request",
		requests, elapsed.Round(time.Millisecond), names, float64(scripts)/requests, beats, float64(inBytes)/requests, float64(outBytes)/requests)
	if scripts < requests || scripts > requests+beats {
		t.Errorf("%d script calls for %d limited requests, want one each (plus up to %d heartbeats)", scripts, requests, beats)
	}
	t.Logf("%d round trips to Redis in all (%d script calls, the rest new connections' HELLO); Redis spent %s µs per EVALSHA",
		roundTrips, scripts, usecPerCall(commands["cmdstat_evalsha"]))

	// A client hammering past its limit: each of the 16 clients may reach
	// Redis once before the first refusal is back and remembered, then the
	// instance answers the refusals itself until the window frees a
	// request, a minute from now.
	const refused = 1000
	next.Store(0)
	began = time.Now()
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= refused {
				if a := in.get("/api/v1/limited", passing[0]); a.status != http.StatusTooManyRequests {
					t.Errorf("over the limit: %d %s", a.status, a.body)
					return
				}
			}
		})
	}
	wg.Wait()
	after := redisInfo(t, rdb, "commandstats")
	hammered := field(after["cmdstat_evalsha"], "calls") + field(after["cmdstat_eval"], "calls") - scripts
	beats = int64(time.Since(began)/(2*time.Second)) + 1
	t.Logf("%d refused requests of one token: %d script calls (up to %d heartbeats included)", refused, hammered, beats)
	if hammered > 16+beats {
		t.Errorf("%d script calls for %d refusals of one token from 16 clients, want at most one per client (plus up to %d heartbeats)", hammered, refused, beats)
	}
}

// redisInfo returns one INFO section as name → value.
func redisInfo(t *testing.T, rdb *redis.Client, section string) map[string]string {
	t.Helper()
	text, err := rdb.Info(context.Background(), section).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(text, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			out[k] = v
		}
	}
	return out
}

// field reads name=value out of an INFO value such as
// "calls=3,usec=10,usec_per_call=3.33".
func field(v, name string) int64 {
	for _, kv := range strings.Split(v, ",") {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			n, _ := strconv.ParseInt(val, 10, 64)
			return n
		}
	}
	return 0
}

// usecPerCall reads usec_per_call out of an INFO commandstats value.
func usecPerCall(v string) string {
	for _, kv := range strings.Split(v, ",") {
		if k, val, ok := strings.Cut(kv, "="); ok && k == "usec_per_call" {
			return val
		}
	}
	return "?"
}
