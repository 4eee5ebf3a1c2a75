package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/preset"
)

// Defaults for settings left out of the file.
const (
	DefaultDataDir       = "./keygate-data"
	DefaultAdminListen   = "127.0.0.1:8090"
	DefaultRedisURL      = "redis://127.0.0.1:6379/0"
	DefaultCacheTTL      = 30 * time.Second
	DefaultStaleIfError  = 5 * time.Minute
	DefaultFlushInterval = 10 * time.Second
	// DefaultRateLimitPeriod applies when a rate limit leaves period out.
	DefaultRateLimitPeriod = time.Minute
)

// CustomPreset is the preset name for an API whose wire behaviour is
// written in its custom_preset block instead of taken from package preset.
const CustomPreset = "custom"

// httpMethods are the methods a route may list. CONNECT and TRACE are left
// out on purpose: a reverse proxy has no business forwarding them.
var httpMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

var (
	apiNameRe     = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	tokenPrefixRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_]*_$`)
	// A scope or plan is one word of printable ASCII: no spaces (OAuth scope
	// lists are space-separated), commas (identity headers list them with
	// commas), quotes or backslashes.
	wordRe       = regexp.MustCompile(`^[\x21\x23-\x2B\x2D-\x5B\x5D-\x7E]+$`)
	queryParamRe = regexp.MustCompile(`^[A-Za-z0-9_.\-\[\]]+$`)
	headerNameRe = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
)

const (
	maxAPINameLength = 63
	// maxTokenPrefixLength leaves room for the environment ("live_") within
	// the 32 prefix characters keygate.MaxTokenLength allows.
	maxTokenPrefixLength = 27
)

// checker walks a decoded file, fills in defaults, and records every
// problem with the line of the setting it is about.
type checker struct {
	file string
	pos  *positions
	errs Errors
}

func (c *checker) fail(path, format string, args ...any) {
	c.errs = append(c.errs, &Error{File: c.file, Line: c.pos.line(path), Path: path, Reason: fmt.Sprintf(format, args...)})
}

// written reports whether path is present in the file, whatever its value.
func (c *checker) written(path string) bool {
	return c.pos.value(path) != nil
}

func (c *checker) isNull(path string) bool {
	n := c.pos.value(path)
	return n != nil && n.ShortTag() == "!!null"
}

func (c *checker) config(f *fileConfig) *Config {
	cfg := &Config{
		File:           c.file,
		DataDir:        withDefault(f.DataDir, DefaultDataDir),
		DatabaseURL:    f.DatabaseURL,
		Admin:          c.admin(f.Admin),
		TrustedProxies: c.trustedProxies(f.TrustedProxies),
		RateLimiter:    c.rateLimiter(f.RateLimiter),
		Cache: Cache{
			TTL:          c.duration("cache.ttl", f.Cache.TTL, DefaultCacheTTL, false),
			StaleIfError: c.duration("cache.stale_if_error", f.Cache.StaleIfError, DefaultStaleIfError, true),
		},
		LastUsed: LastUsed{
			FlushInterval: c.duration("last_used.flush_interval", f.LastUsed.FlushInterval, DefaultFlushInterval, false),
		},
		Log: c.log(f.Log),
	}
	if reason := databaseURLProblem(f.DatabaseURL); f.DatabaseURL != "" && reason != "" {
		c.fail("database_url", "%s", reason)
	}
	cfg.apis = c.apis(f.APIs, cfg.Admin.Listen)
	return cfg
}

func withDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// oneOf returns got when it is allowed, def when it was left out.
func (c *checker) oneOf(path, got, def string, allowed ...string) string {
	if got == "" {
		return def
	}
	if !contains(allowed, got) {
		c.fail(path, "must be %s, got %q", orList(allowed), got)
		return def
	}
	return got
}

// orList words a set of choices: `"a" or "b"`, `one of "a", "b", "c"`.
func orList(allowed []string) string {
	quoted := make([]string, len(allowed))
	for i, a := range allowed {
		quoted[i] = strconv.Quote(a)
	}
	if len(quoted) == 2 {
		return quoted[0] + " or " + quoted[1]
	}
	return "one of " + strings.Join(quoted, ", ")
}

func (c *checker) duration(path, got string, def time.Duration, zeroAllowed bool) time.Duration {
	if got == "" {
		return def
	}
	d, err := time.ParseDuration(got)
	switch {
	case err != nil:
		c.fail(path, `must be a duration such as "30s", "5m" or "1h", got %q`, got)
	case d < 0 || (d == 0 && !zeroAllowed):
		c.fail(path, "must be greater than 0, got %q", got)
	default:
		return d
	}
	return def
}

// listen checks a host:port listen address; the host may be empty (every
// interface), an IP address or a name.
func (c *checker) listen(path, got string) string {
	if got == "" {
		c.fail(path, `is required, e.g. "127.0.0.1:8080"`)
		return ""
	}
	host, port, err := net.SplitHostPort(got)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n < 0 || n > 65535 || strings.ContainsAny(host, " /") {
		c.fail(path, `must be host:port such as "127.0.0.1:8080", got %q`, got)
		return ""
	}
	return got
}

// httpURLProblem says what is wrong with an http(s) URL, or "".
func httpURLProblem(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return "must be an http:// or https:// URL"
	}
	if u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s, "?") || strings.Contains(s, "#") {
		return "must not have a query or fragment"
	}
	return ""
}

// databaseURLProblem never repeats the URL: it may carry a password.
func databaseURLProblem(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return `must be a postgres:// URL such as "postgres://keygate@db:5432/keygate", or empty for SQLite`
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return fmt.Sprintf(`must be a postgres:// URL such as "postgres://keygate@db:5432/keygate", or empty for SQLite; got scheme %q`, u.Scheme)
	}
	return ""
}

