// Package config reads keygate's one YAML configuration file and turns it
// into the domain's values: the APIs keygate guards (with their presets,
// routes and rate limits) and the settings of the process around them.
//
// A config is refused as a whole at start when anything in it is unknown or
// invalid, with the file, line and setting path of every problem, so a typo
// never silently becomes a default. Settings left out get the defaults
// documented in docs/configuration.md; Example returns a file that shows
// every setting.
//
// This package never connects to anything and never echoes a database or
// Redis URL in an error, since such URLs may carry a password.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/keygate/keygate"
	"go.yaml.in/yaml/v3"
)

// DatabaseURLEnv names the environment variable that overrides
// database_url, so a password need not be written into the file.
const DatabaseURLEnv = "KEYGATE_DATABASE_URL"

// DefaultUpstreamTimeout is apis[].upstream_timeout's default: how long
// keygate waits for an upstream's response head, and then for each next
// piece of a body that is not server-sent events, as nginx's
// proxy_read_timeout does.
const DefaultUpstreamTimeout = 60 * time.Second

// DefaultRedisTimeout is rate_limiter.redis_timeout's default.
const DefaultRedisTimeout = 250 * time.Millisecond

// DatabaseReplicaURLsEnv names the environment variable that overrides
// database_replica_urls (comma-separated), for the same reason.
const DatabaseReplicaURLsEnv = "KEYGATE_DATABASE_REPLICA_URLS"

// Rate limiter backends and what the Redis backend does when Redis is down.
const (
	BackendMemory   = "memory"
	BackendRedis    = "redis"
	OnFailureLocal  = "local"        // fall back to the in-memory limiter and report it
	OnFailureSplit  = "shared-split" // in memory, each instance to its share of the limit
	OnFailureClosed = "closed"       // answer 503 until Redis is back
)

// Log formats.
const (
	LogText = "text"
	LogJSON = "json"
)

// Config is a checked configuration with every default filled in.
type Config struct {
	// File is the name the config was read from, as errors show it.
	File string
	// DataDir holds keygate's files; the SQLite database is DatabasePath().
	DataDir string
	// DatabaseURL selects PostgreSQL when set; empty means SQLite.
	DatabaseURL string
	// DatabaseReplicaURLs are read replicas of DatabaseURL that token
	// lookups may read from.
	DatabaseReplicaURLs []string
	Admin               Admin
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// ForwardAuthPeers may ask forward-auth about a request by its
	// forwarded method and URI, besides TrustedProxies.
	ForwardAuthPeers []netip.Prefix
	// IPv6PrefixLength is how many leading bits of an IPv6 address name
	// one client for per-IP limits.
	IPv6PrefixLength int
	RateLimiter      RateLimiter
	Cache            Cache
	Listeners        Listeners
	LastUsed         LastUsed
	Usage            Usage
	Webhooks         Webhooks
	Email            Email
	Audit            Audit
	OAuth            OAuth
	Log              Log
	Tracing          Tracing

	apis []*keygate.API
}

// Admin is keygate's own listener: dashboard, management API, OAuth, JWKS,
// metrics and health checks.
type Admin struct {
	Listen string
	// PublicURL is how clients reach the admin listener (OAuth issuer,
	// links in pages), without a trailing slash.
	PublicURL string
	// SecureCookies marks session cookies Secure.
	SecureCookies bool
}

// RateLimiter says where rate limit counters live.
type RateLimiter struct {
	Backend  string // BackendMemory or BackendRedis
	RedisURL string
	// RedisMode is "single", "cluster" or "sentinel"; RedisAddrs are the
	// cluster seeds or the sentinels; RedisMasterName names the sentinel
	// master.
	RedisMode       string
	RedisAddrs      []string
	RedisMasterName string
	// RedisTimeout bounds one Redis read or write; a decision not made in
	// it is an outage for the fallback mode.
	RedisTimeout   time.Duration
	OnRedisFailure string // OnFailureLocal, OnFailureSplit or OnFailureClosed
}

// Cache tunes the verified-token cache.
type Cache struct {
	// TTL bounds how long a cached token is trusted without asking the
	// store, a safety net should an invalidation be missed.
	TTL time.Duration
	// StaleIfError is how long a cached valid token keeps working while the
	// database cannot be reached; 0 turns this off.
	StaleIfError time.Duration
	// StoreTimeout bounds each database read a request waits for; past it
	// the read counts as failed (stale_if_error applies, else 503).
	StoreTimeout time.Duration
	// MaxEntries bounds how many verified tokens the cache holds.
	MaxEntries int
	// NegativeTTL is how long a token the database does not know is
	// refused from the cache; 0 turns this off. Any token created or
	// rotated, through any instance, empties these entries.
	NegativeTTL time.Duration
	// NegativeMaxEntries bounds how many unknown tokens are remembered.
	NegativeMaxEntries int
}

