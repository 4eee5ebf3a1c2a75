package config

import (
	"bytes"
	"encoding/json"
	"strings"
	"text/template"
)

// StarterParams are what `keygate init` asks for: one API, its preset, the
// upstream it guards and where keygate listens.
type StarterParams struct {
	API      string // the API's name, e.g. "inventory"
	Preset   string // cannmenus, canskan or custom
	Upstream string // where allowed requests go, e.g. "http://127.0.0.1:9000"
	Listen   string // the API's listener; default 127.0.0.1:8080
	Admin    string // keygate's own listener; default 127.0.0.1:8090
}

// Starter returns a first config file: one API with one sample token route
// and the process settings, every line commented, in the shape `keygate
// demo` writes. Its database lives next to the file. Parse accepts it
// unchanged when the params are valid; an invalid name or URL is reported
// by Parse with its line, like any other mistake.
func Starter(p StarterParams) []byte {
	if p.Listen == "" {
		p.Listen = "127.0.0.1:8080"
	}
	if p.Admin == "" {
		p.Admin = "127.0.0.1:8090"
	}
	// A token prefix allows fewer characters than a name: "my-api" → "my_api_".
	prefix := strings.ReplaceAll(p.API, "-", "_")
	if len(prefix) > 20 {
		prefix = prefix[:20]
	}
	var b bytes.Buffer
	if err := starterTemplate.Execute(&b, map[string]any{"P": p, "PublicURL": PublicURLFor(p.Admin), "Prefix": prefix + "_"}); err != nil {
		// The template and its data are fixed, so this is a bug.
		panic("config: starter template: " + err.Error())
	}
	return b.Bytes()
}

// yamlQuote writes a value as a YAML double-quoted scalar; JSON strings
// are exactly that.
func yamlQuote(v string) string {
	b, _ := json.Marshal(v)
	return string(b)
}

var starterTemplate = template.Must(template.New("keygate.yaml").
	Funcs(template.FuncMap{"quote": yamlQuote, "example": ExampleSections}).
	Parse(`# keygate configuration written by ` + "`keygate init`" + `.
# Every setting left out has its default; the reference is
# docs/configuration.md, and ` + "`keygate demo`" + ` writes a file with every setting.
# keygate refuses to start on an unknown key or an invalid value, naming the
# file, line and setting of each problem.
#
# Next steps, from this file's directory:
#   keygate migrate --config keygate.yaml
#   keygate orgs create --config keygate.yaml --slug acme
#   keygate tokens create --config keygate.yaml --org acme --api {{.P.API}} --name "Production server"
#   keygate serve --config keygate.yaml

# Directory for keygate's own files; the SQLite database is
# <data_dir>/keygate.db. A relative path is relative to this file, so "."
# keeps the database next to it.
data_dir: .

# PostgreSQL instead of SQLite, for several instances sharing one database,
# e.g. postgres://keygate@db.internal:5432/keygate?sslmode=require.
# KEYGATE_DATABASE_URL overrides it, so no password need be written here.
# "" means SQLite in data_dir.
database_url: ""

# keygate's own listener: dashboard, management API (/api/v1/), OAuth for
# MCP clients, JWKS (/.well-known/jwks.json), /metrics, /healthz, /readyz.
admin:
  listen: {{quote .P.Admin}}
  # The URL people and OAuth clients use to reach the listener above; set
  # it when keygate is behind a proxy or a domain name.
  public_url: {{quote .PublicURL}}
  # Mark session cookies Secure: auto (when public_url is https), true, false.
  secure_cookies: auto

# Peers whose X-Forwarded-For is believed when finding a client's IP (for
# per-IP rate limits): addresses or CIDRs. Nobody's is, by default.
trusted_proxies: []

rate_limiter:
  # Where counters live: memory (one instance) or redis (shared by all).
  backend: memory

{{example "last_used" "usage" "log" "email" "tracing"}}
# The APIs keygate guards. Each gets its own listener and forwards allowed
# requests to its upstream.
apis:
  - name: {{.P.API}}
    # The wire behaviour: which header carries the token and the exact
    # error answers. cannmenus: X-Token, every token problem a 404
    # {"detail": "Not Found"}, two active tokens per organization.
    # canskan: Authorization: Bearer, 401 {"message": "…"}, 10/min public
    # and 60/min token limits. custom: set below.
    preset: {{.P.Preset}}
{{- if eq .P.Preset "custom"}}
    custom_preset:
      token_header: Authorization   # the header that carries the token
      token_scheme: Bearer          # the word before it; "" for none
      # Status and JSON body per keygate error code; codes left out answer
      # {"error": "<code>", "message": "…"} (table in docs/configuration.md).
      # responses:
      #   token_missing: {status: 401, body: '{"error": "missing token"}'}
      #   token_invalid: {status: 401, body: '{"error": "invalid token"}'}
{{- end}}
    # Where clients call this API through keygate.
    listen: {{quote .P.Listen}}
    # Where allowed requests are forwarded.
    upstream: {{quote .P.Upstream}}
    # Tokens look like {{.Prefix}}live_… and {{.Prefix}}test_…
    token_prefix: {{.Prefix}}
    # Scopes a token of this API may carry. A token made without choosing
    # scopes carries all of them; scopes only narrow a token.
    scopes: [read]
    allow_never_expiry: true        # offer "never" as a token expiry
    # Requests must match a route; anything else gets the preset's 404.
    # Paths are net/http patterns: {name} matches one path segment,
    # {name...} the rest, a trailing "/" a whole subtree.
    routes:
      # The sample route: every GET needs a token with the read scope.
      # Replace it with your API's own routes, e.g.
      #   - {methods: [GET], path: /v2/products, scopes: [read], entitlements: {states: states}}
      #   - {methods: [GET], path: "/p/{code}", access: public}
      - methods: [GET]
        path: /                     # "/" is every path; "/v2/" a subtree
        access: token               # token or public
        scopes: [read]              # every one required
`))
