package config

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/preset"
)

func mustParse(t *testing.T, yaml string) *Config {
	t.Helper()
	cfg, err := Parse("keygate.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return cfg
}

func TestExampleParses(t *testing.T) {
	cfg := mustParse(t, string(Example()))
	var names []string
	for _, a := range cfg.APIs() {
		names = append(names, a.Name)
	}
	if want := []string{"cannmenus", "canskan", "inventory"}; !reflect.DeepEqual(names, want) {
		t.Errorf("example APIs = %v, want %v", names, want)
	}
}

func TestExampleReturnsACopy(t *testing.T) {
	Example()[0] = 'X'
	if Example()[0] == 'X' {
		t.Error("changing Example's result changed the example")
	}
}

func TestTracingEndpointGetsTheTracesPath(t *testing.T) {
	for in, want := range map[string]string{
		"http://otel-collector:4318":            "http://otel-collector:4318/v1/traces",
		"https://otel.example:4318/":            "https://otel.example:4318/v1/traces",
		"https://ingest.example/otlp/v1/traces": "https://ingest.example/otlp/v1/traces",
	} {
		cfg := mustParse(t, "tracing: {otlp_endpoint: '"+in+"', sample_ratio: 0.25, accept_incoming: none}\n"+minimal)
		if got := cfg.Tracing; got.OTLPEndpoint != want || !got.Enabled() || got.SampleRatio != 0.25 || got.AcceptIncoming != "none" {
			t.Errorf("%s: %+v, want endpoint %s", in, got, want)
		}
	}
	if mustParse(t, minimal).Tracing.Enabled() {
		t.Error("tracing is on by default")
	}
}

func TestDefaults(t *testing.T) {
	cfg := mustParse(t, minimal)
	want := &Config{
		File:        "keygate.yaml",
		DataDir:     "./keygate-data",
		DatabaseURL: "",
		Admin: Admin{
			Listen:        "127.0.0.1:8090",
			PublicURL:     "http://127.0.0.1:8090",
			SecureCookies: false,
		},
		TrustedProxies:   []netip.Prefix{},
		ForwardAuthPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		IPv6PrefixLength: 64,
		RateLimiter:      RateLimiter{Backend: "memory", RedisURL: "redis://127.0.0.1:6379/0", RedisMode: "single", RedisTimeout: 250 * time.Millisecond, OnRedisFailure: "local"},
		Cache:            Cache{TTL: 30 * time.Second, StaleIfError: 5 * time.Minute, StoreTimeout: 2 * time.Second, MaxEntries: 100000, NegativeTTL: 5 * time.Second, NegativeMaxEntries: 10000},
		Listeners:        Listeners{MaxConnections: 4096, ReadHeaderTimeout: 10 * time.Second, BodyIdleTimeout: 10 * time.Second, BodyTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute, AdminWriteTimeout: time.Minute, ShutdownGrace: 20 * time.Second},
		LastUsed:         LastUsed{FlushInterval: 10 * time.Second},
		Usage:            Usage{FlushInterval: time.Second},
		Webhooks:         Webhooks{MaxEndpointsPerOrganization: 10},
		Audit:            Audit{Retention: 365 * 24 * time.Hour},
		OAuth:            OAuth{AllowDynamicRegistration: true, AccessTokenTTL: time.Hour, RefreshTokenTTL: 720 * time.Hour},
		Log:              Log{Level: slog.LevelInfo, Format: "text"},
		Tracing:          Tracing{SampleRatio: 1, AcceptIncoming: "trusted_proxies"},
	}
	got := *cfg
	got.apis = nil
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("defaults\n got: %+v\nwant: %+v", got, *want)
	}
	if got, want := cfg.DatabasePath(), filepath.Join("keygate-data", "keygate.db"); got != want {
		t.Errorf("DatabasePath = %q, want %q", got, want)
	}

	api := cfg.API("cannmenus")
	if api == nil {
		t.Fatal(`API("cannmenus") = nil`)
	}
	wantAPI := &keygate.API{
		Name:      "cannmenus",
		Preset:    preset.CannMenus(),
		Listen:    "127.0.0.1:8080",
		PublicURL: "http://127.0.0.1:8080",
		Upstream:  "http://127.0.0.1:9080",
		// nginx's proxy_read_timeout.
		UpstreamTimeout: time.Minute,
		Tokens:          keygate.TokenPolicy{BasePrefix: "cannmenus_", AllowNever: true, MaxActiveTokens: 2},
		Routes:          []keygate.Route{{Methods: []string{"GET"}, Path: "/v2/products", Access: keygate.AccessToken}},
		// Every preset limits failed authentication per client address.
		FailedAuthRateLimit: &keygate.RateLimit{Key: keygate.LimitByIP, Limit: 60, Period: time.Minute},
	}
	if !reflect.DeepEqual(api, wantAPI) {
		t.Errorf("API defaults\n got: %+v\nwant: %+v", api, wantAPI)
	}
}