func (c *checker) admin(f fileAdmin) Admin {
	a := Admin{Listen: DefaultAdminListen}
	if f.Listen != "" {
		a.Listen = c.listen("admin.listen", f.Listen)
	}
	a.PublicURL = publicURLFor(a.Listen)
	if f.PublicURL != "" {
		if reason := httpURLProblem(f.PublicURL); reason != "" {
			c.fail("admin.public_url", `%s such as "https://keygate.example.com", got %q`, reason, f.PublicURL)
		} else {
			a.PublicURL = strings.TrimRight(f.PublicURL, "/")
		}
	}
	mode := c.oneOf("admin.secure_cookies", f.SecureCookies, "auto", "auto", "true", "false")
	a.SecureCookies = mode == "true" || (mode == "auto" && strings.HasPrefix(a.PublicURL, "https://"))
	return a
}

// publicURLFor derives the admin URL from its listen address; a wildcard
// host becomes localhost, which is right for a first local start.
func publicURLFor(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return ""
	}
	if wildcardHost(host) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func wildcardHost(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::"
}

func (c *checker) trustedProxies(list []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(list))
	for i, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(s); err == nil {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		} else {
			c.fail(fmt.Sprintf("trusted_proxies[%d]", i), `must be an IP address or CIDR such as "10.0.0.0/8", got %q`, s)
		}
	}
	return out
}

func (c *checker) rateLimiter(f fileRateLimiter) RateLimiter {
	r := RateLimiter{
		Backend:        c.oneOf("rate_limiter.backend", f.Backend, BackendMemory, BackendMemory, BackendRedis),
		RedisURL:       withDefault(f.RedisURL, DefaultRedisURL),
		OnRedisFailure: c.oneOf("rate_limiter.on_redis_failure", f.OnRedisFailure, OnFailureLocal, OnFailureLocal, OnFailureClosed),
	}
	if u, err := url.Parse(r.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
		c.fail("rate_limiter.redis_url", `must be a redis://, rediss:// or unix:// URL such as "redis://127.0.0.1:6379/0"`)
	}
	return r
}

func (c *checker) log(f fileLog) Log {
	levels := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
	level := c.oneOf("log.level", f.Level, "info", "debug", "info", "warn", "error")
	return Log{
		Level:  levels[level],
		Format: c.oneOf("log.format", f.Format, LogText, LogText, LogJSON),
	}
}

