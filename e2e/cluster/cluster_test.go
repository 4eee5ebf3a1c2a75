package cluster_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/internal/testenv"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/postgres"
	"github.com/keygate/keygate/postgres/pgtest"
	"github.com/keygate/keygate/server"
)

// api is the API every instance guards: CANSKAN's wire behaviour (Bearer
// token, 401 bodies, 503 {"message": "Service Unavailable."}), no default
// limits, one route with a limit for the shared-limit test and one that
// checks the organization's states.
const api = "events"

// limitPerMinute is the limit of GET /api/v1/limited, per token.
const limitPerMinute = 50

// Bodies of the canskan preset the tests expect byte for byte.
const (
	bodyInvalid     = `{"message": "Invalid API token."}`
	bodyUnavailable = `{"message": "Service Unavailable."}`
	bodyRateLimited = `{"message": "Too Many Attempts."}`
	bodyForbidden   = `{"message": "Token does not have required permissions."}`
)

// settings are what differ between the clusters the tests start.
type settings struct {
	ttl           string // cache.ttl
	staleIfError  string // cache.stale_if_error
	flushInterval string // last_used.flush_interval
	storeTimeout  string // cache.store_timeout; "" for the default
	redisURL      string // rate_limiter.redis_url; "" for the cluster's Redis
	onRedisDown   string // rate_limiter.on_redis_failure; "" for closed
	// wrap, if set, wraps the instance's store (opened by the test) to
	// watch what the instance asks of it.
	wrap func(keygate.Store) keygate.Store
}

// defaults keep the production cache TTL: whatever reaches other instances
// within a second is the change feed's doing, not expiry.
var defaults = settings{ttl: "30s", staleIfError: "5m", flushInterval: "10s"}

// cluster is one PostgreSQL schema, one Redis and the instances on them.
type cluster struct {
	t         *testing.T
	db        string // the schema's URL, search_path set
	redis     string
	upstream  string
	run       string // names this cluster's connections: application_name
	instances []*instance
	org       *keygate.Organization
}

// instance is one keygate.
type instance struct {
	name   string // its application_name in pg_stat_activity
	server *server.Server
	base   string // the events API's URL
	admin  string // the admin listener's URL
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	// An operator's KEYGATE_DATABASE_URL would override every instance's
	// database_url.
	t.Setenv(config.DatabaseURLEnv, "")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"org": %q}`, r.Header.Get("X-Keygate-Org"))
	}))
	t.Cleanup(up.Close)
	var b [4]byte
	rand.Read(b[:])
	return &cluster{
		t: t, db: pgtest.NewSchema(t), redis: testenv.RedisURL(t), upstream: up.URL,
		run: "kg-" + hex.EncodeToString(b[:]),
	}
}

// start starts n instances with the given settings on the cluster's
// database, or on dbURL when it is not "".
func (c *cluster) start(n int, s settings, dbURL string) []*instance {
	c.t.Helper()
	var started []*instance
	for range n {
		started = append(started, c.startOne(s, dbURL))
	}
	return started
}

// configFile writes the config of instance name to a new directory, with
// its admin and API listeners on the given addresses, and returns its
// path.
func (c *cluster) configFile(s settings, dbURL, name, adminAddr, apiAddr string) string {
	c.t.Helper()
	if dbURL == "" {
		dbURL = c.db
	}
	dir := c.t.TempDir()
	yaml := fmt.Sprintf(`data_dir: %q
database_url: %q
admin:
  listen: %s
rate_limiter:
  backend: redis
  redis_url: %q
  on_redis_failure: %s
  # A loaded test machine can stall a reply past the 250ms default; these
  # tests are about sharing limits, not about a slow Redis.
  redis_timeout: 1s
cache:
  ttl: %s
  stale_if_error: %s
  store_timeout: %s
last_used:
  flush_interval: %s
log:
  level: warn
apis:
  - name: %s
    preset: canskan
    listen: %s
    upstream: %s
    token_prefix: csk_
    scopes: [attendees:read]
    # The tests poll refused tokens until every instance refuses them.
    rate_limits:
      public: none
      token: none
      failed_auth: none
    routes:
      - methods: [GET]
        path: /api/v1/organization
      - methods: [GET]
        path: /api/v1/limited
        rate_limit: {key: token, limit: %d, period: 1m}
      - methods: [GET]
        path: /api/v1/attendees
        entitlements: {states: state}