func TestDefaultTokenPrefixComesFromTheName(t *testing.T) {
	cfg := mustParse(t, strings.Replace(minimal, "name: cannmenus", "name: my-menus", 1))
	if got := cfg.APIs()[0].Tokens.BasePrefix; got != "my_menus_" {
		t.Errorf("BasePrefix = %q, want %q", got, "my_menus_")
	}
}

func TestAdminSettings(t *testing.T) {
	tests := []struct {
		admin      string
		publicURL  string
		secure     bool
		listenWant string
	}{
		{"admin: {listen: \"0.0.0.0:9000\"}\n", "http://localhost:9000", false, "0.0.0.0:9000"},
		{"admin: {listen: \":9000\"}\n", "http://localhost:9000", false, ":9000"},
		{"admin: {listen: \"[::1]:9000\"}\n", "http://[::1]:9000", false, "[::1]:9000"},
		{"admin: {public_url: \"https://keys.example.com/\"}\n", "https://keys.example.com", true, "127.0.0.1:8090"},
		{"admin: {public_url: \"https://keys.example.com\", secure_cookies: false}\n", "https://keys.example.com", false, "127.0.0.1:8090"},
		{"admin: {secure_cookies: true}\n", "http://127.0.0.1:8090", true, "127.0.0.1:8090"},
		{"admin: {public_url: \"https://example.com/keygate\", secure_cookies: auto}\n", "https://example.com/keygate", true, "127.0.0.1:8090"},
	}
	for _, tt := range tests {
		a := mustParse(t, tt.admin+minimal).Admin
		if a.PublicURL != tt.publicURL || a.SecureCookies != tt.secure || a.Listen != tt.listenWant {
			t.Errorf("%s-> %+v, want listen %q, public_url %q, secure %v", tt.admin, a, tt.listenWant, tt.publicURL, tt.secure)
		}
	}
}

func TestProcessSettings(t *testing.T) {
	cfg := mustParse(t, `data_dir: /var/lib/keygate
database_url: postgres://keygate@db:5432/keygate?sslmode=disable
trusted_proxies: [10.0.0.0/8, 192.168.1.7, "::1", 172.16.5.4/12]
rate_limiter: {backend: redis, redis_url: "rediss://cache:6380/2", on_redis_failure: closed}
cache: {ttl: 1m, stale_if_error: 0s, store_timeout: 750ms, max_entries: 5000, negative_ttl: 0s, negative_max_entries: 500}
last_used: {flush_interval: 1m30s}
log: {level: debug, format: json}
`+minimal)
	if cfg.DataDir != "/var/lib/keygate" || cfg.DatabaseURL != "postgres://keygate@db:5432/keygate?sslmode=disable" {
		t.Errorf("data_dir %q, database_url %q", cfg.DataDir, cfg.DatabaseURL)
	}
	wantProxies := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.168.1.7/32"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("172.16.0.0/12"),
	}
	if peers := mustParse(t, "forward_auth_peers: []\n"+minimal).ForwardAuthPeers; len(peers) != 0 {
		t.Errorf("forward_auth_peers: [] gave %v, want no peer", peers)
	}
	if peers := mustParse(t, "forward_auth_peers: [10.1.2.3, 172.16.0.0/12]\n"+minimal).ForwardAuthPeers; fmt.Sprint(peers) != "[10.1.2.3/32 172.16.0.0/12]" {
		t.Errorf("forward_auth_peers: %v", peers)
	}
	if !reflect.DeepEqual(cfg.TrustedProxies, wantProxies) {
		t.Errorf("TrustedProxies = %v, want %v", cfg.TrustedProxies, wantProxies)
	}
	if want := (RateLimiter{Backend: BackendRedis, RedisURL: "rediss://cache:6380/2", RedisMode: "single", RedisTimeout: 250 * time.Millisecond, OnRedisFailure: OnFailureClosed}); !reflect.DeepEqual(cfg.RateLimiter, want) {
		t.Errorf("RateLimiter = %+v, want %+v", cfg.RateLimiter, want)
	}
	if want := (Cache{TTL: time.Minute, StaleIfError: 0, StoreTimeout: 750 * time.Millisecond, MaxEntries: 5000, NegativeTTL: 0, NegativeMaxEntries: 500}); cfg.Cache != want {
		t.Errorf("Cache = %+v, want %+v", cfg.Cache, want)
	}
	if cfg.LastUsed.FlushInterval != 90*time.Second {
		t.Errorf("FlushInterval = %v", cfg.LastUsed.FlushInterval)
	}
	if cfg.Log != (Log{Level: slog.LevelDebug, Format: LogJSON}) {
		t.Errorf("Log = %+v", cfg.Log)
	}
	var b strings.Builder
	slog.New(cfg.Log.Handler(&b)).Debug("hello")
	if !strings.HasPrefix(b.String(), `{"time":`) || !strings.Contains(b.String(), `"msg":"hello"`) {
		t.Errorf("json debug handler wrote %q", b.String())
	}
}

