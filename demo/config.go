package demo

import (
	"bytes"
	"encoding/json"
	"strings"
	"text/template"

	"github.com/keygate/keygate/config"
)

// ConfigParams are the parts of the demo's config that `keygate demo`
// chooses at start: where data lives and which addresses are free.
type ConfigParams struct {
	DataDir     string
	DatabaseURL string // "" for SQLite in DataDir
	AdminListen string // keygate's dashboard and management API
	// MenusListen and EventsListen are where keygate serves the two APIs;
	// MenusUpstream and EventsUpstream are where the demo handlers run.
	MenusListen, EventsListen     string
	MenusUpstream, EventsUpstream string
	// MCPUpstream is where the demo MCP server runs; keygate serves it as
	// /mcp on the menus API.
	MCPUpstream string
}

// Default listen addresses of `keygate demo`.
const (
	DefaultAdminListen    = "127.0.0.1:8090"
	DefaultMenusListen    = "127.0.0.1:8080"
	DefaultEventsListen   = "127.0.0.1:8081"
	DefaultMenusUpstream  = "http://127.0.0.1:9080"
	DefaultMCPUpstream    = "http://127.0.0.1:9090/mcp"
	DefaultEventsUpstream = "http://127.0.0.1:9081"
)

// Config returns the demo's keygate config file: both demo APIs with every
// route, and every other setting written out with a comment, so the file
// doubles as a tour of what can be configured; the settings that would
// change what the demo does are there commented out. Empty params get the
// defaults above; a data dir of "" becomes ./keygate-data.
func Config(p ConfigParams) []byte {
	p = p.withDefaults()
	var b bytes.Buffer
	if err := configTemplate.Execute(&b, map[string]any{
		"P":              p,
		"PublicURL":      config.PublicURLFor(p.AdminListen),
		"MenusPublicURL": config.PublicURLFor(p.MenusListen),
		"MenusName":      MenusAPIName,
		"EventsName":     EventsAPIName,
		"MenusScopes":    MenusScopes,
		"EventsScopes":   EventsScopes,
	}); err != nil {
		// The template and its data are fixed, so this is a bug.
		panic("demo: config template: " + err.Error())
	}
	return b.Bytes()
}

func (p ConfigParams) withDefaults() ConfigParams {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&p.DataDir, "./keygate-data")
	def(&p.AdminListen, DefaultAdminListen)
	def(&p.MenusListen, DefaultMenusListen)
	def(&p.EventsListen, DefaultEventsListen)
	def(&p.MenusUpstream, DefaultMenusUpstream)
	def(&p.EventsUpstream, DefaultEventsUpstream)
	def(&p.MCPUpstream, DefaultMCPUpstream)
	return p
}