// apis checks each API and what APIs must not share: names, token
// prefixes and listen addresses (with the admin listener's). No APIs at all
// is allowed: commands that only manage organizations and users need none.
func (c *checker) apis(list []fileAPI, adminListen string) []*keygate.API {
	names := map[string]string{}
	prefixes := map[string]string{}
	listens := [][2]string{{"admin.listen", adminListen}}
	apis := make([]*keygate.API, 0, len(list))
	for i := range list {
		path := fmt.Sprintf("apis[%d]", i)
		api := c.api(path, &list[i])
		if prev, dup := names[api.Name]; dup && api.Name != "" {
			c.fail(path+".name", "%q is already the name of %s", api.Name, prev)
		} else {
			names[api.Name] = path
		}
		if prev, dup := prefixes[api.Tokens.BasePrefix]; dup && api.Tokens.BasePrefix != "" {
			c.fail(path+".token_prefix", "%q is already used by %s; each API needs its own so a token says where it belongs", api.Tokens.BasePrefix, prev)
		} else {
			prefixes[api.Tokens.BasePrefix] = path
		}
		for _, l := range listens {
			if reason := listenConflict(api.Listen, l[1]); reason != "" {
				c.fail(path+".listen", "%q %s %s", api.Listen, reason, l[0])
				break
			}
		}
		listens = append(listens, [2]string{path + ".listen", api.Listen})
		apis = append(apis, api)
	}
	return apis
}

// listenConflict says how two listen addresses collide, or "". Port 0
// picks a free port, so it never collides.
func listenConflict(a, b string) string {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	switch {
	case err1 != nil || err2 != nil || pa != pb || pa == "0":
		return ""
	case ha == hb:
		return "is already used by"
	case wildcardHost(ha) || wildcardHost(hb):
		return "overlaps"
	}
	return ""
}

func (c *checker) api(path string, f *fileAPI) *keygate.API {
	api := &keygate.API{Name: f.Name}
	switch {
	case f.Name == "":
		c.fail(path+".name", `is required, e.g. "cannmenus"`)
	case !apiNameRe.MatchString(f.Name) || len(f.Name) > maxAPINameLength:
		c.fail(path+".name", `must be lower-case letters, digits, "-" and "_" (at most %d), got %q`, maxAPINameLength, f.Name)
	}
	api.Preset = c.preset(path, f)
	api.Listen = c.listen(path+".listen", f.Listen)
	if f.Upstream == "" {
		c.fail(path+".upstream", `is required, e.g. "http://127.0.0.1:9080"`)
	} else if reason := httpURLProblem(f.Upstream); reason != "" {
		c.fail(path+".upstream", `%s such as "http://127.0.0.1:9080", got %q`, reason, f.Upstream)
	}
	api.Upstream = f.Upstream
	api.Tokens = c.tokenPolicy(path, f, api.Preset)
	api.PublicRateLimit = c.defaultRateLimit(path+".rate_limits.public", f.RateLimits.Public, api.Preset.PublicRateLimit, keygate.AccessPublic)
	api.TokenRateLimit = c.defaultRateLimit(path+".rate_limits.token", f.RateLimits.Token, api.Preset.TokenRateLimit, keygate.AccessToken)
	api.Routes = c.routes(path, f.Routes, api.Tokens.Scopes)
	return api
}

// preset returns a fresh preset for the API. On a problem it returns an
// empty preset so the rest of the API can still be checked.
func (c *checker) preset(path string, f *fileAPI) *keygate.Preset {
	names := append(preset.Names(), CustomPreset)
	if f.Preset == CustomPreset {
		return c.customPreset(path+".custom_preset", f.CustomPreset)
	}
	if f.CustomPreset != nil {
		c.fail(path+".custom_preset", "is only allowed with preset: custom (this API has preset %q)", f.Preset)
	}
	if f.Preset == "" {
		c.fail(path+".preset", "is required: %s", orList(names))
		return &keygate.Preset{}
	}
	p := preset.Lookup(f.Preset)
	if p == nil {
		c.fail(path+".preset", "must be %s, got %q", orList(names), f.Preset)
		return &keygate.Preset{}
	}
	return p
}

