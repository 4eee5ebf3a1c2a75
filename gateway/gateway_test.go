package gateway_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/clientip"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/identity"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/preset"
	"github.com/keygate/keygate/ratelimit"
	"github.com/keygate/keygate/ratelimit/limitertest"
	"github.com/keygate/keygate/ratelimit/redislimit"
	"github.com/keygate/keygate/sqlite"
)

// countingStore counts token lookups so tests can prove malformed tokens
// never reach storage.
type countingStore struct {
	*sqlite.Store
	lookups atomic.Int64
}

func (c *countingStore) FindTokenByHash(ctx context.Context, hash string) (*keygate.Token, error) {
	c.lookups.Add(1)
	return c.Store.FindTokenByHash(ctx, hash)
}

// upstreamSeen is what the test upstream echoes back: the headers it got.
type upstreamSeen struct {
	Path   string      `json:"path"`
	Header http.Header `json:"header"`
}

type fixture struct {
	t        testing.TB
	store    *countingStore
	dbPath   string
	org      *keygate.Organization
	upstream *httptest.Server
	signer   *identity.Signer
	verifier *identity.Verifier
	menus    *keygate.API
	events   *keygate.API
	menusGW  *gateway.Gateway
	eventsGW *gateway.Gateway
	tokens   *gateway.Tokens
	now      time.Time
	// applied counts, by id, the changes the cache has applied from the
	// feed.
	applied appliedChanges
}

// appliedChanges counts changes by id.
type appliedChanges struct {
	mu sync.Mutex
	n  map[string]int
}

func (a *appliedChanges) count(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n[id]
}

// recordingFeed is a store's change feed that counts, by id, the changes
// delivered once the callback has applied them.
type recordingFeed struct {
	keygate.ChangeFeed
	applied *appliedChanges
}

func (r *recordingFeed) WatchChanges(ctx context.Context, following func(bool), fn func(keygate.Change)) error {
	return r.ChangeFeed.WatchChanges(ctx, following, func(c keygate.Change) {
		fn(c)
		r.applied.mu.Lock()
		if r.applied.n == nil {
			r.applied.n = map[string]int{}
		}
		r.applied.n[c.ID]++
		r.applied.mu.Unlock()
	})
}