`, dir, pgtest.WithParam(c.t, dbURL, "application_name", name), adminAddr, withDefault(s.redisURL, c.redis), withDefault(s.onRedisDown, "closed"),
		s.ttl, s.staleIfError, withDefault(s.storeTimeout, "2s"), s.flushInterval, api, apiAddr, c.upstream, limitPerMinute)
	path := filepath.Join(dir, "keygate.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return path
}

func (c *cluster) startOne(s settings, dbURL string) *instance {
	c.t.Helper()
	if dbURL == "" {
		dbURL = c.db
	}
	name := fmt.Sprintf("%s-%d", c.run, len(c.instances)+1)
	path := c.configFile(s, dbURL, name, "127.0.0.1:0", "127.0.0.1:0")
	cfg, err := config.Load(path)
	if err != nil {
		c.t.Fatalf("config: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(c.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})).With("instance", name)
	opts := server.Options{Logger: logger}
	if s.wrap != nil {
		store, err := postgres.Open(context.Background(), cfg.DatabaseURL)
		if err != nil {
			c.t.Fatal(err)
		}
		c.t.Cleanup(func() { store.Close() }) // after the shutdown below
		opts.Store = s.wrap(store)
	}
	srv, err := server.New(context.Background(), cfg, opts)
	if err != nil {
		c.t.Fatalf("server.New(%s): %v", name, err)
	}
	if err := srv.Start(); err != nil {
		c.t.Fatalf("Start(%s): %v", name, err)
	}
	c.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			c.t.Errorf("Shutdown(%s): %v", name, err)
		}
	})
	in := &instance{name: name, server: srv, base: "http://" + srv.Addr(api), admin: "http://" + srv.Addr("admin")}
	c.instances = append(c.instances, in)
	// Until its change feed has read where it begins, an instance caches
	// nothing: the tests count on its cache from the first request.
	in.waitFollowing(c.t)
	return in
}

// waitFollowing waits until the instance's token cache follows changes,
// and answers from what it holds.
func (in *instance) waitFollowing(t testing.TB) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !in.server.TokenCache().Following(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the token cache did not follow changes within 10s", in.name)
		}
		time.Sleep(time.Millisecond)
	}
}

// organization creates the test organization through the first instance.
func (c *cluster) organization() *keygate.Organization {
	c.t.Helper()
	if c.org == nil {
		c.org = &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free"}
		if err := c.instances[0].server.Store().CreateOrganization(context.Background(), c.org); err != nil {
			c.t.Fatal(err)
		}
	}
	return c.org
}

// token creates a token through instance via, as the dashboard and the
// management API do, and returns it with its secret.
func (c *cluster) token(via *instance) (*keygate.Token, string) {
	c.t.Helper()
	org := c.organization()
	tok, secret, err := manage.CreateToken(context.Background(), via.server.Store(), via.server.Gateway(api).API(), org,
		keygate.TokenRequest{Name: "cluster test", Scopes: []string{"attendees:read"}, CreatedBy: "usr_test"}, time.Now())
	if err != nil {
		c.t.Fatalf("CreateToken: %v", err)
	}
	return tok, secret
}

// answer is a response's status and body.
type answer struct {
	status int
	body   string
}

var client = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64},
}

// get sends GET path to the instance's events API with the token. A
// transport failure is status 0 with the error as body, so goroutines
// other than the test's may call it.
func (in *instance) get(path, secret string) answer {
	req, err := http.NewRequest(http.MethodGet, in.base+path, nil)
	if err != nil {
		return answer{0, err.Error()}
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{0, err.Error()}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(body)}
}

// mustAccept fails the test unless the instance forwards a request with
// the token.
func (in *instance) mustAccept(t *testing.T, secret string) {
	t.Helper()
	if a := in.get("/api/v1/organization", secret); a.status != http.StatusOK {
		t.Fatalf("%s: token refused: %d %s", in.name, a.status, a.body)
	}
}

// mustCache accepts the token through the instance until the instance
// answers it from its cache. A lookup that a change arrived during (the
// creation of another token, say) is not cached, so one accepted request
// does not prove the next is served without the database.
func (in *instance) mustCache(t *testing.T, secret string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		before := in.cacheHits(t)
		in.mustAccept(t, secret)
		in.mustAccept(t, secret)
		if in.cacheHits(t) > before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the token was not served from the cache within 5s", in.name)
		}
	}
}

// cacheHits reads keygate_token_cache_hits_total from the admin listener.
func (in *instance) cacheHits(t *testing.T) int {
	t.Helper()
	resp, err := client.Get(in.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "keygate_token_cache_hits_total "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("keygate_token_cache_hits_total %q", v)
			}
			return int(n)
		}
	}
	t.Fatalf("%s: no keygate_token_cache_hits_total in /metrics", in.name)
	return 0
}

func withDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
