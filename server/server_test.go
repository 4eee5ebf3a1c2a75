package server_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/identity"
	"github.com/keygate/keygate/internal/logtest"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/server"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type running struct {
	srv    *server.Server
	admin  string
	events string
	logs   *logtest.Buffer
	// dataDir holds the SQLite database.
	dataDir string
}

// parseConfig is the keygate configuration of a test's YAML.
func parseConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// newServer is keygate made of cfg and opts, not started; the caller
// starts it (startServer) or owns its shutdown.
func newServer(t *testing.T, cfg *config.Config, opts server.Options) *server.Server {
	t.Helper()
	srv, err := server.New(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// startServer starts srv and shuts it down when the test ends.
func startServer(t *testing.T, srv *server.Server) {
	t.Helper()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
}

// runServer is keygate running the configuration yaml with opts until
// the test ends.
func runServer(t *testing.T, yaml string, opts server.Options) *server.Server {
	t.Helper()
	srv := newServer(t, parseConfig(t, yaml), opts)
	startServer(t, srv)
	return srv
}

// eventsAPI is the apis section of a test that needs an API listening on
// listen and nothing more of it: canskan's events with one public route,
// in front of an upstream nothing answers on.
func eventsAPI(listen string) string {
	return `apis:
  - name: events
    preset: canskan
    listen: ` + listen + `
    upstream: http://127.0.0.1:9
    routes:
      - {methods: [GET], path: '/p/{code}', access: public}
`
}

// quietLogger is the logger of a test that reads no log lines.
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// debugLogger logs everything, down to debug lines, into logs, for a test
// that reads them.
func debugLogger(logs *logtest.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// start runs keygate with one canskan API in front of upstream.
func start(t *testing.T, upstream, rateLimiter string) *running {
	t.Helper()
	r := &running{admin: freeAddr(t), events: freeAddr(t), logs: &logtest.Buffer{}, dataDir: t.TempDir()}
	r.srv = runServer(t, `
data_dir: `+r.dataDir+`
admin: {listen: `+r.admin+`}
rate_limiter: `+rateLimiter+`
apis:
  - name: events
    preset: canskan
    listen: `+r.events+`
    upstream: `+upstream+`
    token_prefix: ev_
    scopes: [attendees:read]
    routes:
      - {methods: [GET], path: '/p/{code}', access: public}
      - {methods: [GET], path: /attendees, access: token, scopes: [attendees:read]}
`, server.Options{Logger: debugLogger(r.logs)})
	return r
}

func (r *running) token(t *testing.T) (*keygate.Token, string) {
	t.Helper()
	ctx := context.Background()
	org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free", Entitlements: keygate.Entitlements{States: []string{"Oregon"}}}
	if err := manage.CreateOrganization(ctx, r.srv.Store(), org, time.Now()); err != nil {
		t.Fatal(err)
	}
	api := r.srv.APIs()[0]
	tok, secret, err := manage.CreateToken(ctx, r.srv.Store(), api, org, keygate.TokenRequest{Name: "t", Scopes: []string{"attendees:read"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok, secret
}

func fetch(t *testing.T, url string, header ...string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func echoUpstream(t *testing.T) *httptest.Server {
	u := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"identity": r.Header.Get(keygate.HeaderIdentity)})
	}))
	t.Cleanup(u.Close)
	return u
}

func TestRedisDownClosedModeAnswers503InPresetShape(t *testing.T) {
	r := start(t, echoUpstream(t).URL, "{backend: redis, redis_url: 'redis://127.0.0.1:1/0', on_redis_failure: closed}")
	status, body, _ := fetch(t, "http://"+r.events+"/p/abc")
	if status != 503 || body != `{"message": "Service Unavailable."}` {
		t.Errorf("closed mode: %d %s", status, body)
	}
	status, body, _ = fetch(t, "http://"+r.admin+"/readyz")
	if status != 503 || !strings.Contains(body, "closed mode") {
		t.Errorf("readyz in closed mode: %d %s", status, body)
	}
}

// With Redis down in the closed mode the invitation pages, which anyone
// may open, are neither refused nor served unlimited: this instance limits
// them in memory, 30 a minute per address, and says so in its log.
func TestRedisDownClosedModeLimitsInvitationPagesInMemory(t *testing.T) {
	r := start(t, echoUpstream(t).URL, "{backend: redis, redis_url: 'redis://127.0.0.1:1/0', on_redis_failure: closed}")
	page := "http://" + r.admin + "/invitations/" + strings.Repeat("A", 43)
	for i := 1; i <= 30; i++ {
		status, body, h := fetch(t, page)
		if status != 404 || !strings.Contains(body, "This invitation is not valid") || h.Get("X-RateLimit-Remaining") != strconv.Itoa(30-i) {
			t.Fatalf("visit %d: %d, remaining %q", i, status, h.Get("X-RateLimit-Remaining"))
		}
	}
	status, body, h := fetch(t, page)
	if status != 429 || !strings.Contains(body, "Too many requests from your address") || h.Get("Retry-After") == "" {
		t.Errorf("31st visit with Redis down in closed mode: %d, Retry-After %q", status, h.Get("Retry-After"))
	}
	if logs := r.logs.String(); !strings.Contains(logs, "rate limiter unavailable for invitation pages; limiting them in memory on this instance until it answers") {
		t.Errorf("no log line for invitation pages limited in memory:\n%s", logs)
	}
}

// With Redis down in the closed mode the OAuth endpoints anyone may call,
// each of which may make keygate fetch a client metadata document or store
// a registration, are neither refused nor served unlimited: this instance
// limits them in memory, each route to its limit per address, and says so
// once in its log.
func TestRedisDownClosedModeLimitsOAuthEndpointsInMemory(t *testing.T) {
	r := start(t, echoUpstream(t).URL, "{backend: redis, redis_url: 'redis://127.0.0.1:1/0', on_redis_failure: closed}")
	form := func(values ...string) string {
		q := url.Values{}
		for i := 0; i < len(values); i += 2 {
			q.Set(values[i], values[i+1])
		}
		return q.Encode()
	}
	for _, tt := range []struct {
		method, path, contentType, body string
		limit                           int
	}{
		{"POST", "/oauth/register", "application/json", `{"client_name": "probe", "redirect_uris": ["http://127.0.0.1:7777/callback"], "token_endpoint_auth_method": "none"}`, 20},
		{"POST", "/oauth/token", "application/x-www-form-urlencoded", form("grant_type", "refresh_token", "client_id", "probe", "refresh_token", "x"), 120},
		{"POST", "/oauth/revoke", "application/x-www-form-urlencoded", form("token", "kgo_at_x", "client_id", "probe"), 120},
		{"GET", "/oauth/authorize?" + form("response_type", "code", "client_id", "probe"), "", "", 30},
		{"POST", "/oauth/authorize", "application/x-www-form-urlencoded", form("request", form("response_type", "code", "client_id", "probe"), "decision", "approve"), 30},
	} {
		t.Run(tt.method+" "+strings.SplitN(tt.path, "?", 2)[0], func(t *testing.T) {
			call := func() (*http.Response, string) {
				req, _ := http.NewRequest(tt.method, "http://"+r.admin+tt.path, strings.NewReader(tt.body))
				if tt.contentType != "" {
					req.Header.Set("Content-Type", tt.contentType)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp, string(b)
			}
			for i := 1; i <= tt.limit; i++ {
				resp, body := call()
				if left := resp.Header.Get("X-RateLimit-Remaining"); resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable || left != strconv.Itoa(tt.limit-i) {
					t.Fatalf("request %d: %d, remaining %q; want served, %d left: %s", i, resp.StatusCode, left, tt.limit-i, body)
				}
			}
			resp, body := call()
			if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Content-Type") != "application/json" ||
				body != `{"error":"too_many_requests","error_description":"Too many requests from this address; retry later."}` {
				t.Errorf("request %d past the limit: %d %v %s", tt.limit+1, resp.StatusCode, resp.Header, body)
			}
		})
	}
	if n := strings.Count(r.logs.String(), "rate limiter unavailable for OAuth endpoints; limiting them in memory on this instance until it answers"); n != 1 {
		t.Errorf("the outage was logged as limiting the OAuth endpoints in memory %d times, want once:\n%s", n, r.logs.String())
	}
}

func TestRedisDownLocalModeKeepsLimitingInMemory(t *testing.T) {
	r := start(t, echoUpstream(t).URL, "{backend: redis, redis_url: 'redis://127.0.0.1:1/0', on_redis_failure: local}")
	for i := 1; i <= 10; i++ {
		status, _, h := fetch(t, "http://"+r.events+"/p/abc")
		if status != 200 || h.Get("X-RateLimit-Remaining") != strconv.Itoa(10-i) {
			t.Fatalf("request %d: %d remaining %s", i, status, h.Get("X-RateLimit-Remaining"))
		}
	}
	if status, body, _ := fetch(t, "http://"+r.events+"/p/abc"); status != 429 || body != `{"message": "Too Many Attempts."}` {
		t.Errorf("11th with Redis down in local mode: %d %s", status, body)
	}
	status, body, _ := fetch(t, "http://"+r.admin+"/readyz")
	if status != 200 || !strings.Contains(body, "in-memory limiter (local mode)") {
		t.Errorf("readyz in local mode: %d %s", status, body)
	}
	if _, metrics, _ := fetch(t, "http://"+r.admin+"/metrics"); !strings.Contains(metrics, "keygate_ratelimit_degraded 1") {
		t.Error("degraded gauge not set")
	}
}

func TestIdentityVerifiesWithThePublishedJWKSAndSecretsStayOutOfLogsAndMetrics(t *testing.T) {
	r := start(t, echoUpstream(t).URL, "{backend: memory}")
	tok, secret := r.token(t)
	status, body, _ := fetch(t, "http://"+r.events+"/attendees", "Authorization", "Bearer "+secret)
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	var echoed map[string]string
	_ = json.Unmarshal([]byte(body), &echoed)
	_, jwks, _ := fetch(t, "http://"+r.admin+"/.well-known/jwks.json")
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(jwks), &set); err != nil {
		t.Fatal(err)
	}
	id, err := identity.NewVerifier(set).Verify(echoed["identity"], "events")
	if err != nil {
		t.Fatalf("identity does not verify with the published JWKS: %v", err)
	}
	if id.TokenID != tok.ID || id.Entitlements.States[0] != "Oregon" {
		t.Errorf("identity %+v", id)
	}
	fetch(t, "http://"+r.events+"/attendees", "Authorization", "Bearer "+secret+"x")
	_, metrics, _ := fetch(t, "http://"+r.admin+"/metrics")
	if !strings.Contains(metrics, `keygate_requests_total{api="events",outcome="ok"} 1`) ||
		!strings.Contains(metrics, `keygate_requests_total{api="events",outcome="token_invalid"} 1`) {
		t.Errorf("request counters missing:\n%s", grep(metrics, "keygate_requests_total"))
	}
	// The one token request is counted, written within usage.flush_interval.
	if !strings.Contains(metrics, "keygate_usage_unwritten_requests ") || !strings.Contains(metrics, "keygate_usage_write_failures_total 0") {
		t.Errorf("usage metrics missing:\n%s", grep(metrics, "keygate_usage"))
	}
	for where, text := range map[string]string{"metrics": metrics, "logs": r.logs.String()} {
		if strings.Contains(text, secret) || strings.Contains(text, secret[8:30]) {
			t.Errorf("the token appears in %s", where)
		}
	}
	if !strings.Contains(r.logs.String(), tok.ID) {
		t.Error("debug log does not name the token id")
	}
}

func grep(text, word string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, word) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func TestShutdownFinishesInFlightRequests(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		_, _ = io.WriteString(w, `{"done":true}`)
	}))
	defer slow.Close()
	r := start(t, slow.URL, "{backend: memory}")
	result := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + r.events + "/p/slow")
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(b)
	}()
	<-arrived
	done := make(chan error, 1)
	go func() { done <- r.srv.Shutdown(context.Background()) }()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("shutdown returned before the in-flight request finished: %v", err)
	default:
	}
	if _, err := net.DialTimeout("tcp", r.events, 200*time.Millisecond); err == nil {
		t.Error("listener still accepts connections during shutdown")
	}
	close(release)
	if got := <-result; got != `{"done":true}` {
		t.Errorf("in-flight request got %q", got)
	}
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func TestPortInUseFailsStartWithTheAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := newServer(t, parseConfig(t, "data_dir: "+t.TempDir()+"\nadmin: {listen: '"+ln.Addr().String()+"'}\n"), server.Options{})
	defer srv.Shutdown(context.Background())
	if err := srv.Start(); err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("start on a taken port: %v", err)
	}
}