func TestPresetResolution(t *testing.T) {
	cfg := mustParse(t, string(Example()))
	cannmenus, canskan, inventory := cfg.API("cannmenus"), cfg.API("canskan"), cfg.API("inventory")

	// Built-in presets arrive exactly as package preset defines them.
	if !reflect.DeepEqual(cannmenus.Preset, preset.CannMenus()) {
		t.Errorf("cannmenus preset differs from preset.CannMenus()")
	}
	if !reflect.DeepEqual(canskan.Preset, preset.CANSKAN()) {
		t.Errorf("canskan preset differs from preset.CANSKAN()")
	}
	// The example turns cannmenus's limits off explicitly; canskan keeps the
	// preset's defaults, copied.
	if cannmenus.PublicRateLimit != nil || cannmenus.TokenRateLimit != nil {
		t.Errorf("cannmenus limits = %+v, %+v, want none", cannmenus.PublicRateLimit, cannmenus.TokenRateLimit)
	}
	wantPublic := &keygate.RateLimit{Key: "ip", Limit: 10, Period: time.Minute}
	wantToken := &keygate.RateLimit{Key: "token", Limit: 60, Period: time.Minute}
	if !reflect.DeepEqual(canskan.PublicRateLimit, wantPublic) || !reflect.DeepEqual(canskan.TokenRateLimit, wantToken) {
		t.Errorf("canskan limits = %+v, %+v", canskan.PublicRateLimit, canskan.TokenRateLimit)
	}
	if canskan.PublicRateLimit == canskan.Preset.PublicRateLimit {
		t.Error("the API's public limit is the preset's pointer, want a copy")
	}
	if canskan.Tokens.MaxActiveTokens != 0 {
		t.Errorf("canskan MaxActiveTokens = %d, want 0 (unlimited)", canskan.Tokens.MaxActiveTokens)
	}
	if got := canskan.Routes[0]; got.Access != keygate.AccessPublic || got.Path != "/p/{code}" {
		t.Errorf("canskan first route = %+v", got)
	}

	// A custom preset: the file's header, scheme and responses, generic JSON
	// for the codes it leaves out.
	p := inventory.Preset
	if p.Name != "custom" || p.TokenHeader != "X-Api-Key" || p.TokenScheme != "" {
		t.Errorf("custom preset = %q %q %q", p.Name, p.TokenHeader, p.TokenScheme)
	}
	for code, want := range map[string]keygate.Response{
		keygate.ETOKENMISSING: {Status: 401, Body: `{"error": "missing key"}`},
		keygate.ETOKENINVALID: {Status: 401, Body: `{"error": "invalid key"}`},
		keygate.ETOKENEXPIRED: {Status: 401, Body: `{"error": "token_expired", "message": "The API token has expired."}`},
		keygate.ERATELIMITED:  {Status: 429, Body: `{"error": "rate_limited", "message": "Too many requests."}`},
		keygate.ENOTFOUND:     {Status: 404, Body: `{"error": "not_found", "message": "Not found."}`},
	} {
		if got := p.Responses[code]; got != want {
			t.Errorf("custom response %s = %+v, want %+v", code, got, want)
		}
	}
	status, body := p.Render(&keygate.Error{Code: keygate.EENTITLEMENT, Kind: keygate.EntitlementStates, Value: "New York"})
	if status != 403 || string(body) != `{"error": "no access to state New York"}` {
		t.Errorf("custom entitlement refusal = %d %s", status, body)
	}
	if want := (keygate.TokenPolicy{BasePrefix: "inv_", Scopes: []string{"stock:read", "stock:write"}, AllowNever: false, MaxActiveTokens: 10}); !reflect.DeepEqual(inventory.Tokens, want) {
		t.Errorf("inventory tokens = %+v, want %+v", inventory.Tokens, want)
	}
	if want := (&keygate.RateLimit{Key: "token", Limit: 60, Period: time.Minute, PlanLimits: map[string]int{"pro": 600}}); !reflect.DeepEqual(inventory.TokenRateLimit, want) {
		t.Errorf("inventory token limit = %+v", inventory.TokenRateLimit)
	}
	wantRoute := keygate.Route{
		Methods:      []string{"GET"},
		Path:         "/stock",
		Access:       keygate.AccessToken,
		Scopes:       []string{"stock:read"},
		Plans:        []string{},
		Entitlements: map[string]string{"states": "state"},
		RateLimit:    &keygate.RateLimit{Key: "org", Limit: 100, Period: time.Minute, PlanLimits: map[string]int{"pro": 1000}},
	}
	if !reflect.DeepEqual(inventory.Routes[1], wantRoute) {
		t.Errorf("inventory route\n got: %+v\nwant: %+v", inventory.Routes[1], wantRoute)
	}
	if got := inventory.Routes[0].Methods; !reflect.DeepEqual(got, []string{"GET", "HEAD"}) {
		t.Errorf("methods = %v", got)
	}
}

