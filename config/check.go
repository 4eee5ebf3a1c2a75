package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/clientip"
	"github.com/keygate/keygate/email"
)

// Defaults for settings left out of the file.
const (
	DefaultDataDir      = "./keygate-data"
	DefaultAdminListen  = "127.0.0.1:8090"
	DefaultRedisURL     = "redis://127.0.0.1:6379/0"
	DefaultCacheTTL     = 30 * time.Second
	DefaultStaleIfError = 5 * time.Minute
	DefaultStoreTimeout = 2 * time.Second
	// DefaultCacheMaxEntries is how many verified tokens the cache holds:
	// about 54 MB (BenchmarkTokenCacheBytesPerEntry measures an entry).
	DefaultCacheMaxEntries = 100_000
	// DefaultNegativeTTL is how long a token the database does not know
	// is remembered as unknown.
	DefaultNegativeTTL = 5 * time.Second
	// DefaultNegativeMaxEntries bounds the unknown tokens remembered:
	// about 1.5 MB.
	DefaultNegativeMaxEntries = 10_000
	// Listener defaults: four listeners at the default connection limit
	// stay well below a common file descriptor limit of 20,000.
	DefaultMaxConnections    = 4096
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultBodyIdleTimeout   = 10 * time.Second
	DefaultBodyTimeout       = 2 * time.Minute
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultAdminWriteTimeout = time.Minute
	DefaultShutdownGrace     = 20 * time.Second
	DefaultFlushInterval     = 10 * time.Second
	// DefaultUsageFlushInterval bounds what a crash loses of usage counts.
	DefaultUsageFlushInterval = time.Second
	// DefaultAuditRetention keeps audit entries for a year.
	DefaultAuditRetention = 365 * 24 * time.Hour
	// DefaultRateLimitPeriod applies when a rate limit leaves period out.
	DefaultRateLimitPeriod = time.Minute
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
	if c.emptyListItems() {
		// Later items moved up a place when yaml.v3 dropped the empty one,
		// so their paths would name the wrong lines: report only this.
		return nil
	}
	cfg := &Config{
		File:                c.file,
		DataDir:             withDefault(f.DataDir, DefaultDataDir),
		DatabaseURL:         f.DatabaseURL,
		DatabaseReplicaURLs: f.ReplicaURLs,
		Admin:               c.admin(f.Admin),
		TrustedProxies:      c.prefixes("trusted_proxies", f.TrustedProxies),
		ForwardAuthPeers:    c.forwardAuthPeers(f.ForwardAuthPeers),
		IPv6PrefixLength:    c.ipv6PrefixLength(f.IPv6PrefixLength),
		RateLimiter:         c.rateLimiter(f.RateLimiter),
		Cache: Cache{
			TTL:          c.duration("cache.ttl", f.Cache.TTL, DefaultCacheTTL, false),
			StaleIfError: c.duration("cache.stale_if_error", f.Cache.StaleIfError, DefaultStaleIfError, true),
			StoreTimeout: c.duration("cache.store_timeout", f.Cache.StoreTimeout, DefaultStoreTimeout, false),
			MaxEntries:   c.positive("cache.max_entries", f.Cache.MaxEntries, DefaultCacheMaxEntries),
			NegativeTTL:  c.duration("cache.negative_ttl", f.Cache.NegativeTTL, DefaultNegativeTTL, true),
			NegativeMaxEntries: c.positive("cache.negative_max_entries", f.Cache.NegativeMaxEntries,
				DefaultNegativeMaxEntries),
		},
		Listeners: c.listeners(f.Listeners),
		LastUsed: LastUsed{
			FlushInterval: c.duration("last_used.flush_interval", f.LastUsed.FlushInterval, DefaultFlushInterval, false),
		},
		Usage: Usage{
			FlushInterval: c.duration("usage.flush_interval", f.Usage.FlushInterval, DefaultUsageFlushInterval, false),
		},
		Webhooks: c.webhooks(f.Webhooks),
		Email:    c.email(f.Email),
		Audit:    Audit{Retention: c.duration("audit.retention", f.Audit.Retention, DefaultAuditRetention, false)},
		OAuth:    c.oauth(f.OAuth),
		Log:      c.log(f.Log),
		Tracing:  c.tracing(f.Tracing),
	}
	if reason := databaseURLProblem(f.DatabaseURL); f.DatabaseURL != "" && reason != "" {
		c.fail("database_url", "%s", reason)
	}
	for i, url := range f.ReplicaURLs {
		if reason := databaseURLProblem(url); reason != "" {
			c.fail(fmt.Sprintf("database_replica_urls[%d]", i), "%s", reason)
		}
	}
	cfg.apis = c.apis(f.APIs, cfg.Admin.Listen)
	return cfg
}