func TestAPIsShareAListenerByHost(t *testing.T) {
	up := echoUpstream(t)
	addr, admin := freeAddr(t), freeAddr(t)
	srv := runServer(t, `
data_dir: `+t.TempDir()+`
admin: {listen: `+admin+`}
apis:
  - {name: menus, preset: cannmenus, listen: `+addr+`, host: menus.test, upstream: `+up.URL+`, routes: [{methods: [GET], path: /v2/products}]}
  - {name: events, preset: canskan, listen: `+addr+`, host: events.test, upstream: `+up.URL+`, routes: [{methods: [GET], path: /v2/products}]}
`, server.Options{})
	if srv.Addr("menus") != addr || srv.Addr("events") != addr {
		t.Fatalf("addresses %q %q", srv.Addr("menus"), srv.Addr("events"))
	}
	for host, want := range map[string]string{
		"menus.test":      `{"detail": "Not Found"}`,
		"EVENTS.test:443": `{"message": "API token required."}`,
		"other.test":      `{"error": "No API is configured for this host."}`,
	} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/v2/products", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want {
			t.Errorf("Host %s: got %s, want %s", host, b, want)
		}
	}
}

// Dynamic registration is open to anyone, so it is limited per address.
func TestOAuthRegistrationIsLimitedPerAddress(t *testing.T) {
	r := start(t, echoUpstream(t).URL, "{backend: memory}")
	body := `{"client_name": "probe", "redirect_uris": ["http://127.0.0.1:7777/callback"], "token_endpoint_auth_method": "none"}`
	for i := 1; i <= 21; i++ {
		resp, err := http.Post("http://"+r.admin+"/oauth/register", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case i <= 20 && resp.StatusCode != http.StatusCreated:
			t.Fatalf("registration %d: %d %s", i, resp.StatusCode, b)
		case i == 21 && (resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "too_many_requests")):
			t.Fatalf("registration 21: %d %s %v", resp.StatusCode, b, resp.Header)
		}
	}
}

