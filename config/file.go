package config

import (
	"errors"
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"
)

// The types in this file are the YAML file as written: strings where the
// file has durations, URLs and enums, pointers where "left out" and "zero"
// mean different things. Parse checks them and builds Config from them.

type fileConfig struct {
	DataDir        string    `yaml:"data_dir"`
	DatabaseURL    string    `yaml:"database_url"`
	ReplicaURLs    []string  `yaml:"database_replica_urls"`
	Admin          fileAdmin `yaml:"admin"`
	TrustedProxies []string  `yaml:"trusted_proxies"`
	// ForwardAuthPeers is a pointer: an explicit [] (no peer besides the
	// trusted proxies) differs from leaving it out (loopback).
	ForwardAuthPeers *[]string       `yaml:"forward_auth_peers"`
	IPv6PrefixLength *int            `yaml:"ipv6_prefix_length"`
	RateLimiter      fileRateLimiter `yaml:"rate_limiter"`
	Cache            fileCache       `yaml:"cache"`
	Listeners        fileListeners   `yaml:"listeners"`
	LastUsed         fileLastUsed    `yaml:"last_used"`
	Usage            fileUsage       `yaml:"usage"`
	Webhooks         fileWebhooks    `yaml:"webhooks"`
	Email            fileEmail       `yaml:"email"`
	Audit            fileAudit       `yaml:"audit"`
	OAuth            fileOAuth       `yaml:"oauth"`
	Log              fileLog         `yaml:"log"`
	Tracing          fileTracing     `yaml:"tracing"`
	APIs             []fileAPI       `yaml:"apis"`
}

type fileAdmin struct {
	Listen        string `yaml:"listen"`
	PublicURL     string `yaml:"public_url"`
	SecureCookies string `yaml:"secure_cookies"` // auto, true or false
}

type fileRateLimiter struct {
	Backend        string   `yaml:"backend"`
	RedisURL       string   `yaml:"redis_url"`
	RedisMode      string   `yaml:"redis_mode"`
	RedisAddrs     []string `yaml:"redis_addrs"`
	RedisMaster    string   `yaml:"redis_master_name"`
	RedisTimeout   string   `yaml:"redis_timeout"`
	OnRedisFailure string   `yaml:"on_redis_failure"`
}

type fileListeners struct {
	MaxConnections    *int   `yaml:"max_connections"`
	ReadHeaderTimeout string `yaml:"read_header_timeout"`
	BodyIdleTimeout   string `yaml:"body_idle_timeout"`
	BodyTimeout       string `yaml:"body_timeout"`
	IdleTimeout       string `yaml:"idle_timeout"`
	AdminWriteTimeout string `yaml:"admin_write_timeout"`
	ShutdownGrace     string `yaml:"shutdown_grace"`
}

type fileCache struct {
	TTL          string `yaml:"ttl"`
	StaleIfError string `yaml:"stale_if_error"`
	StoreTimeout string `yaml:"store_timeout"`
	MaxEntries   *int   `yaml:"max_entries"`
	NegativeTTL  string `yaml:"negative_ttl"`
	// NegativeMaxEntries bounds the unknown tokens remembered.
	NegativeMaxEntries *int `yaml:"negative_max_entries"`
}

type fileMCP struct {
	Path           string   `yaml:"path"`
	Upstream       string   `yaml:"upstream"`
	Scopes         []string `yaml:"scopes"`
	AllowAPITokens *bool    `yaml:"allow_api_tokens"`
}

type fileOAuth struct {
	Clients                  []fileOAuthClient `yaml:"clients"`
	AllowDynamicRegistration *bool             `yaml:"allow_dynamic_registration"`
	AllowPrivateCIMD         bool              `yaml:"allow_private_cimd"`
	LoginURL                 string            `yaml:"login_url"`
	AccessTokenTTL           string            `yaml:"access_token_ttl"`
	RefreshTokenTTL          string            `yaml:"refresh_token_ttl"`
}

type fileOAuthClient struct {
	ID           string   `yaml:"id"`
	Name         string   `yaml:"name"`
	RedirectURIs []string `yaml:"redirect_uris"`
	GrantTypes   []string `yaml:"grant_types"`
	Secret       string   `yaml:"secret"`
	// TokenEndpointAuthMethod says how a client with a secret sends it.
	TokenEndpointAuthMethod string `yaml:"token_endpoint_auth_method"`
}

type fileWebhooks struct {
	AllowPrivateAddresses       bool `yaml:"allow_private_addresses"`
	MaxEndpointsPerOrganization *int `yaml:"max_endpoints_per_organization"`
}

type fileEmail struct {
	SMTPURL string `yaml:"smtp_url"`
	From    string `yaml:"from"`
	LinkKey string `yaml:"link_key"`
}

type fileAudit struct {
	Retention string `yaml:"retention"`
}

type fileLastUsed struct {
	FlushInterval string `yaml:"flush_interval"`
}

type fileUsage struct {
	FlushInterval string `yaml:"flush_interval"`
}

type fileLog struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