// emptyListItems refuses "-" with nothing after it (or null): yaml.v3
// drops such items, so an API or route would silently vanish.
func (c *checker) emptyListItems() (found bool) {
	for _, e := range c.pos.entries {
		if e.key == nil && e.value.ShortTag() == "!!null" {
			c.fail(e.path, `is an empty list item; fill it in or remove the "-"`)
			found = true
		}
	}
	return found
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
	if !slices.Contains(allowed, got) {
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
	a.PublicURL = PublicURLFor(a.Listen)
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

// PublicURLFor derives a listener's URL, as a browser on this machine
// opens it, from its listen address: a wildcard host becomes localhost,
// which is right for a first local start. "" for an address without a
// port.
func PublicURLFor(listen string) string {
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

// DefaultForwardAuthPeers may use forward-auth when forward_auth_peers is
// left out: a proxy on the same machine.
var DefaultForwardAuthPeers = []string{"127.0.0.0/8", "::1"}

func (c *checker) forwardAuthPeers(list *[]string) []netip.Prefix {
	if list == nil || c.isNull("forward_auth_peers") {
		return c.prefixes("forward_auth_peers", DefaultForwardAuthPeers)
	}
	return c.prefixes("forward_auth_peers", *list)
}

// positive checks a count that must be at least 1; def when left out.
func (c *checker) positive(path string, n *int, def int) int {
	if n == nil {
		return def
	}
	if *n < 1 {
		c.fail(path, "must be greater than 0, got %d", *n)
	}
	return *n
}

func (c *checker) ipv6PrefixLength(n *int) int {
	if n == nil {
		return clientip.DefaultIPv6PrefixLength
	}
	if *n < 1 || *n > 128 {
		c.fail("ipv6_prefix_length", "must be between 1 and 128 (64: one subscriber's network; 128: every address on its own), got %d", *n)
	}
	return *n
}

// prefixes reads a list of IP addresses and CIDRs written at path.
func (c *checker) prefixes(path string, list []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(list))
	for i, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(s); err == nil {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		} else {
			c.fail(fmt.Sprintf("%s[%d]", path, i), `must be an IP address or CIDR such as "10.0.0.0/8", got %q`, s)
		}
	}
	return out
}

func (c *checker) rateLimiter(f fileRateLimiter) RateLimiter {
	r := RateLimiter{
		Backend:         c.oneOf("rate_limiter.backend", f.Backend, BackendMemory, BackendMemory, BackendRedis),
		RedisURL:        withDefault(f.RedisURL, DefaultRedisURL),
		RedisMode:       c.oneOf("rate_limiter.redis_mode", f.RedisMode, "single", "single", "cluster", "sentinel"),
		RedisAddrs:      f.RedisAddrs,
		RedisMasterName: f.RedisMaster,
		RedisTimeout:    c.duration("rate_limiter.redis_timeout", f.RedisTimeout, DefaultRedisTimeout, false),
		OnRedisFailure:  c.oneOf("rate_limiter.on_redis_failure", f.OnRedisFailure, OnFailureLocal, OnFailureLocal, OnFailureSplit, OnFailureClosed),
	}
	if u, err := url.Parse(r.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
		c.fail("rate_limiter.redis_url", `must be a redis://, rediss:// or unix:// URL such as "redis://127.0.0.1:6379/0"`)
	}
	for i, addr := range r.RedisAddrs {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			c.fail(fmt.Sprintf("rate_limiter.redis_addrs[%d]", i), `must be host:port such as "10.0.0.5:6379", got %q`, addr)
		}
	}
	if r.RedisMode == "sentinel" && r.RedisMasterName == "" {
		c.fail("rate_limiter.redis_mode", `sentinel needs rate_limiter.redis_master_name, the name the sentinels know the master by`)
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

func (c *checker) email(f fileEmail) Email {
	e := Email{SMTPURL: strings.TrimSpace(f.SMTPURL), From: strings.TrimSpace(f.From), LinkKey: f.LinkKey}
	if e.LinkKey != "" && len(e.LinkKey) < MinEmailLinkKey {
		c.fail("email.link_key", "must be at least %d characters, got %d; e.g. the output of openssl rand -base64 32", MinEmailLinkKey, len(e.LinkKey))
	}
	if e.SMTPURL == "" {
		if e.From != "" {
			if _, err := email.CheckAddress(e.From); err != nil {
				c.fail("email.from", "%v", err)
			}
		}
		return e
	}
	if _, err := email.ParseServer(e.SMTPURL); err != nil {
		c.fail("email.smtp_url", "%v", err)
	}
	if e.From == "" {
		c.fail("email.from", "is required with email.smtp_url: the address keygate's emails come from, e.g. keygate@example.com")
	} else if _, err := email.CheckAddress(e.From); err != nil {
		c.fail("email.from", "%v", err)
	}
	if e.LinkKey == "" {
		c.fail("email.link_key", "is required with email.smtp_url: a secret of at least %d characters, the same on every instance, that the links in invitation emails are derived from; e.g. the output of openssl rand -base64 32", MinEmailLinkKey)
	}
	return e
}

// MinEmailLinkKey is the shortest email.link_key: 32 characters of
// openssl rand -base64 hold 192 bits.
const MinEmailLinkKey = 32

func (c *checker) webhooks(f fileWebhooks) Webhooks {
	w := Webhooks{AllowPrivateAddresses: f.AllowPrivateAddresses, MaxEndpointsPerOrganization: keygate.DefaultMaxWebhooksPerOrganization}
	if n := f.MaxEndpointsPerOrganization; n != nil {
		if *n < 1 {
			c.fail("webhooks.max_endpoints_per_organization", "must be 1 or more, got %d", *n)
		}
		w.MaxEndpointsPerOrganization = *n
	}
	return w
}

func (c *checker) listeners(f fileListeners) Listeners {
	l := Listeners{
		MaxConnections:    DefaultMaxConnections,
		ReadHeaderTimeout: c.duration("listeners.read_header_timeout", f.ReadHeaderTimeout, DefaultReadHeaderTimeout, false),
		BodyIdleTimeout:   c.duration("listeners.body_idle_timeout", f.BodyIdleTimeout, DefaultBodyIdleTimeout, false),
		BodyTimeout:       c.duration("listeners.body_timeout", f.BodyTimeout, DefaultBodyTimeout, false),
		IdleTimeout:       c.duration("listeners.idle_timeout", f.IdleTimeout, DefaultIdleTimeout, false),
		AdminWriteTimeout: c.duration("listeners.admin_write_timeout", f.AdminWriteTimeout, DefaultAdminWriteTimeout, false),
		ShutdownGrace:     c.duration("listeners.shutdown_grace", f.ShutdownGrace, DefaultShutdownGrace, false),
	}
	if f.MaxConnections != nil {
		if *f.MaxConnections < 0 {
			c.fail("listeners.max_connections", "must be 0 (no limit) or more, got %d", *f.MaxConnections)
		} else {
			l.MaxConnections = *f.MaxConnections
		}
	}
	return l
}

// tracing checks the OTLP export settings. The endpoint's problems are
// worded without repeating it: a collector URL may carry credentials.
func (c *checker) tracing(f fileTracing) Tracing {
	t := Tracing{
		SampleRatio:    1,
		ServiceName:    f.ServiceName,
		AcceptIncoming: c.oneOf("tracing.accept_incoming", f.AcceptIncoming, TraceFromTrustedProxies, TraceFromTrustedProxies, TraceFromAll, TraceFromNone),
	}
	if f.Protocol != "" && f.Protocol != OTLPHTTPProtobuf {
		c.fail("tracing.protocol", `must be %q (OTLP over HTTP, the collector's port 4318), got %q; keygate does not export over gRPC`, OTLPHTTPProtobuf, f.Protocol)
	}
	if r := f.SampleRatio; r != nil {
		if *r < 0 || *r > 1 || *r != *r {
			c.fail("tracing.sample_ratio", "must be from 0 to 1 (the share of new traces recorded), got %v", *r)
		} else {
			t.SampleRatio = *r
		}
	}
	if c.written("tracing.service_name") && strings.TrimSpace(f.ServiceName) == "" {
		c.fail("tracing.service_name", `must not be empty; leave it out for "keygate"`)
	}
	if f.OTLPEndpoint != "" {
		if reason := httpURLProblem(f.OTLPEndpoint); reason != "" {
			c.fail("tracing.otlp_endpoint", `%s, the collector's OTLP/HTTP address such as "http://otel-collector:4318"`, reason)
		} else if u, _ := url.Parse(f.OTLPEndpoint); u.User != nil {
			c.fail("tracing.otlp_endpoint", "must not carry a user or password; send credentials in OTEL_EXPORTER_OTLP_HEADERS")
		} else {
			t.OTLPEndpoint = otlpTracesURL(f.OTLPEndpoint)
		}
	}
	return t
}

// otlpTracesURL adds OTLP's traces path to a bare collector address, as
// OTEL_EXPORTER_OTLP_ENDPOINT does; a URL with a path is used as written.
func otlpTracesURL(s string) string {
	u, _ := url.Parse(s)
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String()
}