// customResponses are a custom preset's answers for the codes its config
// leaves out: generic JSON naming the error code, so clients can branch on
// "error" and people can read "message".
func customResponses() map[string]keygate.Response {
	r := func(status int, code, message string) keygate.Response {
		return keygate.Response{Status: status, Body: `{"error": "` + code + `", "message": "` + message + `"}`}
	}
	return map[string]keygate.Response{
		keygate.ETOKENMISSING: r(401, keygate.ETOKENMISSING, "An API token is required."),
		keygate.ETOKENINVALID: r(401, keygate.ETOKENINVALID, "The API token is invalid."),
		keygate.ETOKENEXPIRED: r(401, keygate.ETOKENEXPIRED, "The API token has expired."),
		keygate.ESCOPE:        r(403, keygate.ESCOPE, "The API token does not have the scope this endpoint requires."),
		keygate.EPLAN:         r(403, keygate.EPLAN, "Your plan does not include this endpoint."),
		keygate.EENTITLEMENT:  r(403, keygate.EENTITLEMENT, "Your organization does not have access to {kind} {value}."),
		keygate.ERATELIMITED:  r(429, keygate.ERATELIMITED, "Too many requests."),
		keygate.ENOTFOUND:     r(404, keygate.ENOTFOUND, "Not found."),
		keygate.EUPSTREAM:     r(502, keygate.EUPSTREAM, "The upstream API could not be reached."),
		keygate.EUNAVAILABLE:  r(503, keygate.EUNAVAILABLE, "Service unavailable."),
		keygate.EINTERNAL:     r(500, keygate.EINTERNAL, "Internal server error."),
		keygate.ETOOLARGE:     r(413, keygate.ETOOLARGE, "The request body is too large."),
		keygate.EINVALID:      r(400, keygate.EINVALID, "Bad request."),
	}
}

func (c *checker) customPreset(path string, f *fileCustomPreset) *keygate.Preset {
	p := &keygate.Preset{Name: CustomPreset, TokenHeader: "Authorization", TokenScheme: "Bearer", Responses: customResponses()}
	if f == nil {
		return p
	}
	if f.TokenHeader != nil {
		p.TokenHeader = *f.TokenHeader
		if !headerNameRe.MatchString(p.TokenHeader) {
			c.fail(path+".token_header", `must be an HTTP header name such as "X-Api-Key", got %q`, p.TokenHeader)
		}
		if !strings.EqualFold(p.TokenHeader, "Authorization") {
			p.TokenScheme = ""
		}
	}
	if f.TokenScheme != nil {
		p.TokenScheme = *f.TokenScheme
		if p.TokenScheme != "" && !headerNameRe.MatchString(p.TokenScheme) {
			c.fail(path+".token_scheme", `must be one word such as "Bearer", or "" for none, got %q`, p.TokenScheme)
		}
	}
	codes := make([]string, 0, len(f.Responses))
	for code := range f.Responses {
		codes = append(codes, code)
	}
	sort.Strings(codes)
	known := sortedKeys(p.Responses)
	for _, code := range codes {
		rp := path + ".responses." + code
		resp, ok := p.Responses[code]
		if !ok {
			c.fail(rp, "must be a keygate error code (%s), got %q", strings.Join(known, ", "), code)
			continue
		}
		if r := f.Responses[code]; r.Status != 0 && (r.Status < 100 || r.Status > 599) {
			c.fail(rp+".status", "must be an HTTP status from 100 to 599, got %d", r.Status)
		} else if r.Status != 0 {
			resp.Status = r.Status
		}
		if r := f.Responses[code]; r.Body != "" && !json.Valid([]byte(r.Body)) {
			c.fail(rp+".body", "must be JSON (it is sent as application/json), got %q", r.Body)
		} else if r.Body != "" {
			resp.Body = r.Body
		}
		p.Responses[code] = resp
	}
	return p
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (c *checker) tokenPolicy(path string, f *fileAPI, p *keygate.Preset) keygate.TokenPolicy {
	tp := keygate.TokenPolicy{
		BasePrefix:      f.TokenPrefix,
		Scopes:          c.words(path+".scopes", f.Scopes),
		AllowNever:      true,
		MaxActiveTokens: p.MaxActiveTokens,
	}
	if tp.BasePrefix == "" && apiNameRe.MatchString(f.Name) {
		tp.BasePrefix = strings.ReplaceAll(f.Name, "-", "_") + "_"
	}
	// A bad name is reported once, not again through the prefix made from it.
	if tp.BasePrefix != "" && !tokenPrefixRe.MatchString(tp.BasePrefix) || len(tp.BasePrefix) > maxTokenPrefixLength {
		c.fail(path+".token_prefix", `must be lower-case letters, digits and "_", ending in "_" (at most %d), such as "cm_", got %q`, maxTokenPrefixLength, tp.BasePrefix)
	}
	if f.AllowNeverExpiry != nil {
		tp.AllowNever = *f.AllowNeverExpiry
	}
	if f.MaxActiveTokens != nil {
		if *f.MaxActiveTokens < 0 {
			c.fail(path+".max_active_tokens", "must be 0 (unlimited) or more, got %d", *f.MaxActiveTokens)
		} else {
			tp.MaxActiveTokens = *f.MaxActiveTokens
		}
	}
	return tp
}

// words checks a list of scopes or plans: each one word, none twice.
func (c *checker) words(path string, list []string) []string {
	seen := map[string]bool{}
	for i, w := range list {
		wp := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case !wordRe.MatchString(w):
			c.fail(wp, "must be one word without spaces, commas or quotes, got %q", w)
		case seen[w]:
			c.fail(wp, "%q is listed twice", w)
		}
		seen[w] = true
	}
	return list
}

