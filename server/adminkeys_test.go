package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/server"
)

// adminKeyLookups counts the admin key lookups that reach the store.
type adminKeyLookups struct {
	keygate.Store
	n atomic.Int64
}

func (s *adminKeyLookups) FindAdminKeyByHash(ctx context.Context, hash string) (*keygate.AdminKey, error) {
	s.n.Add(1)
	return s.Store.FindAdminKeyByHash(ctx, hash)
}

// An address that sends 30 wrong admin keys within a minute, to the
// management API and the verify API together, has its next request with
// an admin key refused 429 without a store lookup, the right key's
// included, as a spent failed_auth budget refuses API tokens. Another
// address is not affected, nor is a request without an admin key. A
// malformed key is refused without a lookup, on the verify API as on the
// management API.
func TestWrongAdminKeysSpendABudgetPerAddress(t *testing.T) {
	admin := freeAddr(t)
	cfg := parseConfig(t, `
data_dir: `+t.TempDir()+`
admin: {listen: `+admin+`}
trusted_proxies: [127.0.0.1]
`+eventsAPI(freeAddr(t)))
	st, err := server.OpenStore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	store := &adminKeyLookups{Store: st}
	startServer(t, newServer(t, cfg, server.Options{Store: store, Logger: quietLogger()}))
	_, rightKey, err := manage.CreateAdminKey(context.Background(), st, "ops", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	send := func(method, path, ip, key string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+admin+path, strings.NewReader(`{}`))
		req.Header.Set("X-Forwarded-For", ip)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	const guesser, operator = "203.0.113.7", "198.51.100.9"

	if status, _, _ := send("POST", "/api/v1/verify", operator, "kgadm_"+strings.Repeat("A", 36)); status != 401 || store.n.Load() != 0 {
		t.Fatalf("malformed key on the verify API: %d after %d lookups; want 401 without one", status, store.n.Load())
	}
	if status, _, _ := send("GET", "/api/v1/me", operator, "kgadm_nope"); status != 401 || store.n.Load() != 0 {
		t.Fatalf("malformed key on the management API: %d after %d lookups; want 401 without one", status, store.n.Load())
	}
	for i := 1; i <= 30; i++ {
		method, path := "GET", "/api/v1/me"
		if i%2 == 0 {
			method, path = "POST", "/api/v1/verify"
		}
		wrong := keygate.GenerateTokenSecret(manage.AdminKeyPrefix)
		if status, body, _ := send(method, path, guesser, wrong); status != 401 || !strings.Contains(body, "Invalid admin key.") || store.n.Load() != int64(i) {
			t.Fatalf("wrong key %d (%s %s): %d %s after %d lookups", i, method, path, status, body, store.n.Load())
		}
	}
	for _, tc := range []struct{ what, method, path, key string }{
		{"31st wrong key", "GET", "/api/v1/me", keygate.GenerateTokenSecret(manage.AdminKeyPrefix)},
		{"wrong key on the verify API", "POST", "/api/v1/verify", keygate.GenerateTokenSecret(manage.AdminKeyPrefix)},
		{"right key", "GET", "/api/v1/me", rightKey},
	} {
		status, body, h := send(tc.method, tc.path, guesser, tc.key)
		if status != 429 || !strings.Contains(body, `"code":"rate_limited"`) || h.Get("Retry-After") == "" || h.Get("X-RateLimit-Remaining") != "0" {
			t.Errorf("%s from the spent address: %d %s, Retry-After %q", tc.what, status, body, h.Get("Retry-After"))
		}
		if store.n.Load() != 30 {
			t.Errorf("%s from the spent address reached the store: %d lookups, want 30", tc.what, store.n.Load())
		}
	}
	if status, body, _ := send("GET", "/api/v1/me", guesser, ""); status != 401 || !strings.Contains(body, "Log in") {
		t.Errorf("no admin key from the spent address: %d %s; want the session check's 401", status, body)
	}
	if status, body, _ := send("GET", "/api/v1/me", operator, rightKey); status != 200 {
		t.Errorf("right key from another address: %d %s", status, body)
	}
	if status, body, _ := send("POST", "/api/v1/verify", operator, keygate.GenerateTokenSecret(manage.AdminKeyPrefix)); status != 401 {
		t.Errorf("wrong key from another address: %d %s; want 401", status, body)
	}
}
