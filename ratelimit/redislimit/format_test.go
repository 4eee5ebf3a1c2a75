package redislimit_test

import (
	"context"
	_ "embed"
	"encoding/binary"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate/ratelimit"
	"github.com/keygate/keygate/ratelimit/redislimit"
)

// slidingWindowV1 is the window script of keygate versions that stored
// 116 bytes per key: width, newest bucket and 25 counters, no sum.
//
//go:embed testdata/sliding_window_v1.lua
var slidingWindowV1 string

// TestRedisScriptSharesKeysWithTheEarlierFormat runs one random sequence of
// decisions three times: on a key only the earlier script decides, on one
// only the current script decides, and on one where each decision goes to
// either at random, as during a rolling upgrade. Every answer must be the
// same, each key must hold the same counters, and the current format's sum
// and oldest bucket must match its counters.
func TestRedisScriptSharesKeysWithTheEarlierFormat(t *testing.T) {
	client := newClient(t)
	prefix := uniquePrefix(t, client)
	ctx := context.Background()
	v1 := redis.NewScript(slidingWindowV1)
	runV1 := func(key string, limit int, width, now int64, seed int) []int64 {
		t.Helper()
		ttl := width*(ratelimit.Buckets+1)/1000 + 1
		reply, err := v1.Run(ctx, client, []string{key}, limit, width, ttl, ratelimit.Buckets+1, now, seed).Int64Slice()
		if err != nil {
			t.Fatal(err)
		}
		return reply
	}
	runV2 := func(key string, limit int, width, now int64, seed int) []int64 {
		t.Helper()
		reply, err := redislimit.RunScript(ctx, client, key, limit, width, now, seed)
		if err != nil {
			t.Fatal(err)
		}
		return reply
	}
	old, current, mixed := prefix+"v1", prefix+"v2", prefix+"mixed"

	rng := rand.New(rand.NewPCG(12, 34))
	periods := []time.Duration{time.Second, 3 * time.Second}
	period, limit := periods[0], 5
	now := int64(1_700_000_000_000_000)
	v1Decided, v2Decided := 0, 0
	for step := range 3000 {
		width := ratelimit.BucketWidth(period.Microseconds())
		switch r := rng.IntN(100); {
		case r < 50: // within a bucket or the next
			now += rng.Int64N(width)
		case r < 80: // a few buckets on
			now += rng.Int64N(6 * width)
		case r < 90: // across most or all of the window
			now += rng.Int64N(2 * int64(ratelimit.Buckets+1) * width)
		case r < 92: // a clock that steps back
			now -= rng.Int64N(3 * width)
		case r < 95:
			limit = 1 + rng.IntN(12)
		case r < 97:
			period = periods[rng.IntN(len(periods))]
			width = ratelimit.BucketWidth(period.Microseconds())
		}
		seed := 0
		if rng.IntN(40) == 0 {
			seed = 1 + rng.IntN(4)
		}
		want := runV1(old, limit, width, now, seed)
		if got := runV2(current, limit, width, now, seed); !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d (limit %d, width %d, seed %d): current script answered %v, earlier %v", step, limit, width, seed, got, want)
		}
		var got []int64
		if rng.IntN(2) == 0 {
			got = runV1(mixed, limit, width, now, seed)
			v1Decided++
		} else {
			got = runV2(mixed, limit, width, now, seed)
			v2Decided++
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d (limit %d, width %d, seed %d): key shared by both scripts answered %v, want %v", step, limit, width, seed, got, want)
		}
		checkSameCounters(t, client, old, current)
		checkSameCounters(t, client, old, mixed)
	}
	t.Logf("shared key: %d decisions by the earlier script, %d by the current one", v1Decided, v2Decided)
}

// checkSameCounters compares the 116 bytes both formats share and, where
// b has the current format's tail, checks that the tail holds the sum of
// the window's counters and its oldest counted bucket.
func checkSameCounters(t *testing.T, client *redis.Client, a, b string) {
	t.Helper()
	ctx := context.Background()
	ra, _ := client.Get(ctx, a).Bytes()
	rb, _ := client.Get(ctx, b).Bytes()
	if len(ra) != 116 || len(rb) != 116 && len(rb) != 132 {
		t.Fatalf("%s holds %d bytes, %s holds %d", a, len(ra), b, len(rb))
	}
	if string(ra) != string(rb[:116]) {
		t.Fatalf("counters differ:\n%x\n%x", ra, rb[:116])
	}
	if len(rb) == 116 {
		return
	}
	newest := int64(binary.LittleEndian.Uint64(rb[8:]))
	var sum, oldest int64
	for i := newest - ratelimit.Buckets; i <= newest; i++ {
		c := int64(binary.LittleEndian.Uint32(rb[16+4*(i%(ratelimit.Buckets+1)):]))
		if c > 0 && sum == 0 {
			oldest = i
		}
		sum += c
	}
	gotSum, gotOldest := int64(binary.LittleEndian.Uint64(rb[116:])), int64(binary.LittleEndian.Uint64(rb[124:]))
	if gotSum != sum || sum > 0 && gotOldest != oldest {
		t.Fatalf("%s keeps sum %d and oldest bucket %d, its counters say %d and %d", b, gotSum, gotOldest, sum, oldest)
	}
}