// defaultRateLimit is an API's limit for public or token routes: the
// preset's unless the file sets one, or turns it off with none or null.
func (c *checker) defaultRateLimit(path string, s rateLimitSetting, presetDefault *keygate.RateLimit, access keygate.Access) *keygate.RateLimit {
	switch {
	case s.none || c.isNull(path):
		return nil
	case !s.set:
		return cloneRateLimit(presetDefault)
	}
	return c.rateLimit(path, s, access)
}

func (c *checker) rateLimit(path string, s rateLimitSetting, access keygate.Access) *keygate.RateLimit {
	defKey := keygate.LimitByToken
	if access == keygate.AccessPublic {
		defKey = keygate.LimitByIP
	}
	rl := &keygate.RateLimit{
		Key:    c.oneOf(path+".key", s.Key, defKey, keygate.LimitByIP, keygate.LimitByToken, keygate.LimitByOrganization),
		Limit:  s.Limit,
		Period: c.duration(path+".period", s.Period, DefaultRateLimitPeriod, false),
	}
	if access == keygate.AccessPublic && rl.Key != keygate.LimitByIP {
		c.fail(path+".key", `must be "ip" for public routes, which have no token, got %q`, rl.Key)
	}
	if !c.written(path + ".limit") {
		c.fail(path+".limit", "is required: how many requests each %s may make per period", rl.Key)
	} else if s.Limit <= 0 {
		c.fail(path+".limit", "must be greater than 0, got %d", s.Limit)
	}
	if len(s.Plans) > 0 && access == keygate.AccessPublic {
		c.fail(path+".plans", "only applies to token routes; public requests have no plan")
	}
	for _, plan := range sortedKeys(s.Plans) {
		pp := path + ".plans." + plan
		if !wordRe.MatchString(plan) {
			c.fail(pp, "must be a plan name without spaces, commas or quotes, got %q", plan)
		} else if n := s.Plans[plan]; n <= 0 {
			c.fail(pp, "must be greater than 0, got %d", n)
		}
	}
	if len(s.Plans) > 0 {
		rl.PlanLimits = make(map[string]int, len(s.Plans))
		for plan, n := range s.Plans {
			rl.PlanLimits[plan] = n
		}
	}
	return rl
}

func (c *checker) routes(apiPath string, list []fileRoute, apiScopes []string) []keygate.Route {
	if len(list) == 0 {
		c.fail(apiPath+".routes", "at least one route is required")
	}
	routes := make([]keygate.Route, 0, len(list))
	var patterns []routePattern
	for i := range list {
		path := fmt.Sprintf("%s.routes[%d]", apiPath, i)
		r := c.route(path, &list[i], apiScopes)
		patterns = c.checkConflicts(path, r, patterns)
		routes = append(routes, r)
	}
	return routes
}

func (c *checker) route(path string, f *fileRoute, apiScopes []string) keygate.Route {
	r := keygate.Route{
		Access:  keygate.Access(c.oneOf(path+".access", f.Access, string(keygate.AccessToken), string(keygate.AccessPublic), string(keygate.AccessToken))),
		Methods: c.methods(path+".methods", f.Methods),
		Path:    c.routePath(path+".path", f.Path),
		Scopes:  c.words(path+".scopes", f.Scopes),
		Plans:   c.words(path+".plans", f.Plans),
	}
	if len(apiScopes) > 0 {
		for i, s := range r.Scopes {
			if !contains(apiScopes, s) {
				c.fail(fmt.Sprintf("%s.scopes[%d]", path, i), "%q is not one of the API's scopes (%s)", s, strings.Join(apiScopes, ", "))
			}
		}
	}
	r.Entitlements = c.entitlements(path+".entitlements", f.Entitlements)
	if r.Access == keygate.AccessPublic {
		// A public request has no token, so no organization to check.
		for _, rule := range []struct {
			key string
			set bool
		}{{"scopes", len(f.Scopes) > 0}, {"plans", len(f.Plans) > 0}, {"entitlements", len(f.Entitlements) > 0}} {
			if rule.set {
				c.fail(path+"."+rule.key, "only applies to token routes; this route is public")
			}
		}
	}
	if f.RateLimit != nil {
		if f.RateLimit.none {
			c.fail(path+".rate_limit", "cannot be none; leave rate_limit out to use the API's rate_limits.%s, or turn that off with none", r.Access)
		} else {
			r.RateLimit = c.rateLimit(path+".rate_limit", *f.RateLimit, r.Access)
		}
	}
	return r
}