func TestCustomPresetDefaults(t *testing.T) {
	custom := func(block string) *keygate.Preset {
		t.Helper()
		return mustParse(t, strings.Replace(minimal, "preset: cannmenus", "preset: custom"+block, 1)).APIs()[0].Preset
	}
	tests := []struct {
		block, header, scheme string
	}{
		{"", "Authorization", "Bearer"},
		{"\n    custom_preset: {token_header: authorization}", "authorization", "Bearer"},
		{"\n    custom_preset: {token_header: Authorization, token_scheme: \"\"}", "Authorization", ""},
		{"\n    custom_preset: {token_header: X-Key}", "X-Key", ""},
		{"\n    custom_preset: {token_header: X-Key, token_scheme: Token}", "X-Key", "Token"},
		{"\n    custom_preset: {token_scheme: Token}", "Authorization", "Token"},
	}
	for _, tt := range tests {
		p := custom(tt.block)
		if p.TokenHeader != tt.header || p.TokenScheme != tt.scheme {
			t.Errorf("%q: header %q scheme %q, want %q %q", tt.block, p.TokenHeader, p.TokenScheme, tt.header, tt.scheme)
		}
	}
	// Every gateway outcome has an answer, so the gateway never falls back
	// to a body in another API's shape.
	p := custom("")
	for _, code := range []string{
		keygate.ETOKENMISSING, keygate.ETOKENINVALID, keygate.ETOKENEXPIRED, keygate.ESCOPE,
		keygate.EPLAN, keygate.EENTITLEMENT, keygate.ERATELIMITED, keygate.ENOTFOUND,
		keygate.EUPSTREAM, keygate.EUNAVAILABLE, keygate.EINTERNAL, keygate.ETOOLARGE, keygate.EINVALID,
	} {
		r, ok := p.Responses[code]
		if !ok || !strings.HasPrefix(r.Body, `{"error": "`+code+`", "message": "`) {
			t.Errorf("default custom response for %s = %+v", code, r)
		}
	}
	if p.PublicRateLimit != nil || p.TokenRateLimit != nil || p.MaxActiveTokens != 0 {
		t.Errorf("custom preset defaults: limits %v %v, max tokens %d", p.PublicRateLimit, p.TokenRateLimit, p.MaxActiveTokens)
	}
	// Only the status or only the body keeps the other default.
	p = custom("\n    custom_preset:\n      responses:\n        token_missing: {status: 404}\n        token_expired: {body: '{\"e\": 1}'}")
	if r := p.Responses[keygate.ETOKENMISSING]; r.Status != 404 || r.Body != `{"error": "token_missing", "message": "An API token is required."}` {
		t.Errorf("status-only override = %+v", r)
	}
	if r := p.Responses[keygate.ETOKENEXPIRED]; r.Status != 401 || r.Body != `{"e": 1}` {
		t.Errorf("body-only override = %+v", r)
	}
}

