package ratelimit_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/keygate/keygate/ratelimit"
)

func TestSetHeaders(t *testing.T) {
	reset := time.Unix(1767225600, 250_000_000) // a quarter second past
	for _, tt := range []struct {
		name string
		res  ratelimit.Result
		want map[string]string
	}{
		{"allowed", ratelimit.Result{Allowed: true, Limit: 10, Remaining: 9, ResetAt: reset},
			map[string]string{"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "9", "X-RateLimit-Reset": "1767225601", "Retry-After": ""}},
		{"refused", ratelimit.Result{Limit: 60, ResetAt: time.Unix(1767225600, 0), RetryAfter: 42 * time.Second},
			map[string]string{"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1767225600", "Retry-After": "42"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// A canonical spelling already there is replaced, not doubled.
			h := http.Header{"X-Ratelimit-Limit": {"1"}, "X-Ratelimit-Remaining": {"1"}}
			tt.res.SetHeaders(h)
			if len(h["X-Ratelimit-Limit"])+len(h["X-Ratelimit-Remaining"])+len(h["X-Ratelimit-Reset"]) != 0 {
				t.Errorf("canonical spellings left: %v", h)
			}
			// Looked up by exact spelling: the seeds send X-RateLimit-*.
			for k, v := range tt.want {
				got := ""
				if vs := h[k]; len(vs) == 1 {
					got = vs[0]
				}
				if got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestRetryAfterRoundsUpToWholeSeconds(t *testing.T) {
	for wait, want := range map[time.Duration]time.Duration{
		0:                       time.Second,
		time.Nanosecond:         time.Second,
		time.Second:             time.Second,
		time.Second + 1:         2 * time.Second,
		59*time.Second + 999999: time.Minute,
	} {
		if got := ratelimit.RetryAfter(wait); got != want {
			t.Errorf("RetryAfter(%s) = %s, want %s", wait, got, want)
		}
	}
}