func (c *checker) methods(path string, list []string) []string {
	if len(list) == 0 {
		c.fail(path, "at least one method is required, e.g. [GET]")
	}
	out := make([]string, 0, len(list))
	for i, m := range list {
		mp := fmt.Sprintf("%s[%d]", path, i)
		up := strings.ToUpper(m)
		switch {
		case !contains(httpMethods, up):
			c.fail(mp, "must be an HTTP method (%s), got %q", strings.Join(httpMethods, ", "), m)
		case contains(out, up):
			c.fail(mp, "%q is listed twice", up)
		default:
			out = append(out, up)
		}
	}
	return out
}

// routePath checks the path as net/http's ServeMux will see it, by
// registering it on a throwaway mux: what it refuses, keygate refuses
// at start rather than panicking later.
func (c *checker) routePath(path, p string) string {
	switch {
	case p == "":
		c.fail(path, `is required, e.g. "/v2/products"`)
	case !strings.HasPrefix(p, "/"):
		c.fail(path, `must start with "/", got %q`, p)
	case strings.ContainsAny(p, " \t\r\n"):
		c.fail(path, "must not contain spaces, got %q", p)
	default:
		// With a method, as the gateway registers it: ServeMux refuses some
		// paths (such as "/a//b") only in method patterns.
		if reason := muxRefusal(http.NewServeMux(), http.MethodGet+" "+p); reason != "" {
			c.fail(path, "is not a valid path pattern (%s), got %q", reason, p)
		}
	}
	return p
}

var muxOffsetRe = regexp.MustCompile(`^parsing ".*": at offset \d+: `)

// muxRefusal registers pattern on mux and returns why the mux refused it,
// or "" when it took it.
func muxRefusal(mux *http.ServeMux, pattern string) (reason string) {
	defer func() {
		if v := recover(); v != nil {
			reason = muxOffsetRe.ReplaceAllString(fmt.Sprint(v), "")
		}
	}()
	mux.HandleFunc(pattern, func(http.ResponseWriter, *http.Request) {})
	return ""
}

type routePattern struct {
	path    string // setting path of the route
	pattern string // "GET /v2/products"
}

// checkConflicts refuses a route that ServeMux could not tell apart from an
// earlier one: the same method and path, or two patterns that match some
// of the same requests with neither more specific.
func (c *checker) checkConflicts(path string, r keygate.Route, earlier []routePattern) []routePattern {
	if r.Path == "" || muxRefusal(http.NewServeMux(), http.MethodGet+" "+r.Path) != "" {
		return earlier
	}
	for _, m := range r.Methods {
		pattern := m + " " + r.Path
		for _, e := range earlier {
			mux := http.NewServeMux()
			muxRefusal(mux, e.pattern)
			if muxRefusal(mux, pattern) != "" {
				c.fail(path, "%q conflicts with %q of %s", pattern, e.pattern, e.path)
				break
			}
		}
		earlier = append(earlier, routePattern{path: path, pattern: pattern})
	}
	return earlier
}

func (c *checker) entitlements(path string, m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	kinds := []string{keygate.EntitlementStates, keygate.EntitlementBrands, keygate.EntitlementDispensaries}
	out := make(map[string]string, len(m))
	for _, kind := range sortedKeys(m) {
		param := m[kind]
		kp := path + "." + kind
		switch {
		case !contains(kinds, kind):
			c.fail(kp, "must be an entitlement kind, %s, got %q", orList(kinds), kind)
		case !queryParamRe.MatchString(param):
			c.fail(kp, "must be the name of the query parameter that carries %s, got %q", kind, param)
		default:
			out[kind] = param
		}
	}
	return out
}