// Listeners bounds what one client can hold on keygate's listeners (each
// API's and the admin listener), so slow or idle clients cannot use up
// the process's connections and file descriptors.
type Listeners struct {
	// MaxConnections is the most connections each listener holds at once;
	// further clients wait to be accepted. 0: no limit.
	MaxConnections int
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration
	// BodyIdleTimeout is the longest wait for the next bytes of a request
	// body; BodyTimeout the longest time to read a whole one.
	BodyIdleTimeout time.Duration
	BodyTimeout     time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request before it is closed, freeing its slot of
	// MaxConnections.
	IdleTimeout time.Duration
	// AdminWriteTimeout bounds a whole response on the admin listener
	// (API listeners stream, so their responses have none).
	AdminWriteTimeout time.Duration
	// ShutdownGrace is how long in-flight requests get to finish on
	// SIGTERM before their connections are closed.
	ShutdownGrace time.Duration
}

// Email configures keygate's emails (package email): off while SMTPURL is
// empty.
type Email struct {
	// SMTPURL is smtp://user:password@host:587[?starttls=optional|required]
	// (STARTTLS, required unless the server is on loopback) or
	// smtps://…:465. It holds the SMTP password: never log or show it;
	// email.ParseServer gives a redacted form.
	SMTPURL string
	// From is the sender address, required with SMTPURL.
	From string
	// LinkKey, required with SMTPURL, is the secret invitation links in
	// emails are derived from (keygate.InvitationSecret), so the outbox
	// stores an invitation's id rather than its link. It is not in the
	// database; every instance and the CLI need the same one. Never log
	// or show it.
	LinkKey string
}

// Audit configures the audit log.
type Audit struct {
	// Retention is how long entries are kept; older ones are purged.
	Retention time.Duration
}

// Webhooks configures deliveries of organization webhooks.
type Webhooks struct {
	// AllowPrivateAddresses lets endpoints be on loopback and private
	// networks; off, such endpoints are refused (server-side request
	// forgery protection).
	AllowPrivateAddresses bool
	// MaxEndpointsPerOrganization caps each organization's endpoints: every
	// event fans out to all of them, with retries.
	MaxEndpointsPerOrganization int
}

// LastUsed tunes the batched last_used_at writes.
type LastUsed struct {
	FlushInterval time.Duration
}

// Usage tunes the batched writes of per-token request counts.
type Usage struct {
	// FlushInterval is how often counts are written: what a crashed
	// instance can lose of them.
	FlushInterval time.Duration
}

// Log configures keygate's log/slog output.
type Log struct {
	Level  slog.Level
	Format string // LogText or LogJSON
}

// Tracing configures OpenTelemetry trace export; off when OTLPEndpoint is
// empty.
type Tracing struct {
	// OTLPEndpoint is the collector's OTLP/HTTP traces URL, with
	// /v1/traces already added when the file gave a bare base URL.
	OTLPEndpoint string
	// SampleRatio is the share of new traces recorded, 0 to 1; a trace
	// continued from an accepted parent follows the parent's choice.
	SampleRatio float64
	// ServiceName is the service.name resource attribute; empty: the
	// OTEL_SERVICE_NAME environment variable, else "keygate".
	ServiceName string
	// AcceptIncoming says whose traceparent a request continues:
	// TraceFromTrustedProxies, TraceFromAll or TraceFromNone. A context not
	// accepted becomes a link of a new trace.
	AcceptIncoming string
}

// Enabled reports whether traces are exported.
func (t Tracing) Enabled() bool { return t.OTLPEndpoint != "" }

// Who may continue a trace into keygate (tracing.accept_incoming).
const (
	TraceFromTrustedProxies = "trusted_proxies"
	TraceFromAll            = "all"
	TraceFromNone           = "none"
)

// OTLPHTTPProtobuf is the one OTLP transport keygate exports with.
const OTLPHTTPProtobuf = "http/protobuf"

// Handler returns a slog handler writing to w in the configured format and
// level.
func (l Log) Handler(w io.Writer) slog.Handler {
	opts := &slog.HandlerOptions{Level: l.Level}
	if l.Format == LogJSON {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// DatabasePath is the SQLite database file inside DataDir.
func (c *Config) DatabasePath() string {
	return filepath.Join(c.DataDir, "keygate.db")
}

// APIs returns the configured APIs in file order. Each call returns fresh
// copies, so a caller may change them without affecting others.
func (c *Config) APIs() []*keygate.API {
	out := make([]*keygate.API, len(c.apis))
	for i, a := range c.apis {
		out[i] = cloneAPI(a)
	}
	return out
}

// API returns a copy of the API named name, or nil.
func (c *Config) API(name string) *keygate.API {
	for _, a := range c.apis {
		if a.Name == name {
			return cloneAPI(a)
		}
	}
	return nil
}

// Load reads and checks the config file at path, then applies the
// environment override of database_url (KEYGATE_DATABASE_URL). A relative
// data_dir is taken relative to the file's directory, so the file means the
// same thing whatever directory keygate starts in.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	if !filepath.IsAbs(cfg.DataDir) {
		cfg.DataDir = filepath.Join(filepath.Dir(path), cfg.DataDir)
	}
	if err := cfg.applyEnv(os.LookupEnv); err != nil {
		return nil, err
	}
	return cfg, nil
}

