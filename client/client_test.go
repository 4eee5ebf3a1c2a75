package client_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/client"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/preset"
	"github.com/keygate/keygate/server"
)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// A service guarded by client.Middleware answers exactly as keygate's
// canskan preset would, with keygate running as a verify service.
func TestMiddlewareThroughARunningKeygate(t *testing.T) {
	ctx := context.Background()
	admin := freeAddr(t)
	cfg, err := config.Parse("test.yaml", []byte(`
data_dir: `+t.TempDir()+`
admin: {listen: `+admin+`}
apis:
  - name: events
    preset: canskan
    listen: `+freeAddr(t)+`
    upstream: http://127.0.0.1:9
    token_prefix: ev_
    scopes: [attendees:read]
    routes:
      - {methods: [GET], path: /attendees, access: token, scopes: [attendees:read]}
`))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(ctx, cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	store := srv.Store()
	org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free"}
	if err := manage.CreateOrganization(ctx, store, org, time.Now()); err != nil {
		t.Fatal(err)
	}
	tok, secret, err := manage.CreateToken(ctx, store, cfg.API("events"), org, keygate.TokenRequest{Name: "svc", Scopes: []string{"attendees:read"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, adminKey, err := manage.CreateAdminKey(ctx, store, "svc", time.Now())
	if err != nil {
		t.Fatal(err)
	}

	var seen *keygate.Identity
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = client.IdentityFrom(r.Context())
		_, _ = io.WriteString(w, "ok")
	})
	c := client.New("http://"+admin, adminKey, client.Options{CacheTTL: -1})
	svc := httptest.NewServer(c.Middleware("events", preset.CANSKAN())(app))
	defer svc.Close()

	call := func(auth string) (int, string, http.Header) {
		req, _ := http.NewRequest("GET", svc.URL+"/attendees", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if code, body, h := call("Bearer " + secret); code != 200 || body != "ok" || seen == nil || seen.TokenID != tok.ID || h.Get("X-RateLimit-Limit") != "60" {
		t.Fatalf("valid token: %d %q identity %+v headers %v", code, body, seen, h)
	}
	if code, body, _ := call(""); code != 401 || body != `{"message": "API token required."}` {
		t.Errorf("no token: %d %s", code, body)
	}
	if code, body, _ := call("Bearer ev_live_nope"); code != 401 || body != `{"message": "Invalid API token."}` {
		t.Errorf("bad token: %d %s", code, body)
	}
	if err := store.RevokeToken(ctx, tok.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		code, body, _ := call("Bearer " + secret)
		if code == 401 && body == `{"message": "Invalid API token."}` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoked token still passes: %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}

	down := client.New("http://127.0.0.1:9", adminKey, client.Options{})
	svc2 := httptest.NewServer(down.Middleware("events", preset.CANSKAN())(app))
	defer svc2.Close()
	resp, err := http.Get(svc2.URL + "/attendees")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || string(b) != `{"message": "Service Unavailable."}` {
		t.Errorf("keygate down: %d %s", resp.StatusCode, b)
	}
}

func TestCacheServesRepeatsWithinTTL(t *testing.T) {
	calls := 0
	kg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		_, _ = io.WriteString(w, `{"valid":true,"status":200,"identity":{"org":"org_1"}}`)
	}))
	defer kg.Close()
	c := client.New(kg.URL, "kgadm_x", client.Options{CacheTTL: time.Minute})
	for i := 0; i < 5; i++ {
		resp, err := c.Verify(context.Background(), client.Request{API: "a", Token: "t", Method: "GET", Path: "/x"})
		if err != nil || !resp.Valid || resp.Identity.OrganizationID != "org_1" {
			t.Fatalf("verify: %+v %v", resp, err)
		}
	}
	if calls != 1 {
		t.Errorf("keygate asked %d times for one token within the TTL, want 1", calls)
	}
	if _, err := c.Verify(context.Background(), client.Request{API: "a", Token: "other", Method: "GET", Path: "/x"}); err != nil || calls != 2 {
		t.Errorf("a different token must be asked for: calls %d err %v", calls, err)
	}
}

// A Go service that honours method override headers behind the middleware
// (gorilla/handlers' HTTPMethodOverrideHandler and the like) serves the
// method the header names: keygate must judge that header as the gateway
// does, or a public POST route becomes a DELETE of the same path.
func TestMiddlewareRefusesAMethodOverride(t *testing.T) {
	ctx := context.Background()
	admin := freeAddr(t)
	cfg, err := config.Parse("test.yaml", []byte(`
data_dir: `+t.TempDir()+`
admin: {listen: `+admin+`}
apis:
  - name: events
    preset: canskan
    listen: `+freeAddr(t)+`
    upstream: http://127.0.0.1:9
    token_prefix: ev_
    scopes: [attendees:read]
    routes:
      - {methods: [POST], path: /feedback, access: public}
`))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(ctx, cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	_, adminKey, err := manage.CreateAdminKey(ctx, srv.Store(), "svc", time.Now())
	if err != nil {
		t.Fatal(err)
	}

	var served []string
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served = append(served, r.Method)
		_, _ = io.WriteString(w, "ok")
	})
	honourOverride := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if m := r.Header.Get("X-HTTP-Method-Override"); r.Method == http.MethodPost && m != "" {
				r.Method = m
			}
			next.ServeHTTP(w, r)
		})
	}
	// The cache is on: a pass without an override must not answer for a
	// request with one.
	c := client.New("http://"+admin, adminKey, client.Options{CacheTTL: time.Minute})
	svc := httptest.NewServer(c.Middleware("events", preset.CANSKAN())(honourOverride(app)))
	defer svc.Close()

	post := func(name, value string) (int, string) {
		req, _ := http.NewRequest("POST", svc.URL+"/feedback", nil)
		if name != "" {
			req.Header[name] = []string{value}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("", ""); code != 200 || body != "ok" {
		t.Fatalf("plain POST: %d %s", code, body)
	}
	for _, h := range [][2]string{
		{"X-Http-Method-Override", "DELETE"},
		{"X-HTTP-Method", "PUT"},
		{"X_Method_Override", "DELETE"},
	} {
		if code, body := post(h[0], h[1]); code != 400 || body != `{"message": "Bad Request."}` {
			t.Errorf("%s: %s: %d %s, want the preset's 400", h[0], h[1], code, body)
		}
	}
	if code, body := post("X-Http-Method-Override", "post"); code != 200 || body != "ok" {
		t.Errorf("an override naming the request's own method: %d %s", code, body)
	}
	for _, m := range served {
		if m != http.MethodPost && m != "post" {
			t.Errorf("the service served %s on a route checked for POST", m)
		}
	}
}

// keygate never lets more requests through than a route's limit in any
// window: a cached pass must not serve requests that keygate never
// counted, for one token or one address.
func TestMiddlewareCountsEveryRequestOnALimitedRoute(t *testing.T) {
	ctx := context.Background()
	admin := freeAddr(t)
	cfg, err := config.Parse("test.yaml", []byte(`
data_dir: `+t.TempDir()+`
admin: {listen: `+admin+`}
apis:
  - name: events
    preset: canskan
    listen: `+freeAddr(t)+`
    upstream: http://127.0.0.1:9
    token_prefix: ev_
    scopes: [attendees:read]
    rate_limits:
      public: {key: ip, limit: 2, period: 1h}
      token: {key: token, limit: 2, period: 1h}
    routes:
      - {methods: [GET], path: /attendees, access: token, scopes: [attendees:read]}
      - {methods: [GET], path: /status, access: public}
`))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(ctx, cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	store := srv.Store()
	org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free"}
	if err := manage.CreateOrganization(ctx, store, org, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, secret, err := manage.CreateToken(ctx, store, cfg.API("events"), org, keygate.TokenRequest{Name: "svc", Scopes: []string{"attendees:read"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, adminKey, err := manage.CreateAdminKey(ctx, store, "svc", time.Now())
	if err != nil {
		t.Fatal(err)
	}

	served := 0
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served++
		_, _ = io.WriteString(w, "ok")
	})
	c := client.New("http://"+admin, adminKey, client.Options{CacheTTL: time.Hour})
	svc := httptest.NewServer(c.Middleware("events", preset.CANSKAN())(app))
	defer svc.Close()

	for _, route := range []struct{ path, auth string }{{"/attendees", "Bearer " + secret}, {"/status", ""}} {
		served = 0
		var code int
		var body string
		for i := 0; i < 3; i++ {
			req, _ := http.NewRequest("GET", svc.URL+route.path, nil)
			if route.auth != "" {
				req.Header.Set("Authorization", route.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			code, body = resp.StatusCode, string(b)
		}
		if served != 2 || code != 429 || body != `{"message": "Too Many Attempts."}` {
			t.Errorf("%s, limit 2: the service served %d of 3 requests; the third got %d %s", route.path, served, code, body)
		}
	}
}

// Options.MaxEntries bounds the cache: past it, older answers are dropped
// and keygate asked again.
func TestCacheKeepsAtMostMaxEntries(t *testing.T) {
	calls := 0
	kg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		_, _ = io.WriteString(w, `{"valid":true,"status":200}`)
	}))
	defer kg.Close()
	c := client.New(kg.URL, "kgadm_x", client.Options{CacheTTL: time.Hour, MaxEntries: 1})
	for _, token := range []string{"a", "b", "a"} {
		if _, err := c.Verify(context.Background(), client.Request{API: "a", Token: token, Method: "GET", Path: "/x"}); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 3 {
		t.Errorf("keygate asked %d times for a, b, a with room for one answer, want 3", calls)
	}
}
