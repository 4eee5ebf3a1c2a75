package redislimit_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/logtest"
	"github.com/keygate/keygate/ratelimit"
	"github.com/keygate/keygate/ratelimit/redislimit"
	"github.com/redis/go-redis/v9"
)

type logBuffer struct{ logtest.Buffer }

func (l *logBuffer) count(s string) int {
	return strings.Count(l.String(), s)
}

// newFallback puts a Fallback in front of the Redis at addr, with a client
// set up as keygate's should be: no retries of its own, short timeouts,
// so a dead Redis costs a request milliseconds.
func newFallback(t *testing.T, addr string, mode ratelimit.Mode) (*ratelimit.Fallback, *logBuffer) {
	client := redis.NewClient(&redis.Options{
		Addr: addr, MaxRetries: -1, DialerRetries: 1,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond,
	})
	local := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	t.Cleanup(func() { client.Close(); local.Close() })
	logs := &logBuffer{}
	f, err := ratelimit.NewFallback(redislimit.New(client, redislimit.Options{}), local, ratelimit.FallbackOptions{
		Mode:          mode,
		ProbeInterval: 20 * time.Millisecond,
		Logger:        slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return f, logs
}

func allowN(t *testing.T, f *ratelimit.Fallback, key string, limit, n int) (allowed int, errs []error) {
	t.Helper()
	for range n {
		res, err := f.Allow(context.Background(), key, limit, time.Minute)
		if err != nil {
			errs = append(errs, err)
		} else if res.Allowed {
			allowed++
		}
	}
	return allowed, errs
}

func TestRedisUnreachableLocalModeLimitsInMemory(t *testing.T) {
	f, logs := newFallback(t, "127.0.0.1:1", ratelimit.ModeLocal)
	allowed, errs := allowN(t, f, "ip:192.0.2.1", 5, 20)
	if len(errs) > 0 || allowed != 5 {
		t.Fatalf("allowed %d of 20 with limit 5 (errors %v), want 5 and no errors", allowed, errs)
	}
	if !f.Degraded() {
		t.Fatal("Degraded() = false with Redis unreachable")
	}
	if n := logs.count("level=WARN"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, logs.String())
	}
}

func TestRedisUnreachableClosedModeIsUnavailable(t *testing.T) {
	f, _ := newFallback(t, "127.0.0.1:1", ratelimit.ModeClosed)
	_, errs := allowN(t, f, "ip:192.0.2.1", 5, 3)
	if len(errs) != 3 {
		t.Fatalf("%d errors of 3 requests, want 3", len(errs))
	}
	for _, err := range errs {
		if keygate.ErrorCode(err) != keygate.EUNAVAILABLE {
			t.Fatalf("error %v, want code %s", err, keygate.EUNAVAILABLE)
		}
	}
	if !f.Degraded() {
		t.Fatal("Degraded() = false with Redis unreachable")
	}
}

// TestRedisKilledAndRestarted kills the Redis a Fallback uses between two
// requests, then starts it again on the same port.
func TestRedisKilledAndRestarted(t *testing.T) {
	for _, mode := range []ratelimit.Mode{ratelimit.ModeLocal, ratelimit.ModeClosed} {
		t.Run(string(mode), func(t *testing.T) {
			server := startRedisServer(t)
			f, logs := newFallback(t, server.addr(), mode)

			if allowed, errs := allowN(t, f, "tok:1", 5, 2); allowed != 2 || errs != nil {
				t.Fatalf("with Redis up: allowed %d of 2, errors %v", allowed, errs)
			}
			// The Fallback learns Redis's epoch in the background after
			// its first decision; wait for it, so that the restart below
			// is seen as Redis losing its data (otherwise whether it is
			// depends on how fast the kill follows the decisions).
			waitForEpoch(t, server)
			server.stop()

			allowed, errs := allowN(t, f, "tok:1", 5, 10)
			switch mode {
			case ratelimit.ModeLocal:
				// The memory limiter counted the two requests Redis
				// allowed too: the window goes on where it was.
				if allowed != 3 || errs != nil {
					t.Fatalf("Redis down, local mode: allowed %d of 10, errors %v; want the 3 left of 5 and none", allowed, errs)
				}
			case ratelimit.ModeClosed:
				if allowed != 0 || len(errs) != 10 || keygate.ErrorCode(errs[0]) != keygate.EUNAVAILABLE {
					t.Fatalf("Redis down, closed mode: allowed %d, errors %v; want 10 %s", allowed, errs, keygate.EUNAVAILABLE)
				}
			}
			if !f.Degraded() {
				t.Fatal("Degraded() = false after Redis was killed")
			}

			server.start()
			deadline := time.Now().Add(5 * time.Second)
			for f.Degraded() {
				if time.Now().After(deadline) {
					t.Fatal("still degraded 5s after Redis came back")
				}
				time.Sleep(5 * time.Millisecond)
				allowN(t, f, "tok:other", 5, 1)
			}
			// The restarted Redis is empty (no persistence) and its epoch
			// changed: it is given every open window of this instance.
			// In local mode that is 2 before the outage and 3 during it,
			// so the window is full; in closed mode the 2 allowed before
			// the outage, nothing having been allowed during it.
			wantAllowed, wantRemaining := true, 2
			if mode == ratelimit.ModeLocal {
				wantAllowed, wantRemaining = false, 0
				for logs.count("seeded") == 0 {
					if time.Now().After(deadline) {
						t.Fatalf("Redis not seeded with the outage's counts:\n%s", logs.String())
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			res, err := f.Allow(context.Background(), "tok:1", 5, time.Minute)
			if err != nil || res.Allowed != wantAllowed || res.Remaining != wantRemaining {
				t.Fatalf("after recovery: %+v, %v; want allowed %v by Redis with Remaining %d", res, err, wantAllowed, wantRemaining)
			}
			if logs.count("level=WARN") != 2 || logs.count("came back without its data") != 1 || logs.count("rate limit backend recovered") != 1 {
				t.Fatalf("want two warnings (the outage, the data lost) and one recovery, got:\n%s", logs.String())
			}
		})
	}
}

// waitForEpoch waits until the Redis at server holds the limiter's epoch
// key, and a little longer for the Fallback that asked to store the
// answer.
func waitForEpoch(t *testing.T, server *redisServer) {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: server.addr(), MaxRetries: -1})
	defer client.Close()
	deadline := time.Now().Add(5 * time.Second)
	for client.Exists(context.Background(), redislimit.DefaultPrefix+"epoch").Val() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the Fallback never asked Redis for its epoch")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
}