func TestRateLimitOverrides(t *testing.T) {
	canskan := `apis:
  - name: canskan
    preset: canskan
    listen: 127.0.0.1:8081
    upstream: http://127.0.0.1:9081
    routes:
      - methods: [GET]
        path: /p/{code}
        access: public
`
	limits := func(rateLimits string) (*keygate.RateLimit, *keygate.RateLimit) {
		t.Helper()
		api := mustParse(t, strings.Replace(canskan, "    routes:", rateLimits+"    routes:", 1)).APIs()[0]
		return api.PublicRateLimit, api.TokenRateLimit
	}
	presetPublic := &keygate.RateLimit{Key: "ip", Limit: 10, Period: time.Minute}
	presetToken := &keygate.RateLimit{Key: "token", Limit: 60, Period: time.Minute}
	tests := []struct {
		name, yaml          string
		wantPublic, wantTok *keygate.RateLimit
	}{
		{"left out", "", presetPublic, presetToken},
		{"empty block", "    rate_limits: {}\n", presetPublic, presetToken},
		{"none", "    rate_limits: {public: none}\n", nil, presetToken},
		{"null", "    rate_limits:\n      public: null\n      token: ~\n", nil, nil},
		{"empty value", "    rate_limits:\n      token:\n", presetPublic, nil},
		{"replaced", "    rate_limits:\n      token: {key: org, limit: 1000, period: 1h}\n", presetPublic, &keygate.RateLimit{Key: "org", Limit: 1000, Period: time.Hour}},
		{"key and period defaults", "    rate_limits:\n      public: {limit: 5}\n      token: {limit: 7}\n", &keygate.RateLimit{Key: "ip", Limit: 5, Period: time.Minute}, &keygate.RateLimit{Key: "token", Limit: 7, Period: time.Minute}},
	}
	for _, tt := range tests {
		gotPublic, gotToken := limits(tt.yaml)
		if !reflect.DeepEqual(gotPublic, tt.wantPublic) || !reflect.DeepEqual(gotToken, tt.wantTok) {
			t.Errorf("%s: public %+v token %+v, want %+v %+v", tt.name, gotPublic, gotToken, tt.wantPublic, tt.wantTok)
		}
	}
	// The built-in preset is never changed by an API's overrides.
	if !reflect.DeepEqual(preset.CANSKAN().PublicRateLimit, presetPublic) {
		t.Error("preset.CANSKAN changed")
	}
	// A route override defaults its key from the route's access.
	api := mustParse(t, canskan+"        rate_limit: {limit: 3}\n      - methods: [GET]\n        path: /api/v1/organization\n        rate_limit: {limit: 4, period: 10s}\n").APIs()[0]
	if want := (&keygate.RateLimit{Key: "ip", Limit: 3, Period: time.Minute}); !reflect.DeepEqual(api.Routes[0].RateLimit, want) {
		t.Errorf("public route limit = %+v", api.Routes[0].RateLimit)
	}
	if want := (&keygate.RateLimit{Key: "token", Limit: 4, Period: 10 * time.Second}); !reflect.DeepEqual(api.Routes[1].RateLimit, want) {
		t.Errorf("token route limit = %+v", api.Routes[1].RateLimit)
	}
}

func TestMaxActiveTokens(t *testing.T) {
	for yaml, want := range map[string]int{
		"":                           2,
		"    max_active_tokens: 5\n": 5,
		"    max_active_tokens: 0\n": 0,
	} {
		api := mustParse(t, strings.Replace(minimal, "    routes:", yaml+"    routes:", 1)).APIs()[0]
		if api.Tokens.MaxActiveTokens != want {
			t.Errorf("%q: MaxActiveTokens = %d, want %d", yaml, api.Tokens.MaxActiveTokens, want)
		}
		if api.Preset.MaxActiveTokens != 2 {
			t.Errorf("%q: the preset's own limit changed to %d", yaml, api.Preset.MaxActiveTokens)
		}
	}
}

func TestRoutePatternsAreAccepted(t *testing.T) {
	cfg := mustParse(t, minimal+`      - methods: [get, post]
        path: /v2/products/{id}
      - methods: [GET]
        path: /v2/files/{path...}
      - methods: [GET]
        path: /static/
      - methods: [GET]
        path: /{$}
      - methods: [DELETE]
        path: /v2/products
`)
	routes := cfg.APIs()[0].Routes
	if len(routes) != 6 || !reflect.DeepEqual(routes[1].Methods, []string{"GET", "POST"}) {
		t.Errorf("routes = %+v", routes)
	}
}