// Every endpoint that reads a client_id makes keygate fetch the metadata
// document of a new client_id URL, so each is limited per address: the
// consent form and the revocation endpoint as much as the authorization
// and token endpoints. Past its limit an address gets 429 and causes no
// fetch.
func TestOAuthMetadataFetchesAreLimitedPerAddress(t *testing.T) {
	var mu sync.Mutex
	fetched := map[string]int{} // endpoint → documents fetched for it
	documents := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fetched[strings.Split(r.URL.Path, "/")[1]]++
		mu.Unlock()
		http.NotFound(w, r)
	}))
	t.Cleanup(documents.Close)
	roots := x509.NewCertPool()
	roots.AddCert(documents.Certificate())

	admin := freeAddr(t)
	runServer(t, `
data_dir: `+t.TempDir()+`
admin: {listen: `+admin+`}
rate_limiter: {backend: memory}
oauth: {allow_private_cimd: true}
apis:
  - {name: events, preset: canskan, listen: `+freeAddr(t)+`, upstream: http://127.0.0.1:9, routes: [{methods: [GET], path: /attendees}]}
`, server.Options{OAuthRootCAs: roots})

	form := func(values ...string) *strings.Reader {
		q := url.Values{}
		for i := 0; i < len(values); i += 2 {
			q.Set(values[i], values[i+1])
		}
		return strings.NewReader(q.Encode())
	}
	for _, tt := range []struct {
		endpoint string
		limit    int
		request  func(clientID string) *http.Request
	}{
		{"authorize", 30, func(clientID string) *http.Request {
			req, _ := http.NewRequest("GET", "http://"+admin+"/oauth/authorize?"+url.Values{"response_type": {"code"}, "client_id": {clientID}}.Encode(), nil)
			return req
		}},
		{"consent", 30, func(clientID string) *http.Request {
			request := url.Values{"response_type": {"code"}, "client_id": {clientID}}.Encode()
			req, _ := http.NewRequest("POST", "http://"+admin+"/oauth/authorize", form("request", request, "decision", "approve"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return req
		}},
		{"token", 120, func(clientID string) *http.Request {
			req, _ := http.NewRequest("POST", "http://"+admin+"/oauth/token", form("grant_type", "refresh_token", "client_id", clientID))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return req
		}},
		{"revoke", 120, func(clientID string) *http.Request {
			req, _ := http.NewRequest("POST", "http://"+admin+"/oauth/revoke", form("token", "kgo_at_x", "client_id", clientID))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return req
		}},
	} {
		t.Run(tt.endpoint, func(t *testing.T) {
			for i := 1; i <= tt.limit+1; i++ {
				resp, err := http.DefaultClient.Do(tt.request(fmt.Sprintf("%s/%s/%d/client.json", documents.URL, tt.endpoint, i)))
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				limited := resp.StatusCode == http.StatusTooManyRequests
				switch {
				case i <= tt.limit && limited:
					t.Fatalf("request %d refused: %s", i, b)
				case i == tt.limit+1 && (!limited || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "too_many_requests")):
					t.Fatalf("request %d past the limit of %d: %d %s", i, tt.limit, resp.StatusCode, b)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if fetched[tt.endpoint] != tt.limit {
				t.Errorf("%d metadata documents fetched, want %d (one per request within the limit)", fetched[tt.endpoint], tt.limit)
			}
		})
	}
}
