package webhook

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzRetryAfter reads arbitrary Retry-After headers from a receiver.
// Whatever one says, the wait is never negative nor over a year; seconds
// are honoured as given and an HTTP date as the time until it (within the
// year), so a receiver can ask for a later retry (the dispatcher caps it at
// its last delay) but never, by overflowing a number, a negative wait.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"120", " 5 ", "0", "-1", "1.5", "Wed, 21 Oct 2026 07:28:00 GMT",
		"9223372036854775807", "9223372037", "99999999999999999999", "Sun, 06 Nov 1994 08:49:37 GMT", ""} {
		f.Add(s)
	}
	now := time.Date(2026, 10, 21, 7, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		got := retryAfter(v, now)
		if got < 0 {
			t.Fatalf("retryAfter(%q) = %v", v, got)
		}
		if got > maxRetryAfter {
			t.Fatalf("retryAfter(%q) = %v, more than %v", v, got, maxRetryAfter)
		}
		if s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && s > 0 {
			if want := time.Duration(min(s, int64(maxRetryAfter/time.Second))) * time.Second; got != want {
				t.Fatalf("retryAfter(%q) = %v, want %v", v, got, want)
			}
		}
		if d, err := http.ParseTime(v); err == nil && d.After(now) {
			if _, serr := strconv.Atoi(strings.TrimSpace(v)); serr != nil && got != min(d.Sub(now), maxRetryAfter) {
				t.Fatalf("retryAfter(%q) = %v, want %v", v, got, d.Sub(now))
			}
		}
	})
}