// waitApplied waits until the cache has applied n changes to id from the
// feed: after a store write, so a change still on its way cannot drop
// what the test then puts in the cache.
func (f *fixture) waitApplied(id string, n int) {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.applied.count(id) < n {
		if time.Now().After(deadline) {
			f.t.Fatalf("the cache applied %d changes to %s, want %d", f.applied.count(id), id, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func menusAPI(upstream string) *keygate.API {
	p := preset.CannMenus()
	return &keygate.API{
		Name: "cannmenus", Preset: p, Upstream: upstream, FailedAuthRateLimit: p.FailedAuthRateLimit,
		Tokens: keygate.TokenPolicy{BasePrefix: "cm_", Scopes: []string{"products:read", "analytics:read"}, AllowNever: true, MaxActiveTokens: p.MaxActiveTokens},
		Routes: []keygate.Route{
			{Methods: []string{"GET"}, Path: "/v2/products", Access: keygate.AccessToken, Scopes: []string{"products:read"},
				Entitlements: map[string]string{"states": "states", "brands": "brands"}},
			{Methods: []string{"GET"}, Path: "/v2/analytics", Access: keygate.AccessToken, Scopes: []string{"analytics:read"}, Plans: []string{"pro"}},
			{Methods: []string{"POST"}, Path: "/v2/upload", Access: keygate.AccessToken},
		},
	}
}

func eventsAPI(upstream string) *keygate.API {
	p := preset.CANSKAN()
	return &keygate.API{
		Name: "canskan", Preset: p, Upstream: upstream,
		Tokens:          keygate.TokenPolicy{BasePrefix: "csk_", Scopes: []string{"attendees:read", "webhooks:manage"}},
		PublicRateLimit: p.PublicRateLimit, TokenRateLimit: p.TokenRateLimit, FailedAuthRateLimit: p.FailedAuthRateLimit,
		Routes: []keygate.Route{
			{Methods: []string{"GET"}, Path: "/p/{code}", Access: keygate.AccessPublic},
			{Methods: []string{"GET"}, Path: "/api/v1/attendees", Access: keygate.AccessToken, Scopes: []string{"attendees:read"}},
			{Methods: []string{"GET"}, Path: "/api/v1/webhooks", Access: keygate.AccessToken, Scopes: []string{"webhooks:manage"}},
		},
	}
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, dbPath: filepath.Join(t.TempDir(), "keygate.db"), now: time.Now()}
	st, err := sqlite.Open(ctx, f.dbPath, sqlite.WithPollInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.store = &countingStore{Store: st}
	f.org = &keygate.Organization{Slug: "demo", Name: "Demo", Plan: "free",
		Entitlements: keygate.Entitlements{States: []string{"California", "Colorado", "Michigan"}}, CreatedAt: f.now}
	if err := st.CreateOrganization(ctx, f.org); err != nil {
		t.Fatal(err)
	}
	f.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(upstreamSeen{Path: r.URL.RequestURI(), Header: r.Header})
	}))
	t.Cleanup(f.upstream.Close)

	key, _ := identity.NewSigningKey()
	signer, _ := identity.NewSigner(key)
	f.signer, f.verifier = signer, identity.NewVerifier(signer.JWKS())
	f.tokens = gateway.NewTokens(f.store, gateway.TokensOptions{})
	watch, cancel := context.WithCancel(ctx)
	followed := f.tokens.Follow(watch, &recordingFeed{ChangeFeed: st, applied: &f.applied})
	// Follow must be done with the database before the store closes and
	// its directory is removed.
	t.Cleanup(func() { cancel(); <-followed })
	waitUntilFollowing(t, f.tokens)
	limiter := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	t.Cleanup(func() { limiter.Close() })
	resolver, _ := clientip.New(nil)
	f.menus, f.events = menusAPI(f.upstream.URL), eventsAPI(f.upstream.URL)
	for _, pair := range []struct {
		api *keygate.API
		gw  **gateway.Gateway
	}{{f.menus, &f.menusGW}, {f.events, &f.eventsGW}} {
		g, err := gateway.New(gateway.Config{API: pair.api, Tokens: f.tokens, Limiter: limiter, ClientIP: resolver, Signer: signer, MaxBodyBytes: 1024})
		if err != nil {
			t.Fatal(err)
		}
		*pair.gw = g
	}
	return f
}

// waitUntilFollowing waits until the cache's feed has read where it
// begins: every change committed from then on reaches the cache, and none
// committed before does, so nothing still on its way can drop (or keep
// from being cached) what a test reads next.
func waitUntilFollowing(t testing.TB, tokens *gateway.Tokens) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !tokens.Following(); {
		if time.Now().After(deadline) {
			t.Fatal("the token cache did not start following changes within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// token creates a token on api and returns its secret.
func (f *fixture) token(api *keygate.API, scopes []string, expiry keygate.ExpiryChoice, createdAt time.Time) (*keygate.Token, string) {
	f.t.Helper()
	tok, secret, err := keygate.NewToken(api.Tokens, keygate.TokenRequest{OrganizationID: f.org.ID, API: api.Name, Name: "test", Scopes: scopes, Expiry: expiry}, createdAt)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.store.CreateToken(context.Background(), tok, 0); err != nil {
		f.t.Fatal(err)
	}
	f.waitApplied(tok.ID, 1)
	return tok, secret
}

type response struct {
	status int
	header http.Header
	body   string
}

func serve(h http.Handler, method, target string, header map[string][]string) response {
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = "203.0.113.7:40000"
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
}

func expect(t *testing.T, name string, got response, status int, body string) {
	t.Helper()
	if got.status != status || got.body != body {
		t.Errorf("%s: got %d %q, want %d %q", name, got.status, got.body, status, body)
	}
	if got.status >= 400 && got.header.Get("Content-Type") != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", name, got.header.Get("Content-Type"))
	}
}

// rateHeader reads a rate limit header by its exact spelling, which is part
// of what the presets reproduce.
func rateHeader(r response, name string) string {
	if v := r.header[name]; len(v) == 1 {
		return v[0]
	}
	return ""
}

const cmNotFound = `{"detail": "Not Found"}`

func TestCannMenusSeedExampleForwardsWithIdentity(t *testing.T) {
	f := newFixture(t)
	tok, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	got := serve(f.menusGW, "GET", "/v2/products?states=California&page=1", map[string][]string{
		"X-Token":            {secret},
		"X-Keygate-Identity": {"forged"},
		"X-Keygate-Org":      {"org_evil"},
	})
	if got.status != 200 {
		t.Fatalf("status %d body %s", got.status, got.body)
	}
	var seen upstreamSeen
	if err := json.Unmarshal([]byte(got.body), &seen); err != nil {
		t.Fatal(err)
	}
	if seen.Path != "/v2/products?states=California&page=1" {
		t.Errorf("upstream saw path %q", seen.Path)
	}
	if seen.Header.Get("X-Token") != "" || strings.Contains(got.body, secret) {
		t.Error("the token header reached the upstream")
	}
	if v := seen.Header.Values("X-Keygate-Org"); len(v) != 1 || v[0] != f.org.ID {
		t.Errorf("X-Keygate-Org %v, want [%s]", v, f.org.ID)
	}
	if seen.Header.Get("X-Keygate-Token-Id") != tok.ID || seen.Header.Get("X-Keygate-Scopes") != "products:read" {
		t.Errorf("identity headers %v", seen.Header)
	}
	id, err := f.verifier.Verify(seen.Header.Get("X-Keygate-Identity"), "cannmenus")
	if err != nil {
		t.Fatalf("identity JWT does not verify: %v", err)
	}
	if id.OrganizationID != f.org.ID || id.Plan != "free" || strings.Join(id.Entitlements.States, ",") != "California,Colorado,Michigan" {
		t.Errorf("identity %+v", id)
	}
}

func TestCannMenusBadTokensAllAnswerNotFoundWithoutStorage(t *testing.T) {
	f := newFixture(t)
	_, good := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	_, canskan := f.token(f.events, nil, keygate.Expiry90Days, f.now)
	badChecksum := good[:len(good)-1] + string("0123456789"[(strings.IndexByte("0123456789", good[len(good)-1])+1)%10])
	if good[len(good)-1] < '0' || good[len(good)-1] > '9' {
		badChecksum = good[:len(good)-1] + "0"
		if badChecksum == good {
			badChecksum = good[:len(good)-1] + "1"
		}
	}
	cases := map[string]map[string][]string{
		"no header":         nil,
		"empty header":      {"X-Token": {""}},
		"whitespace only":   {"X-Token": {"   "}},
		"10 KB token":       {"X-Token": {strings.Repeat("a", 10<<10)}},
		"non-ASCII":         {"X-Token": {"cm_live_ñññññññññññññññññññññññññññññ"}},
		"wrong prefix":      {"X-Token": {canskan}},
		"bad checksum":      {"X-Token": {badChecksum}},
		"two X-Token":       {"X-Token": {good, good}},
		"Bearer is ignored": {"Authorization": {"Bearer " + good}},
		"scheme in X-Token": {"X-Token": {"Bearer " + good}},
	}
	for name, header := range cases {
		got := serve(f.menusGW, "GET", "/v2/products", header)
		expect(t, name, got, 404, cmNotFound)
	}
	if n := f.store.lookups.Load(); n != 0 {
		t.Errorf("malformed tokens caused %d storage lookups, want 0", n)
	}
	// A well-formed token that does not exist is looked up once and refused alike.
	unknown := keygate.GenerateTokenSecret("cm_live_")
	expect(t, "unknown token", serve(f.menusGW, "GET", "/v2/products", map[string][]string{"X-Token": {unknown}}), 404, cmNotFound)
	// Whitespace around a valid token is ignored, as HTTP ignores it.
	if got := serve(f.menusGW, "GET", "/v2/products", map[string][]string{"X-Token": {"  " + good + "\t"}}); got.status != 200 {
		t.Errorf("token with surrounding whitespace: %d %s", got.status, got.body)
	}
}

func TestPresetRefusalsAreExact(t *testing.T) {
	f := newFixture(t)
	_, products := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	_, expiredCM := f.token(f.menus, []string{"products:read"}, keygate.Expiry7Days, f.now.Add(-8*24*time.Hour))
	_, attendees := f.token(f.events, []string{"attendees:read"}, keygate.Expiry90Days, f.now)
	_, expiredCS := f.token(f.events, []string{"attendees:read"}, keygate.Expiry7Days, f.now.Add(-8*24*time.Hour))
	xt := func(s string) map[string][]string { return map[string][]string{"X-Token": {s}} }
	bearer := func(s string) map[string][]string { return map[string][]string{"Authorization": {"Bearer " + s}} }

	expect(t, "cm expired", serve(f.menusGW, "GET", "/v2/products", xt(expiredCM)), 404, cmNotFound)
	expect(t, "cm missing scope", serve(f.menusGW, "GET", "/v2/analytics", xt(products)), 403, `{"detail": "Token does not have access to this endpoint."}`)
	expect(t, "cm entitlement", serve(f.menusGW, "GET", "/v2/products?states=California,New%20York", xt(products)), 403, `{"detail": "Your organization does not have access to state New York."}`)
	expect(t, "cm entitlement repeated param", serve(f.menusGW, "GET", "/v2/products?states=Michigan&states=oregon", xt(products)), 403, `{"detail": "Your organization does not have access to state oregon."}`)
	expect(t, "cm unknown route", serve(f.menusGW, "GET", "/v3/nothing", xt(products)), 404, cmNotFound)
	expect(t, "cm wrong method", serve(f.menusGW, "DELETE", "/v2/products", xt(products)), 404, cmNotFound)
	expect(t, "cm unclean path", serve(f.menusGW, "GET", "/v2/x/../products", xt(products)), 404, cmNotFound)
	expect(t, "cm encoded slash", serve(f.menusGW, "GET", "/v2%2Fproducts", xt(products)), 404, cmNotFound)
	if got := serve(f.menusGW, "GET", "/v2/products?states=california&brands=Anything", xt(products)); got.status != 200 {
		t.Errorf("entitled state in other case refused: %d %s", got.status, got.body)
	}

	expect(t, "cs missing", serve(f.eventsGW, "GET", "/api/v1/attendees", nil), 401, `{"message": "API token required."}`)
	expect(t, "cs basic scheme", serve(f.eventsGW, "GET", "/api/v1/attendees", map[string][]string{"Authorization": {"Basic Zm9vOmJhcg=="}}), 401, `{"message": "API token required."}`)
	expect(t, "cs invalid", serve(f.eventsGW, "GET", "/api/v1/attendees", bearer("csk_live_nope")), 401, `{"message": "Invalid API token."}`)
	expect(t, "cs X-Token ignored", serve(f.eventsGW, "GET", "/api/v1/attendees", xt(attendees)), 401, `{"message": "API token required."}`)
	expect(t, "cs expired", serve(f.eventsGW, "GET", "/api/v1/attendees", bearer(expiredCS)), 401, `{"message": "API token has expired."}`)
	expect(t, "cs scope", serve(f.eventsGW, "GET", "/api/v1/webhooks", bearer(attendees)), 403, `{"message": "Token does not have required permissions."}`)
	if got := serve(f.eventsGW, "GET", "/api/v1/attendees", bearer(attendees)); got.status != 200 {
		t.Errorf("valid canskan token: %d %s", got.status, got.body)
	}
}

func TestPlanGate(t *testing.T) {
	f := newFixture(t)
	_, analytics := f.token(f.menus, []string{"analytics:read"}, keygate.Expiry90Days, f.now)
	h := map[string][]string{"X-Token": {analytics}}
	expect(t, "free plan", serve(f.menusGW, "GET", "/v2/analytics", h), 403, `{"detail": "Your plan does not include this endpoint."}`)
	f.org.Plan = "pro"
	if err := f.store.UpdateOrganization(context.Background(), f.org); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "plan change to reach the cache", func() bool {
		return serve(f.menusGW, "GET", "/v2/analytics", h).status == 200
	})
}

// waitFor polls ok for up to 2s and returns how long it took.
func waitFor(t *testing.T, what string, ok func() bool) time.Duration {
	t.Helper()
	return waitWithin(t, 2*time.Second, what, ok)
}

// waitWithin polls ok for up to limit and returns how long it took.
func waitWithin(t *testing.T, limit time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if ok() {
			return time.Since(start)
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
	return 0
}

func TestDeleteFromAnotherProcessRevokesWithinASecond(t *testing.T) {
	f := newFixture(t)
	tok, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	h := map[string][]string{"X-Token": {secret}}
	if got := serve(f.menusGW, "GET", "/v2/products", h); got.status != 200 {
		t.Fatalf("before delete: %d", got.status)
	}
	// A second handle on the same file is what `keygate tokens revoke` uses.
	cli, err := sqlite.Open(context.Background(), f.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if err := cli.RevokeToken(context.Background(), tok.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, "revocation", func() bool {
		return serve(f.menusGW, "GET", "/v2/products", h).status == 404
	})
	t.Logf("revoked token refused %v after delete", took)
}

func TestRotationLosesNoRequest(t *testing.T) {
	f := newFixture(t)
	old, oldSecret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	_, newSecret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	for i := 0; i < 20; i++ {
		if got := serve(f.menusGW, "GET", "/v2/products", map[string][]string{"X-Token": {newSecret}}); got.status != 200 {
			t.Fatalf("new token refused before delete: %d", got.status)
		}
	}
	if err := f.store.RevokeToken(context.Background(), old.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if got := serve(f.menusGW, "GET", "/v2/products", map[string][]string{"X-Token": {newSecret}}); got.status != 200 {
			t.Fatalf("new token refused after old deleted: %d", got.status)
		}
	}
	waitFor(t, "old token refused", func() bool {
		return serve(f.menusGW, "GET", "/v2/products", map[string][]string{"X-Token": {oldSecret}}).status == 404
	})
}

// limiterBucket is how much longer than a minute a request may be counted.
var limiterBucket = time.Duration(ratelimit.BucketWidth(int64(time.Minute)))

func TestCanskanPublicLimitCountsDownAndRefusesTheEleventh(t *testing.T) {
	f := newFixture(t)
	for i := 1; i <= 10; i++ {
		got := serve(f.eventsGW, "GET", "/p/abc123def456", nil)
		if got.status != 200 {
			t.Fatalf("request %d: %d %s", i, got.status, got.body)
		}
		if l, r := rateHeader(got, "X-RateLimit-Limit"), rateHeader(got, "X-RateLimit-Remaining"); l != "10" || r != strconv.Itoa(10-i) {
			t.Fatalf("request %d: limit %s remaining %s", i, l, r)
		}
		// A request is counted for its minute and at most one bucket of
		// the limiter's window more.
		reset, _ := strconv.ParseInt(rateHeader(got, "X-RateLimit-Reset"), 10, 64)
		if reset < time.Now().Unix() || reset > time.Now().Add(time.Minute+limiterBucket+time.Second).Unix() {
			t.Fatalf("X-RateLimit-Reset %d not within the next minute and a bucket", reset)
		}
	}
	got := serve(f.eventsGW, "GET", "/p/abc123def456", nil)
	expect(t, "11th public request", got, 429, `{"message": "Too Many Attempts."}`)
	if ra, _ := strconv.Atoi(got.header.Get("Retry-After")); ra < 1 || time.Duration(ra)*time.Second > time.Minute+limiterBucket+time.Second {
		t.Errorf("Retry-After %q", got.header.Get("Retry-After"))
	}
	if rateHeader(got, "X-RateLimit-Remaining") != "0" {
		t.Errorf("remaining on 429: %q", rateHeader(got, "X-RateLimit-Remaining"))
	}
}

func TestInvalidTokensCountAgainstThePublicLimit(t *testing.T) {
	f := newFixture(t)
	// A token this instance verified before the guesses keeps working.
	_, secret := f.token(f.events, []string{"attendees:read"}, keygate.Expiry90Days, f.now)
	valid := map[string][]string{"Authorization": {"Bearer " + secret}}
	if got := serveFrom(f.eventsGW, "192.0.2.1:5000", "GET", "/api/v1/attendees", valid); got.status != 200 {
		t.Fatalf("valid token: %d %s", got.status, got.body)
	}
	bad := map[string][]string{"Authorization": {"Bearer csk_live_guess"}}
	for i := 0; i < 10; i++ {
		expect(t, "guess", serve(f.eventsGW, "GET", "/api/v1/attendees", bad), 401, `{"message": "Invalid API token."}`)
	}
	expect(t, "11th guess", serve(f.eventsGW, "GET", "/api/v1/attendees", bad), 429, `{"message": "Too Many Attempts."}`)
	expect(t, "public route shares the IP budget", serve(f.eventsGW, "GET", "/p/abc123def456", nil), 429, `{"message": "Too Many Attempts."}`)
	// A valid token has its own, higher budget.
	got := serve(f.eventsGW, "GET", "/api/v1/attendees", valid)
	if got.status != 200 || rateHeader(got, "X-RateLimit-Limit") != "60" || rateHeader(got, "X-RateLimit-Remaining") != "58" {
		t.Errorf("valid token after guesses: %d limit %s remaining %s", got.status, rateHeader(got, "X-RateLimit-Limit"), rateHeader(got, "X-RateLimit-Remaining"))
	}
}

func TestUpstreamDownAndBodyTooLarge(t *testing.T) {
	f := newFixture(t)
	_, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	req := httptest.NewRequest("POST", "/v2/upload", strings.NewReader(strings.Repeat("x", 4096)))
	req.Header.Set("X-Token", secret)
	rec := httptest.NewRecorder()
	f.menusGW.ServeHTTP(rec, req)
	expect(t, "body too large", response{rec.Code, rec.Header(), rec.Body.String()}, 413, `{"detail": "Request Entity Too Large"}`)

	f.upstream.Close()
	expect(t, "upstream down", serve(f.menusGW, "GET", "/v2/products", map[string][]string{"X-Token": {secret}}), 502, `{"detail": "Bad Gateway"}`)
}

func TestForwardAuth(t *testing.T) {
	f := newFixture(t)
	tok, secret := f.token(f.events, []string{"attendees:read"}, keygate.Expiry90Days, f.now)
	// A proxy on the same machine may ask by default: the request comes
	// from 127.0.0.1 over a real connection.
	got := sendReal(t, f.eventsGW, "GET", "/_keygate/auth", http.Header{
		"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/api/v1/attendees?page=2"},
		"Authorization": {"Bearer " + secret},
	})
	if got.status != 200 || got.header.Get("X-Keygate-Token-Id") != tok.ID || got.header.Get("X-Keygate-Org") != f.org.ID {
		t.Fatalf("forward-auth pass: %d %v", got.status, got.header)
	}
	if _, err := f.verifier.Verify(got.header.Get("X-Keygate-Identity"), "canskan"); err != nil {
		t.Fatalf("forward-auth identity: %v", err)
	}
	expect(t, "nginx style, no token", sendReal(t, f.eventsGW, "GET", "/_keygate/auth", http.Header{"X-Original-Uri": {"/api/v1/attendees"}}),
		401, `{"message": "API token required."}`)
	expect(t, "forward-auth unknown route", sendReal(t, f.eventsGW, "GET", "/_keygate/auth", http.Header{"X-Forwarded-Uri": {"/admin"}}),
		404, `{"message": "Not Found."}`)
}

func TestVerifyAPI(t *testing.T) {
	f := newFixture(t)
	_, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	_, adminSecret, err := manage.CreateAdminKey(context.Background(), f.store, "t", f.now)
	if err != nil {
		t.Fatal(err)
	}
	h := gateway.VerifyHandler(map[string]*gateway.Gateway{"cannmenus": f.menusGW}, f.store, 0)
	call := func(key, body string) (int, string) {
		req := httptest.NewRequest("POST", "/api/v1/verify", strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, strings.TrimSpace(string(b))
	}
	if code, body := call("", `{}`); code != 401 || !strings.Contains(body, `"code":"unauthorized"`) {
		t.Errorf("no admin key: %d %s", code, body)
	}
	if code, body := call("kgadm_"+strings.Repeat("A", 36), `{}`); code != 401 || !strings.Contains(body, "Invalid admin key.") {
		t.Errorf("malformed admin key: %d %s", code, body)
	}
	code, body := call(adminSecret, `{"api":"cannmenus","token":"`+secret+`","path":"/v2/products?states=California"}`)
	if code != 200 || !strings.HasPrefix(body, `{"valid":true,"status":200,"identity":{"org":"`+f.org.ID+`"`) {
		t.Errorf("valid: %d %s", code, body)
	}
	code, body = call(adminSecret, `{"api":"cannmenus","token":"`+secret+`","path":"/v2/products?states=Oregon"}`)
	if code != 200 || body != `{"valid":false,"code":"entitlement_forbidden","status":403,"body":"{\"detail\": \"Your organization does not have access to state Oregon.\"}"}` {
		t.Errorf("entitlement: %d %s", code, body)
	}
	if code, body := call(adminSecret, `{"api":"cannmenus","token":"x","path":"/","extra":1}`); code != 400 || !strings.Contains(body, `"code":"invalid"`) {
		t.Errorf("unknown field: %d %s", code, body)
	}
	if code, _ := call(adminSecret, `{"api":"nope","path":"/"}`); code != 400 {
		t.Errorf("unknown api: %d", code)
	}
}

// A route limit keyed by organization is shared by all its tokens, and a
// plan override raises it for organizations on that plan.
func TestOrganizationLimitWithPlanOverride(t *testing.T) {
	f := newFixture(t)
	f.events.Routes[2].RateLimit = &keygate.RateLimit{Key: keygate.LimitByOrganization, Limit: 2, Period: time.Minute, PlanLimits: map[string]int{"pro": 4}}
	g, err := gateway.New(gateway.Config{API: f.events, Tokens: f.tokens, Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{SweepInterval: -1})})
	if err != nil {
		t.Fatal(err)
	}
	_, a := f.token(f.events, []string{"webhooks:manage"}, keygate.Expiry90Days, f.now)
	_, b := f.token(f.events, []string{"webhooks:manage"}, keygate.Expiry90Days, f.now)
	call := func(secret string) response {
		return serve(g, "GET", "/api/v1/webhooks", map[string][]string{"Authorization": {"Bearer " + secret}})
	}
	if r := call(a); r.status != 200 || rateHeader(r, "X-RateLimit-Limit") != "2" {
		t.Fatalf("first: %d limit %q", r.status, rateHeader(r, "X-RateLimit-Limit"))
	}
	if r := call(b); r.status != 200 || rateHeader(r, "X-RateLimit-Remaining") != "0" {
		t.Fatalf("second token of the same org: %d remaining %q", r.status, rateHeader(r, "X-RateLimit-Remaining"))
	}
	expect(t, "third request of the org", call(a), 429, `{"message": "Too Many Attempts."}`)

	f.org.Plan = "pro"
	if err := f.store.UpdateOrganization(context.Background(), f.org); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pro limit", func() bool { return rateHeader(call(b), "X-RateLimit-Limit") == "4" })
}

// X-Forwarded-For from a peer that is not a trusted proxy changes nothing:
// every spoofed address still spends the connection's budget.
func TestSpoofedForwardedForDoesNotEscapeThePublicLimit(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 10; i++ {
		spoof := map[string][]string{"X-Forwarded-For": {"198.51.100." + strconv.Itoa(i)}}
		if r := serve(f.eventsGW, "GET", "/p/abc", spoof); r.status != 200 {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	expect(t, "11th with a new spoofed address", serve(f.eventsGW, "GET", "/p/abc", map[string][]string{"X-Forwarded-For": {"198.51.100.99"}}),
		429, `{"message": "Too Many Attempts."}`)
}

// Requests authenticated by OAuth (the MCP endpoint) count against the
// API's token limit per client and user, and are forwarded with identity.
func TestForwardAsAppliesTheTokenLimitPerOAuthClientAndUser(t *testing.T) {
	f := newFixture(t)
	u, _ := url.Parse(f.upstream.URL)
	forward := f.eventsGW.ForwardAs(u)
	call := func(user string) response {
		id := &keygate.Identity{OrganizationID: f.org.ID, Plan: "free", ClientID: "kgc_1", UserID: user, Scopes: []string{"attendees:read"}, API: "canskan"}
		req := httptest.NewRequest("POST", "/mcp", strings.NewReader(`{}`))
		req.RemoteAddr = "203.0.113.9:5000"
		req.Header.Set("Authorization", "Bearer kgo_at_secret")
		rec := httptest.NewRecorder()
		forward(rec, req, id)
		return response{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
	}
	for i := 1; i <= 60; i++ {
		r := call("usr_a")
		if r.status != 200 || rateHeader(r, "X-RateLimit-Remaining") != strconv.Itoa(60-i) {
			t.Fatalf("request %d: %d remaining %q", i, r.status, rateHeader(r, "X-RateLimit-Remaining"))
		}
		if i == 1 {
			var seen upstreamSeen
			_ = json.Unmarshal([]byte(r.body), &seen)
			if seen.Header.Get("Authorization") != "" || seen.Header.Get("X-Keygate-Identity") == "" {
				t.Fatalf("upstream headers %v", seen.Header)
			}
		}
	}
	expect(t, "61st for one user", call("usr_a"), 429, `{"message": "Too Many Attempts."}`)
	if r := call("usr_b"); r.status != 200 {
		t.Errorf("another user of the same client shares the bucket: %d", r.status)
	}
}

// sendReal makes one real HTTP request to h with header names exactly as
// given (net/http's client writes map keys as they are).
func sendReal(t *testing.T, h http.Handler, method, path string, header http.Header) response {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest(method, srv.URL+path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// The upstream trusts keygate's headers, so no spelling of them, no
// client-chosen address header and no credential of the API may come
// through from the client.
func TestUpstreamSeesNoClientIdentityAddressOrCredential(t *testing.T) {
	f := newFixture(t)
	tok, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	_, other := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	basic := base64.StdEncoding.EncodeToString([]byte(other + ":"))
	got := sendReal(t, f.menusGW, "GET", "/v2/products?states=California", http.Header{
		"X-Token":             {secret},
		"X_Keygate_Org":       {"org_evil"},
		"x_keygate_identity":  {"forged"},
		"X-KEYGATE_Scopes":    {"admin"},
		"X_Token":             {secret},
		"X-Real-Ip":           {"10.0.0.1"},
		"X_Real_IP":           {"10.0.0.2"},
		"True-Client-Ip":      {"10.0.0.3"},
		"Cf-Connecting-Ip":    {"10.0.0.4"},
		"X-Client-Ip":         {"10.0.0.5"},
		"Authorization":       {"Bearer " + other},
		"Proxy-Authorization": {"Basic " + basic},
		"Cookie":              {"theme=dark; api_token=" + other},
		"X-Request-Id":        {"abc-123"},
	})
	if got.status != 200 {
		t.Fatalf("status %d body %s", got.status, got.body)
	}
	var seen upstreamSeen
	if err := json.Unmarshal([]byte(got.body), &seen); err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range seen.Header {
		names = append(names, name)
	}
	sort.Strings(names)
	want := "Accept-Encoding,User-Agent,X-Forwarded-For,X-Forwarded-Host,X-Forwarded-Proto,X-Keygate-Identity,X-Keygate-Org,X-Keygate-Scopes,X-Keygate-Token-Id,X-Real-Ip,X-Request-Id"
	if strings.Join(names, ",") != want {
		t.Errorf("upstream saw headers\n%s\nwant\n%s", strings.Join(names, ","), want)
	}
	for name, wantValue := range map[string]string{
		"X-Keygate-Org": f.org.ID, "X-Keygate-Token-Id": tok.ID, "X-Keygate-Scopes": "products:read",
		"X-Real-Ip": "127.0.0.1", "X-Request-Id": "abc-123",
	} {
		if v := seen.Header[name]; len(v) != 1 || v[0] != wantValue {
			t.Errorf("%s: %q, want [%s]", name, v, wantValue)
		}
	}
	if strings.Contains(got.body, secret) || strings.Contains(got.body, other) || strings.Contains(got.body, basic) {
		t.Error("a token reached the upstream")
	}
	// A credential of the upstream's own, not a token of this API, passes.
	got = sendReal(t, f.menusGW, "GET", "/v2/products", http.Header{"X-Token": {secret}, "Authorization": {"Bearer upstream-session-1"}})
	if err := json.Unmarshal([]byte(got.body), &seen); err != nil {
		t.Fatal(err)
	}
	if seen.Header.Get("Authorization") != "Bearer upstream-session-1" {
		t.Errorf("upstream's own Authorization: %q", seen.Header.Get("Authorization"))
	}
}

// Behind nginx auth_request (X-Original-*), what the client adds of the
// other family must not change what is checked: a request naming two
// different targets is refused, and only an allowed peer is believed.
func TestForwardAuthBelievesOneHeaderFamilyFromAllowedPeersOnly(t *testing.T) {
	f := newFixture(t)
	_, secret := f.token(f.events, []string{"attendees:read"}, keygate.Expiry90Days, f.now)
	nginx := func(method string, extra http.Header) http.Header {
		h := http.Header{"X-Original-Uri": {"/api/v1/attendees"}, "X-Original-Method": {method}}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	const badRequest = `{"message": "Bad Request."}`
	for name, h := range map[string]http.Header{
		"client adds a public X-Forwarded-Uri":   nginx("GET", http.Header{"X-Forwarded-Uri": {"/p/abc"}}),
		"client adds X-Forwarded-Method GET":     nginx("POST", http.Header{"X-Forwarded-Method": {"GET"}}),
		"client adds both, naming the same URI":  nginx("POST", http.Header{"X-Forwarded-Uri": {"/api/v1/attendees"}, "X-Forwarded-Method": {"GET"}}),
		"client repeats X-Original-Uri":          {"X-Original-Uri": {"/api/v1/attendees", "/p/abc"}},
		"X-Original-Url differs from -Uri":       nginx("GET", http.Header{"X-Original-Url": {"/p/abc"}}),
		"Traefik style, client adds X-Original-": {"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/api/v1/attendees"}, "X-Original-Uri": {"/p/abc"}},
	} {
		expect(t, name, sendReal(t, f.eventsGW, "GET", "/_keygate/auth", h), 400, badRequest)
	}
	// Without the client's additions nginx's own headers decide: a POST
	// matches no route here, whatever the token.
	expect(t, "nginx alone, POST", sendReal(t, f.eventsGW, "GET", "/_keygate/auth", nginx("POST", http.Header{"Authorization": {"Bearer " + secret}})),
		404, `{"message": "Not Found."}`)
	// Both families saying exactly the same thing is one request.
	same := http.Header{"X-Original-Uri": {"/api/v1/attendees"}, "X-Original-Method": {"GET"},
		"X-Forwarded-Uri": {"/api/v1/attendees"}, "X-Forwarded-Method": {"GET"}, "Authorization": {"Bearer " + secret}}
	if got := sendReal(t, f.eventsGW, "GET", "/_keygate/auth", same); got.status != 200 {
		t.Errorf("agreeing families: %d %s", got.status, got.body)
	}

	// A peer that may not ask is answered as an unknown route, whatever
	// its headers say; listing it (or trusting it as a proxy) lets it in.
	expect(t, "a client connecting from afar", serve(f.eventsGW, "GET", "/_keygate/auth", map[string][]string{"X-Forwarded-Uri": {"/p/abc"}}),
		404, `{"message": "Not Found."}`)
	for name, cfg := range map[string]struct {
		peers   []netip.Prefix
		proxies []string
		status  int
	}{
		"loopback not listed":          {peers: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, status: 404},
		"no forward-auth peers at all": {peers: []netip.Prefix{}, status: 404},
		"listed":                       {peers: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, status: 200},
		"a trusted proxy":              {peers: []netip.Prefix{}, proxies: []string{"127.0.0.1"}, status: 200},
	} {
		resolver, _ := clientip.New(cfg.proxies)
		g, err := gateway.New(gateway.Config{API: f.events, Tokens: f.tokens, ClientIP: resolver, ForwardAuthPeers: cfg.peers})
		if err != nil {
			t.Fatal(err)
		}
		got := sendReal(t, g, "GET", "/_keygate/auth", http.Header{"X-Forwarded-Uri": {"/api/v1/attendees"}, "Authorization": {"Bearer " + secret}})
		if got.status != cfg.status {
			t.Errorf("%s: %d %s, want %d", name, got.status, got.body, cfg.status)
		}
		if cfg.status == 404 && got.body != `{"message": "Not Found."}` {
			t.Errorf("%s: body %s", name, got.body)
		}
	}
}

// serveFrom is serve from the client address remote ("[2001:db8::1]:5000").
func serveFrom(h http.Handler, remote, method, target string, header ...map[string][]string) response {
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = remote
	for _, hh := range header {
		for k, vs := range hh {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
}

// An IPv6 host picks any address in its /64 at will, so the per-IP limit
// counts the /64; IPv4 counts each address, IPv4-mapped IPv6 included.
func TestPerIPLimitCountsAnIPv6ClientByItsSlash64(t *testing.T) {
	f := newFixture(t)
	const tooMany = `{"message": "Too Many Attempts."}`
	for i := 1; i <= 10; i++ {
		remote := "[2001:db8:1:2:" + strconv.Itoa(i) + "::1]:5000"
		if r := serveFrom(f.eventsGW, remote, "GET", "/p/abc"); r.status != 200 {
			t.Fatalf("request %d from %s: %d %s", i, remote, r.status, r.body)
		}
	}
	expect(t, "11th address of the same /64", serveFrom(f.eventsGW, "[2001:db8:1:2:ffff:ffff:ffff:ffff]:5000", "GET", "/p/abc"), 429, tooMany)
	if r := serveFrom(f.eventsGW, "[2001:db8:1:3::1]:5000", "GET", "/p/abc"); r.status != 200 || rateHeader(r, "X-RateLimit-Remaining") != "9" {
		t.Errorf("the next /64: %d remaining %q", r.status, rateHeader(r, "X-RateLimit-Remaining"))
	}

	for i := 1; i <= 10; i++ {
		if r := serveFrom(f.eventsGW, "198.51.100.7:5000", "GET", "/p/abc"); r.status != 200 {
			t.Fatalf("IPv4 request %d: %d", i, r.status)
		}
	}
	expect(t, "IPv4-mapped IPv6 is the same IPv4 client", serveFrom(f.eventsGW, "[::ffff:198.51.100.7]:5000", "GET", "/p/abc"), 429, tooMany)
	if r := serveFrom(f.eventsGW, "198.51.100.8:5000", "GET", "/p/abc"); r.status != 200 {
		t.Errorf("the next IPv4 address: %d", r.status)
	}

	// ipv6_prefix_length 128 counts every address on its own.
	resolver, _ := clientip.New(nil)
	exact, err := resolver.WithIPv6PrefixLength(128)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(gateway.Config{API: f.events, Tokens: f.tokens, ClientIP: exact, Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{SweepInterval: -1})})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 11; i++ {
		if r := serveFrom(g, "[2001:db8:1:2:"+strconv.Itoa(i)+"::1]:5000", "GET", "/p/abc"); r.status != 200 {
			t.Fatalf("/128, address %d: %d", i, r.status)
		}
	}
}

// A client that has spent its failed-authentication budget gets the
// preset's 429 before any store lookup, on every preset: cannmenus, which
// has no rate limits by default, allows 60 failures a minute per address.
func TestSpentFailedAuthBudgetIsRefusedWithoutAStoreLookup(t *testing.T) {
	f := newFixture(t)
	const from = "198.51.100.20:4000"
	_, known := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	if got := serveFrom(f.menusGW, from, "GET", "/v2/products", map[string][]string{"X-Token": {known}}); got.status != 200 {
		t.Fatalf("known token: %d %s", got.status, got.body)
	}
	for i := 1; i <= 60; i++ {
		guess := map[string][]string{"X-Token": {keygate.GenerateTokenSecret("cm_live_")}}
		got := serveFrom(f.menusGW, from, "GET", "/v2/products", guess)
		expect(t, "guess", got, 404, cmNotFound)
		if rateHeader(got, "X-RateLimit-Limit") != "60" || rateHeader(got, "X-RateLimit-Remaining") != strconv.Itoa(60-i) {
			t.Fatalf("guess %d: limit %q remaining %q", i, rateHeader(got, "X-RateLimit-Limit"), rateHeader(got, "X-RateLimit-Remaining"))
		}
	}
	lookups := f.store.lookups.Load()
	_, fresh := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	for name, secret := range map[string]string{
		"61st guess":                      keygate.GenerateTokenSecret("cm_live_"),
		"a valid token not yet seen here": fresh,
	} {
		got := serveFrom(f.menusGW, from, "GET", "/v2/products", map[string][]string{"X-Token": {secret}})
		expect(t, name, got, 429, `{"detail": "Too Many Requests"}`)
		// Up to a minute and one of the limiter's 2.5 s buckets.
		if ra, _ := strconv.Atoi(got.header.Get("Retry-After")); ra < 1 || ra > 63 || rateHeader(got, "X-RateLimit-Remaining") != "0" {
			t.Errorf("%s: Retry-After %q remaining %q", name, got.header.Get("Retry-After"), rateHeader(got, "X-RateLimit-Remaining"))
		}
	}
	expect(t, "no token at all", serveFrom(f.menusGW, from, "GET", "/v2/products"), 429, `{"detail": "Too Many Requests"}`)
	if n := f.store.lookups.Load() - lookups; n != 0 {
		t.Errorf("a spent address caused %d store lookups, want 0", n)
	}
	// The token verified before keeps working, and other addresses are
	// not affected.
	if got := serveFrom(f.menusGW, from, "GET", "/v2/products", map[string][]string{"X-Token": {known}}); got.status != 200 {
		t.Errorf("known token from the spent address: %d %s", got.status, got.body)
	}
	if got := serveFrom(f.menusGW, "198.51.100.21:4000", "GET", "/v2/products", map[string][]string{"X-Token": {fresh}}); got.status != 200 {
		t.Errorf("another address: %d %s", got.status, got.body)
	}
}

// An address's spent failed-auth budget is remembered until the window
// frees a request by this instance's clock, counted from the wait the
// limiter reported: a limiter whose clock runs an hour ahead of the
// instance's (Redis's, on another host) does not keep the address refused
// for that hour, nor for any time past the window.
func TestSpentFailedAuthBudgetEndsWithTheWindowWhateverTheLimitersClock(t *testing.T) {
	f := newFixture(t)
	resolver, _ := clientip.New(nil)
	const from, skew = "198.51.100.30:4000", time.Hour
	for _, tc := range []struct {
		name    string
		limiter func(now func() time.Time) ratelimit.Limiter
	}{
		{"memory", func(now func() time.Time) ratelimit.Limiter {
			return ratelimit.NewMemory(ratelimit.MemoryOptions{Now: now, SweepInterval: -1})
		}},
		{"redis", func(now func() time.Time) ratelimit.Limiter { return redisLimiter(t, redislimit.Options{Now: now}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			instance := limitertest.NewFakeClock(f.now.Truncate(time.Second))
			limiterClock := func() time.Time { return instance.Now().Add(skew) }
			g, err := gateway.New(gateway.Config{API: f.menus, Tokens: f.tokens, Limiter: tc.limiter(limiterClock), ClientIP: resolver, Now: instance.Now})
			if err != nil {
				t.Fatal(err)
			}
			guess := func() response {
				return serveFrom(g, from, "GET", "/v2/products", map[string][]string{"X-Token": {keygate.GenerateTokenSecret("cm_live_")}})
			}
			for i := 1; i <= 60; i++ {
				expect(t, "guess", guess(), 404, cmNotFound)
			}
			expect(t, "61st guess", guess(), 429, `{"detail": "Too Many Requests"}`)
			// A minute and one of the limiter's 2.5 s buckets later the
			// window has freed a request, on both clocks.
			instance.Sleep(time.Minute + 2500*time.Millisecond)
			lookups := f.store.lookups.Load()
			expect(t, "a guess once the window freed a request", guess(), 404, cmNotFound)
			if n := f.store.lookups.Load() - lookups; n != 1 {
				t.Errorf("the guess after the window caused %d store lookups, want 1", n)
			}
		})
	}
}

// On a route with entitlement rules the query keygate checks must be the
// query the upstream reads. The proxy forwards only the pairs Go's parser
// reads (and checks those); forward-auth, whose proxy sends the query on
// as it came, refuses a query Go reads only in part; a query with more
// parameters than Go reads is refused by both.
func TestEntitlementRouteChecksTheQueryTheUpstreamReads(t *testing.T) {
	f := newFixture(t)
	_, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	h := map[string][]string{"X-Token": {secret}}
	for _, tc := range []struct{ query, forwarded string }{
		{"states=Oregon;x=1", "/v2/products"},
		{"x=1;states=Oregon", "/v2/products"},
		{"states=Ore%zzgon", "/v2/products"},
		{"states=California&states=Oregon%", "/v2/products?states=California"},
		{"states=California&brands=Acme%20Co", "/v2/products?states=California&brands=Acme%20Co"},
	} {
		got := serve(f.menusGW, "GET", "/v2/products?"+tc.query, h)
		var seen upstreamSeen
		if got.status != 200 || json.Unmarshal([]byte(got.body), &seen) != nil || seen.Path != tc.forwarded {
			t.Errorf("proxy, ?%s: %d %.120s; want 200 and the upstream asked for %s", tc.query, got.status, got.body, tc.forwarded)
		}
		auth := serveFrom(f.menusGW, "127.0.0.1:40000", "GET", "/_keygate/auth", map[string][]string{
			"X-Token": {secret}, "X-Original-Method": {"GET"}, "X-Original-URI": {"/v2/products?" + tc.query},
		})
		want := 400 // nginx sends the query on as it came
		if tc.forwarded == "/v2/products?"+tc.query {
			want = 200
		}
		if auth.status != want {
			t.Errorf("forward-auth, ?%s: %d %s, want %d", tc.query, auth.status, auth.body, want)
		}
	}
	many := "states=Oregon&" + strings.Repeat("a&", 10001)
	expect(t, "proxy, 10,002 parameters", serve(f.menusGW, "GET", "/v2/products?"+many, h), 400, `{"detail": "Bad Request"}`)
	// Routes without entitlement rules read no query and refuse none.
	_, attendees := f.token(f.events, []string{"attendees:read"}, keygate.Expiry90Days, f.now)
	if got := serve(f.eventsGW, "GET", "/api/v1/attendees?x=1;y=2", map[string][]string{"Authorization": {"Bearer " + attendees}}); got.status != 200 {
		t.Errorf("no entitlement rules: %d %s", got.status, got.body)
	}
}