type fileTracing struct {
	OTLPEndpoint   string   `yaml:"otlp_endpoint"`
	Protocol       string   `yaml:"protocol"`
	SampleRatio    *float64 `yaml:"sample_ratio"`
	ServiceName    string   `yaml:"service_name"`
	AcceptIncoming string   `yaml:"accept_incoming"`
}

type fileAPI struct {
	Name             string            `yaml:"name"`
	Preset           string            `yaml:"preset"`
	CustomPreset     *fileCustomPreset `yaml:"custom_preset"`
	Listen           string            `yaml:"listen"`
	Host             string            `yaml:"host"`
	PublicURL        string            `yaml:"public_url"`
	Upstream         string            `yaml:"upstream"`
	UpstreamTimeout  string            `yaml:"upstream_timeout"`
	TokenPrefix      string            `yaml:"token_prefix"`
	Scopes           []string          `yaml:"scopes"`
	AllowNeverExpiry *bool             `yaml:"allow_never_expiry"`
	MaxActiveTokens  *int              `yaml:"max_active_tokens"`
	RateLimits       fileRateLimits    `yaml:"rate_limits"`
	Routes           []fileRoute       `yaml:"routes"`
	MCP              *fileMCP          `yaml:"mcp"`
}

type fileCustomPreset struct {
	// Pointers: an explicit empty token_scheme (raw token in the header)
	// differs from leaving it out (Bearer with the Authorization header).
	TokenHeader *string                 `yaml:"token_header"`
	TokenScheme *string                 `yaml:"token_scheme"`
	Responses   map[string]fileResponse `yaml:"responses"`
}

type fileResponse struct {
	Status int    `yaml:"status"`
	Body   string `yaml:"body"`
}

type fileRateLimits struct {
	Public         rateLimitSetting `yaml:"public"`
	Token          rateLimitSetting `yaml:"token"`
	FailedAuth     rateLimitSetting `yaml:"failed_auth"`
	OnRedisFailure string           `yaml:"on_redis_failure"`
}

type fileRoute struct {
	Methods      []string          `yaml:"methods"`
	Path         string            `yaml:"path"`
	Access       string            `yaml:"access"`
	Scopes       []string          `yaml:"scopes"`
	Plans        []string          `yaml:"plans"`
	Entitlements map[string]string `yaml:"entitlements"`
	RateLimit    *rateLimitSetting `yaml:"rate_limit"`
}

// rateLimitSetting is a rate limit as written: a mapping, or the word
// "none" to turn a preset's default off. A null value never reaches
// UnmarshalYAML (yaml.v3 zeroes the field), so Parse looks at the node to
// tell "public: null" from a left-out key.
type rateLimitSetting struct {
	set  bool // the key was written with "none" or a mapping
	none bool // written as "none"

	Key    string         `yaml:"key"`
	Limit  int            `yaml:"limit"`
	Period string         `yaml:"period"`
	Plans  map[string]int `yaml:"plans"`
}

// noRateLimit is the word that turns a rate limit off.
const noRateLimit = "none"

// UnmarshalYAML accepts "none" or a mapping with known keys only. Decoding a
// node directly does not inherit the decoder's KnownFields, so the keys are
// checked here and reported exactly as yaml.v3 reports them elsewhere.
func (s *rateLimitSetting) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Value == noRateLimit {
		*s = rateLimitSetting{set: true, none: true}
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{wrongTypeMessage(n, "config.rateLimitSetting")}}
	}
	known := yamlKeys(fileTypesByName["config.rateLimitSetting"])
	var unknown []string
	knownOnly := *n
	knownOnly.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; !slices.Contains(known, k.Value) {
			unknown = append(unknown, fmt.Sprintf("line %d: field %s not found in type config.rateLimitSetting", k.Line, k.Value))
		} else {
			knownOnly.Content = append(knownOnly.Content, k, n.Content[i+1])
		}
	}
	// The known keys are decoded even next to an unknown one, so their
	// values are checked in the same run.
	type plain rateLimitSetting // without this method, so Decode does not recurse
	s.set = true
	err := knownOnly.Decode((*plain)(s))
	if len(unknown) > 0 {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			unknown = append(unknown, te.Errors...)
		}
		return &yaml.TypeError{Errors: unknown}
	}
	return err
}

// wrongTypeMessage formats a refusal the way yaml.v3 does, so one function
// (positions.decodeError) words every type error.
func wrongTypeMessage(n *yaml.Node, goType string) string {
	value := ""
	if n.Kind == yaml.ScalarNode {
		value = " `" + n.Value + "`"
	}
	return fmt.Sprintf("line %d: cannot unmarshal %s%s into %s", n.Line, n.ShortTag(), value, goType)
}

func init() {
	registerTypes(fileConfig{}, fileAdmin{}, fileRateLimiter{}, fileCache{}, fileListeners{}, fileLastUsed{}, fileUsage{}, fileWebhooks{}, fileEmail{}, fileAudit{}, fileMCP{}, fileOAuth{}, fileOAuthClient{},
		fileLog{}, fileTracing{}, fileAPI{}, fileCustomPreset{}, fileResponse{}, fileRateLimits{}, fileRoute{},
		rateLimitSetting{})
}
