package keygate

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Preset fixes an API's wire behaviour: where the token travels and the
// exact status and body for every outcome. Presets are data; the built-in
// ones live in package preset, and a custom one is plain config.
type Preset struct {
	Name string
	// TokenHeader is the header carrying the token ("X-Token", "Authorization").
	TokenHeader string
	// TokenScheme, when set, must precede the token in the header ("Bearer").
	TokenScheme string
	// MaxActiveTokens per organization; 0: unlimited.
	MaxActiveTokens int
	// Default rate limits for public and token routes; nil: none.
	PublicRateLimit *RateLimit
	TokenRateLimit  *RateLimit
	// FailedAuthRateLimit is the default per-IP budget for requests that
	// fail authentication (missing, malformed, unknown, revoked or expired
	// token): guessing tokens is limited even where traffic is not.
	FailedAuthRateLimit *RateLimit
	// Responses maps an error code (ETOKENMISSING…) to its answer.
	Responses map[string]Response
}

// Response is a preset's answer for one outcome. Body is sent byte for byte,
// after replacing {kind} and {value} (JSON-escaped) for entitlement refusals.
type Response struct {
	Status int    `yaml:"status"`
	Body   string `yaml:"body"`
}

// Render returns the status and body the preset answers for err.
// Codes without a response of their own fall back: unknown outcomes become
// the preset's internal error.
func (p *Preset) Render(err error) (int, []byte) {
	e := AsError(err)
	resp, ok := p.Responses[e.Code]
	if !ok {
		resp, ok = p.Responses[EINTERNAL]
		if !ok {
			return http.StatusInternalServerError, []byte(`{"message": "Internal Server Error"}`)
		}
	}
	body := resp.Body
	if strings.Contains(body, "{") {
		body = strings.NewReplacer(
			"{kind}", jsonEscape(EntitlementNoun(e.Kind)),
			"{value}", jsonEscape(e.Value),
		).Replace(body)
	}
	return resp.Status, []byte(body)
}

// SameAnswer reports whether the preset answers codes a and b with the
// same status and body: where it does, nothing else keygate says (the MCP
// endpoint's challenge) may tell the two apart either.
func (p *Preset) SameAnswer(a, b string) bool {
	sa, ba := p.Render(&Error{Code: a})
	sb, bb := p.Render(&Error{Code: b})
	return sa == sb && string(ba) == string(bb)
}

// jsonEscape returns s as it appears inside a JSON string literal.
func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// Access says whether a route needs a token.
type Access string

const (
	AccessPublic Access = "public"
	AccessToken  Access = "token"
)

// Rate limit keys: what a limit counts requests by.
const (
	LimitByIP           = "ip"
	LimitByToken        = "token"
	LimitByOrganization = "org"
)

// RateLimit allows Limit requests per Period for each key. PlanLimits
// overrides Limit for organizations on the named plans.
type RateLimit struct {
	Key        string         `yaml:"key"` // ip, token or org
	Limit      int            `yaml:"limit"`
	Period     time.Duration  `yaml:"period"`
	PlanLimits map[string]int `yaml:"plans,omitempty"`
}

// LimitFor returns the limit that applies to an organization on plan.
func (r *RateLimit) LimitFor(plan string) int {
	if n, ok := r.PlanLimits[plan]; ok {
		return n
	}
	return r.Limit
}

// Route is one method set and path pattern on an API and the rules a request
// to it must pass.
type Route struct {
	Methods []string
	// Path is a net/http pattern path, e.g. "/p/{code}".
	Path   string
	Access Access
	Scopes []string // every one required
	Plans  []string // any one required; empty: every plan
	// Entitlements maps an entitlement kind (states, brands, dispensaries)
	// to the query parameter that carries it.
	Entitlements map[string]string
	// RateLimit overrides the API's default for this route's access.
	RateLimit *RateLimit
}

// API is one HTTP API behind keygate.
type API struct {
	Name   string
	Preset *Preset
	Listen string // address of this API's listener, e.g. "127.0.0.1:8080"
	// Host, when set, limits the API to requests for that host name, so
	// several APIs can share one listen address.
	Host string
	// PublicURL is how clients reach this API, e.g. "https://api.example.com";
	// the MCP endpoint's resource URL is built from it.
	PublicURL string
	Upstream  string // URL requests are forwarded to
	// UpstreamTimeout bounds the wait for the upstream's response head
	// once the request is sent; past it the client gets the preset's 504.
	UpstreamTimeout time.Duration
	Tokens          TokenPolicy
	Routes          []Route
	// PublicRateLimit and TokenRateLimit are the API's defaults, starting
	// from the preset's; nil: no limit.
	PublicRateLimit *RateLimit
	TokenRateLimit  *RateLimit
	// FailedAuthRateLimit is the per-IP budget for requests that fail
	// authentication, on routes and on the MCP endpoint; nil: none.
	FailedAuthRateLimit *RateLimit
	// OnLimiterFailure is what this API's limits do while a shared rate
	// limiter (Redis) is down: "local", "shared-split" or "closed"; ""
	// follows rate_limiter.on_redis_failure.
	OnLimiterFailure string
	// MCP, when set, serves an MCP endpoint on this API guarded by OAuth.
	MCP *MCPEndpoint
}

// TokenPrefixes returns every prefix this API's tokens can start with.
func (a *API) TokenPrefixes() []string {
	return []string{
		TokenPrefix(a.Tokens.BasePrefix, EnvironmentLive),
		TokenPrefix(a.Tokens.BasePrefix, EnvironmentTest),
	}
}

// MaxActiveTokensFor returns the active-token limit for org on this API:
// the organization's own override when set, else the API's (0: unlimited).
func (a *API) MaxActiveTokensFor(org *Organization) int {
	if org != nil && org.MaxActiveTokens > 0 {
		return org.MaxActiveTokens
	}
	return a.Tokens.MaxActiveTokens
}