// quote writes a value as a YAML double-quoted scalar; JSON strings are
// exactly that, so paths with spaces or colons stay one value.
func quote(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// list writes a flow sequence of plain words such as scopes, which need
// no quoting.
func list(values []string) string {
	return "[" + strings.Join(values, ", ") + "]"
}

// configTemplate shows the settings that would change what the demo does
// commented out, after a comment ending in "e.g.:"; the test puts them back
// in to check that they parse and that together with the rest they are
// every setting. The settings whose values the demo does not choose are
// Example's, words and all.
var configTemplate = template.Must(template.New("keygate.yaml").
	Funcs(template.FuncMap{"quote": quote, "list": list, "example": config.ExampleSections}).
	Parse(`# keygate configuration written by ` + "`keygate demo`" + `. Every setting is shown,
# with the demo's value or its default; the few that would change what the
# demo does are commented out. Edit it and run
# ` + "`keygate serve --config <this file>`" + ` to keep the demo going.
# Reference with defaults: docs/configuration.md. keygate refuses to start on
# an unknown key or an invalid value, naming the file, line and setting.

# Directory for keygate's own files; the SQLite database is
# <data_dir>/keygate.db. A relative path is relative to this file.
data_dir: {{quote .P.DataDir}}

# PostgreSQL instead of SQLite, for several instances sharing one database,
# e.g. postgres://keygate:secret@db.internal:5432/keygate?sslmode=require.
# KEYGATE_DATABASE_URL overrides it, so no password need be written here.
# "" means SQLite in data_dir.
database_url: {{quote .P.DatabaseURL}}

{{example "database_replica_urls"}}
# keygate's own listener: dashboard, management API (/api/v1/), OAuth for
# MCP clients, JWKS (/.well-known/jwks.json), /metrics, /healthz, /readyz.
admin:
  listen: {{quote .P.AdminListen}}
  # The URL people and OAuth clients use to reach the listener above.
  public_url: {{quote .PublicURL}}
  # Mark session cookies Secure: auto (when public_url is https), true, false.
  secure_cookies: auto

# Peers whose X-Forwarded-For is believed when finding a client's IP (for
# per-IP rate limits): addresses or CIDRs. Nobody's is, by default.
trusted_proxies: []

{{example "ipv6_prefix_length" "forward_auth_peers" "rate_limiter" "cache" "listeners" "last_used" "usage"}}
# Organization webhooks, signed as Standard Webhooks. The demo delivers to
# local receivers too, so you can try them with a listener on this machine.
webhooks:
  allow_private_addresses: true     # Default: false
  # The most endpoints one organization may have. Default: 10
  max_endpoints_per_organization: 10

{{example "email" "audit"}}
# keygate's OAuth 2.1 server for MCP clients (on the admin listener).
oauth:
  # Clients registered here, besides those that register themselves
  # (RFC 7591) or use Client ID Metadata Documents, e.g.:
  # clients:
  #   - id: claude
  #     name: Claude
  #     redirect_uris: [https://claude.ai/api/mcp/auth_callback]
  #     grant_types: [authorization_code, refresh_token]
  #     secret: ""                      # 32+ characters make the client confidential
  #     token_endpoint_auth_method: ""  # with a secret: client_secret_basic (default) or client_secret_post
  allow_dynamic_registration: true  # RFC 7591 registration. Default: true
  allow_private_cimd: false         # fetch metadata documents from private addresses. Default: false
  login_url: ""                     # send users to another login page. Default: "" (keygate's own)
  access_token_ttl: 1h              # Default: 1h
  refresh_token_ttl: 720h           # Default: 720h (30 days)

{{example "log" "tracing"}}
apis:
  # The demo menus API, answering like CannMenus: token in X-Token, every
  # token problem a 404 {"detail": "Not Found"}, two active tokens at most.
  - name: {{.MenusName}}
    preset: cannmenus               # cannmenus, canskan or custom
    listen: {{quote .P.MenusListen}}
    host: ""                        # answer only requests for this Host; "" any
    # How clients reach this API; the MCP endpoint's OAuth resource URL is
    # built from it. Default: http://<host>, else http://<listen>.
    public_url: {{quote .MenusPublicURL}}
    upstream: {{quote .P.MenusUpstream}}
    # Longest wait for the upstream's response head (past it, the preset's
    # 504) and then for each next piece of its body. Default: 1m
    upstream_timeout: 1m
    token_prefix: cm_               # tokens look like cm_live_… and cm_test_…
    scopes: {{list .MenusScopes}}
    allow_never_expiry: true        # offer "never" as a token expiry
    max_active_tokens: 2            # per organization; 0 is unlimited
    # Default limits of public and token routes; none turns one off.
    rate_limits:
      public: none
      token: none
      # Requests failing authentication per client IP (none turns it off).
      failed_auth: {key: ip, limit: 60, period: 1m}
      # While Redis is down: local, shared-split or closed; "" follows
      # rate_limiter.on_redis_failure.
      on_redis_failure: ""
    # The demo MCP server behind OAuth: paste http://<listen>/mcp into an
    # MCP client (Claude.ai, the MCP Inspector…). API tokens work too.
    mcp:
      path: /mcp
      upstream: {{quote .P.MCPUpstream}}
      scopes: [products:read, dispensaries:read]
      allow_api_tokens: true
    # Requests must match a route; anything else gets the preset's 404.
    # Paths are net/http patterns: {name} matches one path segment.
    routes:
      - methods: [GET]
        path: /v2/products
        access: token               # token or public
        scopes: [products:read]     # every one required
        # Refuse data outside the organization's entitlements: kind (states,
        # brands, dispensaries) to the query parameter that carries it.
        entitlements: {states: states, brands: brands, dispensaries: dispensaries}
        # A limit for this route only, overriding rate_limits.token, e.g.:
        # rate_limit: {key: token, limit: 60, period: 1m, plans: {pro: 600}}
      - methods: [GET]
        path: /v2/brands
        access: token
        scopes: [brands:read]
        entitlements: {states: states, brands: brands, dispensaries: dispensaries}
      - methods: [GET]
        path: /v2/dispensaries
        access: token
        scopes: [dispensaries:read]
        entitlements: {states: states, brands: brands, dispensaries: dispensaries}
      - methods: [GET]
        path: /v2/analytics
        access: token
        scopes: [analytics:read]
        plans: [pro]                # the organization's plan must be one of these
        entitlements: {states: states, brands: brands, dispensaries: dispensaries}

  # The demo events API, answering like CANSKAN: public profile, registration
  # and check-in pages, and a Bearer-token API for organizations.
  - name: {{.EventsName}}
    preset: canskan
    listen: {{quote .P.EventsListen}}
    upstream: {{quote .P.EventsUpstream}}
    token_prefix: csk_
    scopes: {{list .EventsScopes}}
    allow_never_expiry: true
    max_active_tokens: 0
    # The preset's limits, written out: public routes per client IP, token
    # routes per token. key is ip, token or org; plans sets other limits for
    # organizations on those plans, e.g. {pro: 600} for acme.
    rate_limits:
      public: {key: ip, limit: 10, period: 1m}
      token: {key: token, limit: 60, period: 1m, plans: {}}
    routes:
      - methods: [GET]
        path: /p/{code}
        access: public
      - methods: [POST]
        path: /events/{id}/register
        access: public
      - methods: [POST]
        path: /events/{id}/checkin
        access: public
      - methods: [GET]
        path: /api/v1/organization
        access: token
        scopes: [organization:read]
      - methods: [GET]
        path: /api/v1/attendees
        access: token
        scopes: [attendees:read]
      - methods: [POST]
        path: /api/v1/attendees
        access: token
        scopes: [attendees:write]
      - methods: [GET, POST]
        path: /api/v1/webhooks
        access: token
        scopes: [webhooks:manage]
      - methods: [DELETE]
        path: /api/v1/webhooks/{id}
        access: token
        scopes: [webhooks:manage]

  # Any other API gets its wire behaviour from a custom preset, e.g.:
  # - name: inventory
  #   preset: custom
  #   custom_preset:
  #     token_header: X-Api-Key       # default Authorization
  #     token_scheme: ""              # e.g. Bearer; "" for none
  #     responses:                    # status and JSON body per error code
  #       token_missing: {status: 401, body: '{"error": "missing key"}'}
  #       token_invalid: {status: 401, body: '{"error": "invalid key"}'}
  #       entitlement_forbidden: {status: 403, body: '{"error": "no access to {kind} {value}"}'}
  #   listen: 127.0.0.1:8082
  #   upstream: http://127.0.0.1:9082
  #   token_prefix: inv_
  #   scopes: [stock:read]
  #   routes:
  #     - {methods: [GET], path: /stock, access: token, scopes: [stock:read]}
`))