func TestAPIsReturnsCopies(t *testing.T) {
	cfg := mustParse(t, string(Example()))
	a := cfg.APIs()[2]
	a.Name = "changed"
	a.Preset.Responses[keygate.ETOKENMISSING] = keygate.Response{Status: 599}
	a.TokenRateLimit.PlanLimits["pro"] = 1
	a.Routes[1].Entitlements["brands"] = "brands"
	a.Routes[1].Scopes[0] = "changed"
	a.Routes[1].RateLimit.Limit = 1
	a.Tokens.Scopes[0] = "changed"

	b := cfg.API("inventory")
	if b == nil || b.Preset.Responses[keygate.ETOKENMISSING].Status != 401 || b.TokenRateLimit.PlanLimits["pro"] != 600 ||
		len(b.Routes[1].Entitlements) != 1 || b.Routes[1].Scopes[0] != "stock:read" || b.Routes[1].RateLimit.Limit != 100 ||
		b.Tokens.Scopes[0] != "stock:read" {
		t.Errorf("a change to one copy reached the next: %+v", b)
	}
	if cfg.API("nope") != nil {
		t.Error(`API("nope") != nil`)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keygate.yaml")
	if err := os.WriteFile(path, []byte("data_dir: data\n"+minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(DatabaseURLEnv, "")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "data"); cfg.DataDir != want {
		t.Errorf("DataDir = %q, want %q (relative to the file)", cfg.DataDir, want)
	}
	if cfg.File != path || cfg.DatabaseURL != "" {
		t.Errorf("File %q DatabaseURL %q", cfg.File, cfg.DatabaseURL)
	}

	t.Setenv(DatabaseURLEnv, "postgres://keygate:secret@db/keygate")
	cfg, err = Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DatabaseURL != "postgres://keygate:secret@db/keygate" {
		t.Errorf("DatabaseURL = %q, want the environment's", cfg.DatabaseURL)
	}

	t.Setenv(DatabaseReplicaURLsEnv, "postgres://keygate:secret@replica1/keygate, postgres://keygate:secret@replica2/keygate")
	cfg, err = Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"postgres://keygate:secret@replica1/keygate", "postgres://keygate:secret@replica2/keygate"}; !slices.Equal(cfg.DatabaseReplicaURLs, want) {
		t.Errorf("DatabaseReplicaURLs = %q, want the environment's %q", cfg.DatabaseReplicaURLs, want)
	}
	t.Setenv(DatabaseReplicaURLsEnv, "postgres://replica1/keygate,redis://replica2")
	if _, err = Load(path); err == nil || !strings.Contains(err.Error(), "KEYGATE_DATABASE_REPLICA_URLS: URL 2 must be a postgres:// URL") {
		t.Errorf("Load with a bad replica URL = %v", err)
	}
	t.Setenv(DatabaseURLEnv, "")
	t.Setenv(DatabaseReplicaURLsEnv, "postgres://replica1/keygate")
	if _, err = Load(path); err == nil || !strings.Contains(err.Error(), "database_replica_urls: needs database_url") {
		t.Errorf("Load with replicas and SQLite = %v", err)
	}
	t.Setenv(DatabaseReplicaURLsEnv, "")

	t.Setenv(DatabaseURLEnv, "mysql://root:secret@db/keygate")
	_, err = Load(path)
	if want := `KEYGATE_DATABASE_URL: must be a postgres:// URL such as "postgres://keygate@db:5432/keygate", or empty for SQLite; got scheme "mysql"`; err == nil || err.Error() != want {
		t.Errorf("Load with a bad env URL = %v, want %s", err, want)
	}

	if err := os.WriteFile(path, []byte(minimal+"        access: tokn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	if want := path + `:9: apis[0].routes[0].access: must be "public" or "token", got "tokn"`; err == nil || err.Error() != want {
		t.Errorf("Load error = %v, want %s", err, want)
	}

	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Load(missing) = %v", err)
	}
}

func TestLoadKeepsAbsoluteDataDir(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keygate.yaml")
	abs := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.WriteFile(path, []byte("data_dir: "+abs+"\n"+minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != abs {
		t.Errorf("DataDir = %q, want %q", cfg.DataDir, abs)
	}
}

func TestNoAPIs(t *testing.T) {
	for _, yaml := range []string{"data_dir: /tmp/kg\n", "apis: []\n", "log: {level: warn}\napis:\n"} {
		cfg := mustParse(t, yaml)
		if len(cfg.APIs()) != 0 {
			t.Errorf("%q: APIs = %v", yaml, cfg.APIs())
		}
	}
}