// applyEnv lets the environment override settings that are secrets in
// practice.
func (c *Config) applyEnv(lookup func(string) (string, bool)) error {
	if url, ok := lookup(DatabaseURLEnv); ok && url != "" {
		if reason := databaseURLProblem(url); reason != "" {
			return &Error{File: DatabaseURLEnv, Reason: reason}
		}
		c.DatabaseURL = url
	}
	if list, ok := lookup(DatabaseReplicaURLsEnv); ok && list != "" {
		urls := strings.Split(list, ",")
		for i, url := range urls {
			urls[i] = strings.TrimSpace(url)
			if reason := databaseURLProblem(urls[i]); reason != "" {
				return &Error{File: DatabaseReplicaURLsEnv, Reason: fmt.Sprintf("URL %d %s", i+1, reason)}
			}
		}
		c.DatabaseReplicaURLs = urls
	}
	if len(c.DatabaseReplicaURLs) > 0 && c.DatabaseURL == "" {
		return &Error{File: c.File, Reason: "database_replica_urls: needs database_url: replicas are of a PostgreSQL database"}
	}
	return nil
}

// Parse checks the YAML in data and returns the config it describes. name
// is what errors call the file ("keygate.yaml"). Every problem found is
// returned at once as Errors, in file order. Parse reads no environment.
func Parse(name string, data []byte) (*Config, error) {
	root, err := parseDocument(name, data)
	if err != nil {
		return nil, err
	}
	pos := indexNode(root)
	var f fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	errs, err := decodeErrors(name, pos, dec.Decode(&f))
	if err != nil {
		return nil, err
	}
	// An unknown key or a value of the wrong type leaves the rest of the
	// file decoded, so its values are checked too: one run reports every
	// problem rather than one kind per attempt.
	c := &checker{file: name, pos: pos}
	cfg := c.config(&f)
	errs = append(errs, withoutRepeats(c.errs, errs)...)
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
		return nil, errs
	}
	return cfg, nil
}

// withoutRepeats drops the checker's errors about a setting the decoder
// already refused, or one that holds it: a value of the wrong type, or a
// mapping with a key set twice, is left unset, and "is required" on top
// of "must be a whole number" would only confuse.
func withoutRepeats(checked, decoded Errors) Errors {
	var out Errors
	for _, e := range checked {
		repeat := false
		for _, d := range decoded {
			if d.Path != "" && (within(e.Path, d.Path) || within(d.Path, e.Path)) || d.meant != "" && within(e.Path, d.meant) {
				repeat = true
				break
			}
		}
		if !repeat {
			out = append(out, e)
		}
	}
	return out
}

// parseDocument returns the root mapping of data, refusing an empty file,
// YAML syntax errors, a root that is not a mapping and several documents.
func parseDocument(name string, data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, Errors{{File: name, Reason: "the file is empty; see docs/configuration.md for the settings"}}
	} else if err != nil {
		return nil, Errors{(&positions{}).decodeError(name, err.Error())}
	}
	root := doc.Content[0]
	if root.ShortTag() == "!!null" {
		return nil, Errors{{File: name, Reason: "the file is empty; see docs/configuration.md for the settings"}}
	}
	if root.Kind != yaml.MappingNode {
		return nil, Errors{{File: name, Line: root.Line, Reason: "must be a mapping of settings such as \"apis:\", got " + describeNode(root, root.ShortTag(), root.Value)}}
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, Errors{{File: name, Line: next.Line, Reason: "only one YAML document is allowed; remove the \"---\" separator"}}
	} else if !errors.Is(err, io.EOF) {
		return nil, Errors{(&positions{}).decodeError(name, err.Error())}
	}
	return root, nil
}

// decodeErrors turns what the YAML decoder refused into Errors. A type
// error (unknown keys, wrong types) leaves the rest decoded and comes back
// as errs; anything else stops the parse and comes back as err.
func decodeErrors(name string, pos *positions, err error) (errs Errors, _ error) {
	if err == nil {
		return nil, nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return nil, Errors{pos.decodeError(name, err.Error())}
	}
	errs = make(Errors, len(te.Errors))
	for i, msg := range te.Errors {
		errs[i] = pos.decodeError(name, msg)
	}
	return errs, nil
}

// within reports whether path is the setting parent or one inside it.
func within(path, parent string) bool {
	return path == parent || strings.HasPrefix(path, parent+".") || strings.HasPrefix(path, parent+"[")
}
