// Package testenv gives tests what they need of the machine they run on,
// such as the Redis at KEYGATE_TEST_REDIS_URL. A test whose need is not
// met is skipped, except under CI (CI non-empty), where that fails it: CI
// never skips silently, so a suite that did not run cannot pass for one
// that did.
package testenv

import (
	"os"
	"testing"
)

// RedisURLEnv names the variable holding the test Redis's URL.
const RedisURLEnv = "KEYGATE_TEST_REDIS_URL"

// Missing ends t for want of what why names: it skips t, or under CI
// fails it.
func Missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s; CI must run every test (.ci/run provides what they need)", why)
	}
	t.Skip(why)
}

// RedisURL returns the test Redis's URL, ending t by Missing when
// RedisURLEnv is unset.
func RedisURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv(RedisURLEnv)
	if url == "" {
		Missing(t, RedisURLEnv+" is not set")
	}
	return url
}
