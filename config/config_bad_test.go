package config

import (
	"github.com/keygate/keygate"
	"strings"
	"testing"
)

// minimal is the smallest config keygate accepts; the bad cases below each
// break one thing in a copy of it, so the line numbers are easy to follow.
const minimal = `apis:
  - name: cannmenus
    preset: cannmenus
    listen: 127.0.0.1:8080
    upstream: http://127.0.0.1:9080
    routes:
      - methods: [GET]
        path: /v2/products
`

// withAPI is minimal with extra lines at the end of the API (line 9 on).
func withAPI(lines string) string { return minimal + lines }

// withRoute is minimal with extra lines in its route (line 9 on).
func withRoute(lines string) string { return minimal + lines }

func TestParseRefusesBadConfigs(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"empty file", "", `keygate.yaml: the file is empty; see docs/configuration.md for the settings`},
		{"only comments", "# nothing here\n\n", `keygate.yaml: the file is empty; see docs/configuration.md for the settings`},
		{"null document", "~\n", `keygate.yaml: the file is empty; see docs/configuration.md for the settings`},
		{"not a mapping", "- apis\n", `keygate.yaml:1: must be a mapping of settings such as "apis:", got a list`},
		{"two documents", minimal + "---\nlog: {level: info}\n", `keygate.yaml:9: only one YAML document is allowed; remove the "---" separator`},
		{"syntax error", "apis: [\n", `keygate.yaml:1: invalid YAML: did not find expected node content`},
		{"tab indentation", "log:\n\tlevel: info\n", `keygate.yaml:2: invalid YAML: found character that cannot start any token`},

		// Unknown keys, with a suggestion when the key is a near miss.
		{"unknown top-level key", "data_dri: x\n" + minimal, `keygate.yaml:1: data_dri: unknown key (did you mean "data_dir"?)`},
		{"unknown route key", withRoute("        acess: token\n"), `keygate.yaml:9: apis[0].routes[0].acess: unknown key (did you mean "access"?)`},
		{"unknown API key", withAPI("    colour: blue\n"), `keygate.yaml:9: apis[0].colour: unknown key; known keys: allow_never_expiry, custom_preset, host, listen, max_active_tokens, mcp, name, preset, public_url, rate_limits, routes, scopes, token_prefix, upstream, upstream_timeout`},
		{"unknown admin key", "admin:\n  port: 8090\n" + minimal, `keygate.yaml:2: admin.port: unknown key; known keys: listen, public_url, secure_cookies`},
		{"unknown rate limit key", withAPI("    rate_limits:\n      token: {key: token, limt: 5}\n"), `keygate.yaml:10: apis[0].rate_limits.token.limt: unknown key (did you mean "limit"?)`},
		{"unknown route rate limit key", withRoute("        rate_limit:\n          limit: 5\n          window: 1m\n"), `keygate.yaml:11: apis[0].routes[0].rate_limit.window: unknown key; known keys: key, limit, period, plans`},
		{"duplicate key", withRoute("        path: /v2/brands\n"), `keygate.yaml:9: apis[0].routes[0].path: is set twice (first on line 8)`},

		// Values of the wrong YAML type.
		{"limit not a number", withAPI("    rate_limits:\n      token: {key: token, limit: abcdefghijkl}\n"), `keygate.yaml:10: apis[0].rate_limits.token.limit: must be a whole number, got "abcdefghijkl"`},
		{"methods not a list", strings.Replace(minimal, "[GET]", "GET", 1), `keygate.yaml:7: apis[0].routes[0].methods: must be a list, got "GET"`},
		{"admin a list", "admin: [x]\n" + minimal, `keygate.yaml:1: admin: must be a mapping of settings, got a list`},
		{"allow_never_expiry not a bool", withAPI("    allow_never_expiry: sometimes\n"), `keygate.yaml:9: apis[0].allow_never_expiry: must be true or false, got "sometimes"`},
		{"rate limit a word", withAPI("    rate_limits:\n      public: nope\n"), `keygate.yaml:10: apis[0].rate_limits.public: must be a rate limit such as {key: ip, limit: 10, period: 1m}, or none, got "nope"`},
		{"rate limit a list", withAPI("    rate_limits:\n      public: [10]\n"), `keygate.yaml:10: apis[0].rate_limits.public: must be a rate limit such as {key: ip, limit: 10, period: 1m}, or none, got a list`},

		{"empty API item", "apis:\n  -\n", `keygate.yaml:2: apis[0]: is an empty list item; fill it in or remove the "-"`},
		{"null route", strings.Replace(minimal, "    routes:\n", "    routes:\n      - null\n", 1), `keygate.yaml:7: apis[0].routes[0]: is an empty list item; fill it in or remove the "-"`},

		// Invalid values.
		{"smtp_url of another scheme", "email:\n  smtp_url: http://keygate:hunter2-smtp@mail.example.com\n  from: keygate@example.com\n  link_key: a-test-key-of-at-least-32-characters\n" + minimal, `keygate.yaml:2: email.smtp_url: http://keygate:xxxxx@mail.example.com: the scheme must be smtp:// (STARTTLS) or smtps:// (TLS)`},
		{"smtp_url with an unknown query parameter", "email:\n  smtp_url: smtp://keygate:hunter2-smtp@mail.example.com:25?tls=off\n  from: keygate@example.com\n  link_key: a-test-key-of-at-least-32-characters\n" + minimal, `keygate.yaml:2: email.smtp_url: smtp://keygate:xxxxx@mail.example.com:25?tls=off: unknown query parameter "tls"; the only query parameter is starttls=required or starttls=optional (smtp:// only)`},
		{"smtp_url with an unknown starttls", "email:\n  smtp_url: smtp://keygate:hunter2-smtp@mail.example.com:25?starttls=opportunistic\n  from: keygate@example.com\n  link_key: a-test-key-of-at-least-32-characters\n" + minimal, `keygate.yaml:2: email.smtp_url: smtp://keygate:xxxxx@mail.example.com:25?starttls=opportunistic: starttls must be "required" or "optional", got "opportunistic"`},
		{"smtps_url with starttls", "email:\n  smtp_url: smtps://keygate:hunter2-smtp@mail.example.com?starttls=optional\n  from: keygate@example.com\n  link_key: a-test-key-of-at-least-32-characters\n" + minimal, `keygate.yaml:2: email.smtp_url: smtps://keygate:xxxxx@mail.example.com?starttls=optional: starttls= applies to smtp:// only; smtps:// is TLS from the first byte`},
		{"smtp_url without host", "email:\n  smtp_url: smtp://keygate:hunter2-smtp@\n  from: keygate@example.com\n  link_key: a-test-key-of-at-least-32-characters\n" + minimal, `keygate.yaml:2: email.smtp_url: smtp://keygate:xxxxx@: names no host`},
		{"smtp_url not a URL", "email:\n  smtp_url: \"smtp://keygate:hunter2-smtp@[::1\"\n  from: keygate@example.com\n  link_key: a-test-key-of-at-least-32-characters\n" + minimal, `keygate.yaml:2: email.smtp_url: not a valid URL (smtp://user:password@host:587 or smtps://…)`},
		{"smtp_url without from", "email:\n  smtp_url: smtp://mail.example.com\n  link_key: a-test-key-of-at-least-32-characters\n" + minimal, `keygate.yaml:1: email.from: is required with email.smtp_url: the address keygate's emails come from, e.g. keygate@example.com`},
		{"smtp_url without link_key", "email:\n  smtp_url: smtp://mail.example.com\n  from: keygate@example.com\n" + minimal, `keygate.yaml:1: email.link_key: is required with email.smtp_url: a secret of at least 32 characters, the same on every instance, that the links in invitation emails are derived from; e.g. the output of openssl rand -base64 32`},
		{"short link_key", "email:\n  link_key: hunter2\n" + minimal, `keygate.yaml:2: email.link_key: must be at least 32 characters, got 7; e.g. the output of openssl rand -base64 32`},
		{"from not an address", "email:\n  smtp_url: smtp://mail.example.com\n  from: keygate\n  link_key: a-test-key-of-at-least-32-characters\n" + minimal, `keygate.yaml:3: email.from: "keygate" is not an email address: mail: missing '@' or angle-addr`},
		{"bad access", withRoute("        access: tokn\n"), `keygate.yaml:9: apis[0].routes[0].access: must be "public" or "token", got "tokn"`},
		{"missing name", strings.Replace(minimal, "- name: cannmenus\n    preset", "- preset", 1), `keygate.yaml:2: apis[0].name: is required, e.g. "cannmenus"`},
		{"bad name", strings.Replace(minimal, "name: cannmenus", "name: Cann Menus", 1), `keygate.yaml:2: apis[0].name: must be lower-case letters, digits, "-" and "_" (at most 63), got "Cann Menus"`},
		{"duplicate API name", minimal + `  - name: cannmenus
    preset: canskan
    listen: 127.0.0.1:8081
    upstream: http://127.0.0.1:9081
    token_prefix: csk_
    routes:
      - methods: [GET]
        path: /p/{code}
`, `keygate.yaml:9: apis[1].name: "cannmenus" is already the name of apis[0]`},
		{"missing preset", strings.Replace(minimal, "    preset: cannmenus\n", "", 1), `keygate.yaml:2: apis[0].preset: is required: one of "cannmenus", "canskan", "custom"`},
		{"unknown preset", strings.Replace(minimal, "preset: cannmenus", "preset: cannmenu", 1), `keygate.yaml:3: apis[0].preset: must be one of "cannmenus", "canskan", "custom", got "cannmenu"`},
		{"custom_preset with a built-in preset", withAPI("    custom_preset: {token_header: X-Key}\n"), `keygate.yaml:9: apis[0].custom_preset: is only allowed with preset: custom (this API has preset "cannmenus")`},
		{"missing listen", strings.Replace(minimal, "    listen: 127.0.0.1:8080\n", "", 1), `keygate.yaml:2: apis[0].listen: is required, e.g. "127.0.0.1:8080"`},
		{"listen without port", strings.Replace(minimal, "listen: 127.0.0.1:8080", "listen: 8080", 1), `keygate.yaml:4: apis[0].listen: must be host:port such as "127.0.0.1:8080", got "8080"`},
		{"listen port out of range", strings.Replace(minimal, "listen: 127.0.0.1:8080", "listen: 127.0.0.1:80800", 1), `keygate.yaml:4: apis[0].listen: must be host:port such as "127.0.0.1:8080", got "127.0.0.1:80800"`},
		{"duplicate listen", minimal + `  - name: canskan
    preset: canskan
    listen: 127.0.0.1:8080
    upstream: http://127.0.0.1:9081
    routes:
      - methods: [GET]
        path: /p/{code}
`, `keygate.yaml:11: apis[1].listen: "127.0.0.1:8080" is already used by apis[0].listen (APIs may share an address only when each sets its own host)`},
		{"shared listen with one host", minimal + `  - name: canskan
    preset: canskan
    listen: 127.0.0.1:8080
    host: events.example.com
    upstream: http://127.0.0.1:9081
    routes:
      - methods: [GET]
        path: /p/{code}
`, `keygate.yaml:11: apis[1].listen: "127.0.0.1:8080" is already used by apis[0].listen (APIs may share an address only when each sets its own host)`},
		{"reserved token prefix", withAPI("    token_prefix: kgo_x_\n"), `keygate.yaml:9: apis[0].token_prefix: "kgo_x_" is reserved for keygate's own credentials (kgo_…), so they can never be taken for API tokens`},
		{"mcp without upstream", withAPI("    mcp: {path: /mcp}\n"), `keygate.yaml:9: apis[0].mcp.upstream: is required: the MCP server's URL, e.g. "http://127.0.0.1:9090/mcp"`},
		{"mcp bad path", withAPI("    mcp: {path: mcp/, upstream: 'http://127.0.0.1:9090'}\n"), `keygate.yaml:9: apis[0].mcp.path: must be a path such as "/mcp" (no trailing "/", query or pattern), got "mcp/"`},
		{"oauth client without redirect", minimal + "oauth:\n  clients:\n    - {id: claude}\n", `keygate.yaml:11: oauth.clients[0].redirect_uris: needs at least one redirect URI`},
		{"oauth auth method without a secret", minimal + "oauth:\n  clients:\n    - {id: c, redirect_uris: ['https://x.test/cb'], token_endpoint_auth_method: client_secret_post}\n", `keygate.yaml:11: oauth.clients[0].token_endpoint_auth_method: "client_secret_post" needs a secret; a client without one uses "none"`},
		{"oauth auth method none with a secret", minimal + "oauth:\n  clients:\n    - {id: c, redirect_uris: ['https://x.test/cb'], secret: 0123456789abcdef0123456789abcdef, token_endpoint_auth_method: none}\n", `keygate.yaml:11: oauth.clients[0].token_endpoint_auth_method: must be "client_secret_basic" or "client_secret_post" for a client with a secret, got "none"`},
		{"oauth short secret", minimal + "oauth:\n  clients:\n    - {id: c, redirect_uris: ['https://x.test/cb'], secret: short}\n", `keygate.yaml:11: oauth.clients[0].secret: must be at least 32 characters`},
		{"oauth bad grant", minimal + "oauth:\n  clients:\n    - {id: c, redirect_uris: ['https://x.test/cb'], grant_types: [password]}\n", `keygate.yaml:11: oauth.clients[0].grant_types[0]: must be "authorization_code" or "refresh_token", got "password"`},
		{"bad host", strings.Replace(minimal, "listen: 127.0.0.1:8080", "listen: 127.0.0.1:8080\n    host: https://api.example.com", 1), `keygate.yaml:5: apis[0].host: must be a host name such as "api.example.com" (no scheme, port or path), got "https://api.example.com"`},
		{"listen overlaps a wildcard", minimal + `  - name: canskan
    preset: canskan
    listen: 0.0.0.0:8080
    upstream: http://127.0.0.1:9081
    routes:
      - methods: [GET]
        path: /p/{code}
`, `keygate.yaml:11: apis[1].listen: "0.0.0.0:8080" overlaps apis[0].listen (APIs may share an address only when each sets its own host)`},
		{"listen used by admin", "admin:\n  listen: :8080\n" + minimal, `keygate.yaml:6: apis[0].listen: "127.0.0.1:8080" overlaps admin.listen`},
		{"missing upstream", strings.Replace(minimal, "    upstream: http://127.0.0.1:9080\n", "", 1), `keygate.yaml:2: apis[0].upstream: is required, e.g. "http://127.0.0.1:9080"`},
		{"upstream not a URL", strings.Replace(minimal, "http://127.0.0.1:9080", "127.0.0.1:9080", 1), `keygate.yaml:5: apis[0].upstream: must be an http:// or https:// URL such as "http://127.0.0.1:9080", got "127.0.0.1:9080"`},
		{"upstream ftp", strings.Replace(minimal, "http://127.0.0.1:9080", "ftp://files", 1), `keygate.yaml:5: apis[0].upstream: must be an http:// or https:// URL such as "http://127.0.0.1:9080", got "ftp://files"`},
		{"upstream with query", strings.Replace(minimal, "http://127.0.0.1:9080", "http://127.0.0.1:9080/?a=1", 1), `keygate.yaml:5: apis[0].upstream: must not have a query or fragment such as "http://127.0.0.1:9080", got "http://127.0.0.1:9080/?a=1"`},
		{"bad token prefix", withAPI("    token_prefix: CM-\n"), `keygate.yaml:9: apis[0].token_prefix: must be lower-case letters, digits and "_", ending in "_" (at most 27), such as "cm_", got "CM-"`},
		{"token prefix without underscore", withAPI("    token_prefix: cm\n"), `keygate.yaml:9: apis[0].token_prefix: must be lower-case letters, digits and "_", ending in "_" (at most 27), such as "cm_", got "cm"`},
		{"duplicate token prefix", withAPI("    token_prefix: cm_\n") + `  - name: canskan
    preset: canskan
    listen: 127.0.0.1:8081
    upstream: http://127.0.0.1:9081
    token_prefix: cm_
    routes:
      - methods: [GET]
        path: /p/{code}
`, `keygate.yaml:14: apis[1].token_prefix: "cm_" is already used by apis[0]; each API needs its own so a token says where it belongs`},
		{"negative max tokens", withAPI("    max_active_tokens: -1\n"), `keygate.yaml:9: apis[0].max_active_tokens: must be 0 (unlimited) or more, got -1`},
		{"scope with a space", withAPI("    scopes: [products read]\n"), `keygate.yaml:9: apis[0].scopes[0]: must be one word without spaces, commas or quotes, got "products read"`},
		{"scope twice", withAPI("    scopes: [a, a]\n"), `keygate.yaml:9: apis[0].scopes[1]: "a" is listed twice`},

		// Routes.
		{"no routes", strings.Replace(minimal, "    routes:\n      - methods: [GET]\n        path: /v2/products\n", "", 1), `keygate.yaml:2: apis[0].routes: at least one route is required`},
		{"route without methods", strings.Replace(minimal, "      - methods: [GET]\n        path", "      - path", 1), `keygate.yaml:7: apis[0].routes[0].methods: at least one method is required, e.g. [GET]`},
		{"empty methods", strings.Replace(minimal, "[GET]", "[]", 1), `keygate.yaml:7: apis[0].routes[0].methods: at least one method is required, e.g. [GET]`},
		{"bad method", strings.Replace(minimal, "[GET]", "[GET, FETCH]", 1), `keygate.yaml:7: apis[0].routes[0].methods[1]: must be an HTTP method (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS), got "FETCH"`},
		{"method twice", strings.Replace(minimal, "[GET]", "[GET, get]", 1), `keygate.yaml:7: apis[0].routes[0].methods[1]: "GET" is listed twice`},
		{"route without path", strings.Replace(minimal, "        path: /v2/products\n", "", 1), `keygate.yaml:7: apis[0].routes[0].path: is required, e.g. "/v2/products"`},
		{"path without slash", strings.Replace(minimal, "path: /v2/products", "path: v2/products", 1), `keygate.yaml:8: apis[0].routes[0].path: must start with "/", got "v2/products"`},
		{"path with a space", strings.Replace(minimal, "path: /v2/products", "path: /v2/ products", 1), `keygate.yaml:8: apis[0].routes[0].path: must not contain spaces, got "/v2/ products"`},
		{"path ServeMux refuses", strings.Replace(minimal, "path: /v2/products", "path: /v2/{id", 1), `keygate.yaml:8: apis[0].routes[0].path: is not a valid path pattern (bad wildcard segment (must end with '}')), got "/v2/{id"`},
		{"unclean path", strings.Replace(minimal, "path: /v2/products", "path: /v2//products", 1), `keygate.yaml:8: apis[0].routes[0].path: is not a valid path pattern (non-CONNECT pattern with unclean path can never match), got "/v2//products"`},
		{"same route twice", minimal + "      - methods: [POST, GET]\n        path: /v2/products\n", `keygate.yaml:9: apis[0].routes[1]: "GET /v2/products" conflicts with "GET /v2/products" of apis[0].routes[0]`},
		{"ambiguous routes", strings.Replace(minimal, "path: /v2/products", "path: /v2/{kind}/top", 1) + "      - methods: [GET]\n        path: /v2/products/{id}\n", `keygate.yaml:9: apis[0].routes[1]: "GET /v2/products/{id}" conflicts with "GET /v2/{kind}/top" of apis[0].routes[0]`},
		{"entitlement kind", withRoute("        entitlements: {state: states}\n"), `keygate.yaml:9: apis[0].routes[0].entitlements.state: must be an entitlement kind, one of "states", "brands", "dispensaries", got "state"`},
		{"entitlement parameter", withRoute("        entitlements: {states: \"my states\"}\n"), `keygate.yaml:9: apis[0].routes[0].entitlements.states: must be the name of the query parameter that carries states, got "my states"`},
		{"scope not declared by the API", strings.Replace(minimal, "    routes:", "    scopes: [products:read]\n    routes:", 1) + "      - methods: [POST]\n        path: /v2/products\n        scopes: [products:write]\n", `keygate.yaml:12: apis[0].routes[1].scopes[0]: "products:write" is not one of the API's scopes (products:read)`},
		{"public route with scopes", withRoute("        access: public\n        scopes: [a]\n"), `keygate.yaml:10: apis[0].routes[0].scopes: only applies to token routes; this route is public`},
		{"public route with entitlements", withRoute("        access: public\n        entitlements: {states: states}\n"), `keygate.yaml:10: apis[0].routes[0].entitlements: only applies to token routes; this route is public`},

		// Rate limits.
		{"rate limit key", withAPI("    rate_limits:\n      token: {key: user, limit: 5}\n"), `keygate.yaml:10: apis[0].rate_limits.token.key: must be one of "ip", "token", "org", got "user"`},
		{"public limit by token", withAPI("    rate_limits:\n      public: {key: token, limit: 5}\n"), `keygate.yaml:10: apis[0].rate_limits.public.key: must be "ip" for public routes and failed authentication, which have no token, got "token"`},
		{"failed-auth limit by org", withAPI("    rate_limits:\n      failed_auth: {key: org, limit: 5}\n"), `keygate.yaml:10: apis[0].rate_limits.failed_auth.key: must be "ip" for public routes and failed authentication, which have no token, got "org"`},
		{"zero limit", withAPI("    rate_limits:\n      token: {limit: 0}\n"), `keygate.yaml:10: apis[0].rate_limits.token.limit: must be greater than 0, got 0`},
		{"missing limit", withAPI("    rate_limits:\n      token:\n        period: 1m\n"), `keygate.yaml:10: apis[0].rate_limits.token.limit: is required: how many requests each token may make per period`},
		{"bad period", withAPI("    rate_limits:\n      token: {limit: 5, period: fast}\n"), `keygate.yaml:10: apis[0].rate_limits.token.period: must be a duration such as "30s", "5m" or "1h", got "fast"`},
		{"zero period", withAPI("    rate_limits:\n      token: {limit: 5, period: 0s}\n"), `keygate.yaml:10: apis[0].rate_limits.token.period: must be greater than 0, got "0s"`},
		{"period without unit", withAPI("    rate_limits:\n      token: {limit: 5, period: 60}\n"), `keygate.yaml:10: apis[0].rate_limits.token.period: must be a duration such as "30s", "5m" or "1h", got "60"`},
		{"plan limit zero", withAPI("    rate_limits:\n      token:\n        limit: 5\n        plans: {pro: 0}\n"), `keygate.yaml:12: apis[0].rate_limits.token.plans.pro: must be greater than 0, got 0`},
		{"plans on a public limit", withAPI("    rate_limits:\n      public:\n        limit: 5\n        plans: {pro: 10}\n"), `keygate.yaml:12: apis[0].rate_limits.public.plans: only applies to token routes; public requests have no plan`},
		{"route limit none", withRoute("        rate_limit: none\n"), `keygate.yaml:9: apis[0].routes[0].rate_limit: cannot be none; leave rate_limit out to use the API's rate_limits.token, or turn that off with none`},
		{"route limit negative", withRoute("        rate_limit: {key: org, limit: -3}\n"), `keygate.yaml:9: apis[0].routes[0].rate_limit.limit: must be greater than 0, got -3`},

		// Custom presets.
		{"custom response code", strings.Replace(minimal, "preset: cannmenus", "preset: custom\n    custom_preset:\n      responses:\n        missing: {status: 401}", 1), `keygate.yaml:6: apis[0].custom_preset.responses.missing: must be a keygate error code (bad_gateway, entitlement_forbidden, gateway_timeout, insufficient_scope, internal, invalid, not_found, plan_forbidden, rate_limited, token_expired, token_invalid, token_missing, too_large, unavailable), got "missing"`},
		{"custom response status", strings.Replace(minimal, "preset: cannmenus", "preset: custom\n    custom_preset:\n      responses:\n        token_missing: {status: 41}", 1), `keygate.yaml:6: apis[0].custom_preset.responses.token_missing.status: must be an HTTP status from 100 to 599, got 41`},
		{"custom response body", strings.Replace(minimal, "preset: cannmenus", "preset: custom\n    custom_preset:\n      responses:\n        token_missing: {body: 'missing key'}", 1), `keygate.yaml:6: apis[0].custom_preset.responses.token_missing.body: must be JSON (it is sent as application/json), got "missing key"`},
		{"custom header", strings.Replace(minimal, "preset: cannmenus", "preset: custom\n    custom_preset: {token_header: \"X Key\"}", 1), `keygate.yaml:4: apis[0].custom_preset.token_header: must be an HTTP header name such as "X-Api-Key", got "X Key"`},
		{"custom scheme", strings.Replace(minimal, "preset: cannmenus", "preset: custom\n    custom_preset: {token_scheme: \"Bearer token\"}", 1), `keygate.yaml:4: apis[0].custom_preset.token_scheme: must be one word such as "Bearer", or "" for none, got "Bearer token"`},

		// Process settings.
		{"bad CIDR", "trusted_proxies: [10.0.0.0/8, 10.0.0/8]\n" + minimal, `keygate.yaml:1: trusted_proxies[1]: must be an IP address or CIDR such as "10.0.0.0/8", got "10.0.0/8"`},
		{"IPv6 prefix too long", "ipv6_prefix_length: 129\n" + minimal, `keygate.yaml:1: ipv6_prefix_length: must be between 1 and 128 (64: one subscriber's network; 128: every address on its own), got 129`},
		{"bad forward-auth peer", "forward_auth_peers: [nginx]\n" + minimal, `keygate.yaml:1: forward_auth_peers[0]: must be an IP address or CIDR such as "10.0.0.0/8", got "nginx"`},
		{"bad duration", "cache:\n  ttl: 5 minutes\n" + minimal, `keygate.yaml:2: cache.ttl: must be a duration such as "30s", "5m" or "1h", got "5 minutes"`},
		{"zero ttl", "cache:\n  ttl: 0s\n" + minimal, `keygate.yaml:2: cache.ttl: must be greater than 0, got "0s"`},
		{"negative stale_if_error", "cache:\n  stale_if_error: -1m\n" + minimal, `keygate.yaml:2: cache.stale_if_error: must be greater than 0, got "-1m"`},
		{"zero cache entries", "cache:\n  max_entries: 0\n" + minimal, `keygate.yaml:2: cache.max_entries: must be greater than 0, got 0`},
		{"negative negative_ttl", "cache:\n  negative_ttl: -5s\n" + minimal, `keygate.yaml:2: cache.negative_ttl: must be greater than 0, got "-5s"`},
		{"bad negative_ttl", "cache:\n  negative_ttl: soon\n" + minimal, `keygate.yaml:2: cache.negative_ttl: must be a duration such as "30s", "5m" or "1h", got "soon"`},
		{"zero negative entries", "cache:\n  negative_max_entries: 0\n" + minimal, `keygate.yaml:2: cache.negative_max_entries: must be greater than 0, got 0`},
		{"zero store_timeout", "cache:\n  store_timeout: 0s\n" + minimal, `keygate.yaml:2: cache.store_timeout: must be greater than 0, got "0s"`},
		{"zero idle_timeout", "listeners:\n  idle_timeout: 0s\n" + minimal, `keygate.yaml:2: listeners.idle_timeout: must be greater than 0, got "0s"`},
		{"idle_timeout not a duration", "listeners:\n  idle_timeout: 120\n" + minimal, `keygate.yaml:2: listeners.idle_timeout: must be a duration such as "30s", "5m" or "1h", got "120"`},
		{"zero flush interval", "last_used:\n  flush_interval: 0s\n" + minimal, `keygate.yaml:2: last_used.flush_interval: must be greater than 0, got "0s"`},
		{"zero usage flush interval", "usage:\n  flush_interval: 0s\n" + minimal, `keygate.yaml:2: usage.flush_interval: must be greater than 0, got "0s"`},
		{"usage flush interval not a duration", "usage:\n  flush_interval: often\n" + minimal, `keygate.yaml:2: usage.flush_interval: must be a duration such as "30s", "5m" or "1h", got "often"`},
		{"redis failure mode", "rate_limiter:\n  on_redis_failure: open\n" + minimal, `keygate.yaml:2: rate_limiter.on_redis_failure: must be one of "local", "shared-split", "closed", got "open"`},
		{"redis timeout", "rate_limiter:\n  redis_timeout: 0s\n" + minimal, `keygate.yaml:2: rate_limiter.redis_timeout: must be greater than 0, got "0s"`},
		{"rate limiter backend", "rate_limiter:\n  backend: memcached\n" + minimal, `keygate.yaml:2: rate_limiter.backend: must be "memory" or "redis", got "memcached"`},
		{"redis URL", "rate_limiter:\n  redis_url: http://user:secret@redis\n" + minimal, `keygate.yaml:2: rate_limiter.redis_url: must be a redis://, rediss:// or unix:// URL such as "redis://127.0.0.1:6379/0"`},
		{"database URL never echoed", "database_url: mysql://root:hunter2@db/keygate\n" + minimal, `keygate.yaml:1: database_url: must be a postgres:// URL such as "postgres://keygate@db:5432/keygate", or empty for SQLite; got scheme "mysql"`},
		{"replica URL", "database_url: postgres://db/keygate\ndatabase_replica_urls: [postgres://db2/keygate, mysql://root:hunter2@db3/keygate]\n" + minimal, `keygate.yaml:2: database_replica_urls[1]: must be a postgres:// URL such as "postgres://keygate@db:5432/keygate", or empty for SQLite; got scheme "mysql"`},
		{"admin listen", "admin:\n  listen: localhost\n" + minimal, `keygate.yaml:2: admin.listen: must be host:port such as "127.0.0.1:8080", got "localhost"`},
		{"admin public URL", "admin:\n  public_url: keygate.example.com\n" + minimal, `keygate.yaml:2: admin.public_url: must be an http:// or https:// URL such as "https://keygate.example.com", got "keygate.example.com"`},
		{"secure cookies", "admin:\n  secure_cookies: yes\n" + minimal, `keygate.yaml:2: admin.secure_cookies: must be one of "auto", "true", "false", got "yes"`},
		{"log level", "log: {level: verbose}\n" + minimal, `keygate.yaml:1: log.level: must be one of "debug", "info", "warn", "error", got "verbose"`},
		{"tracing endpoint not a URL", "tracing:\n  otlp_endpoint: otel-collector:4318\n" + minimal, `keygate.yaml:2: tracing.otlp_endpoint: must be an http:// or https:// URL, the collector's OTLP/HTTP address such as "http://otel-collector:4318"`},
		{"tracing endpoint with a query", "tracing:\n  otlp_endpoint: http://c:4318/v1/traces?x=1\n" + minimal, `keygate.yaml:2: tracing.otlp_endpoint: must not have a query or fragment, the collector's OTLP/HTTP address such as "http://otel-collector:4318"`},
		{"tracing endpoint with a password", "tracing:\n  otlp_endpoint: https://u:hunter2@c:4318\n" + minimal, `keygate.yaml:2: tracing.otlp_endpoint: must not carry a user or password; send credentials in OTEL_EXPORTER_OTLP_HEADERS`},
		{"tracing over gRPC", "tracing:\n  protocol: grpc\n" + minimal, `keygate.yaml:2: tracing.protocol: must be "http/protobuf" (OTLP over HTTP, the collector's port 4318), got "grpc"; keygate does not export over gRPC`},
		{"tracing sample ratio", "tracing:\n  sample_ratio: 1.5\n" + minimal, `keygate.yaml:2: tracing.sample_ratio: must be from 0 to 1 (the share of new traces recorded), got 1.5`},
		{"tracing sample ratio a word", "tracing:\n  sample_ratio: half\n" + minimal, `keygate.yaml:2: tracing.sample_ratio: must be a number, got "half"`},
		{"tracing service name empty", "tracing:\n  service_name: \"\"\n" + minimal, `keygate.yaml:2: tracing.service_name: must not be empty; leave it out for "keygate"`},
		{"tracing accept_incoming", "tracing:\n  accept_incoming: proxies\n" + minimal, `keygate.yaml:2: tracing.accept_incoming: must be one of "trusted_proxies", "all", "none", got "proxies"`},
		{"log format", "log: {format: xml}\n" + minimal, `keygate.yaml:1: log.format: must be "text" or "json", got "xml"`},

		// Suggestions only for likely typos.
		{"transposed key", "log: {levle: info}\n" + minimal, `keygate.yaml:1: log.levle: unknown key (did you mean "level"?)`},
		{"short unrelated key", "log: {foo: info}\n" + minimal, `keygate.yaml:1: log.foo: unknown key; known keys: format, level`},

		// An unknown key hides no other problem: one run reports an unknown
		// key, a bad value and a bad route together.
		{"unknown key with bad values", "log: {level: loud}\n" + strings.Replace(minimal, "path: /v2/products", "path: v2/products", 1) + "        acess: token\n",
			"keygate.yaml:1: log.level: must be one of \"debug\", \"info\", \"warn\", \"error\", got \"loud\"\n" +
				"keygate.yaml:9: apis[0].routes[0].path: must start with \"/\", got \"v2/products\"\n" +
				"keygate.yaml:10: apis[0].routes[0].acess: unknown key (did you mean \"access\"?)"},
		{"unknown key in a rate limit with a bad value beside it", withAPI("    rate_limits:\n      token: {limt: 5, period: fast}\n"),
			"keygate.yaml:10: apis[0].rate_limits.token.limt: unknown key (did you mean \"limit\"?)\n" +
				"keygate.yaml:10: apis[0].rate_limits.token.period: must be a duration such as \"30s\", \"5m\" or \"1h\", got \"fast\""},
		{"wrong type and a bad value", "cache: {ttl: 5 minutes}\n" + minimal + "    max_active_tokens: lots\n",
			"keygate.yaml:1: cache.ttl: must be a duration such as \"30s\", \"5m\" or \"1h\", got \"5 minutes\"\n" +
				"keygate.yaml:10: apis[0].max_active_tokens: must be a whole number, got \"lots\""},

		// Several problems are reported together, in file order.
		{"every problem at once", "log: {level: loud}\n" + strings.Replace(minimal, "[GET]", "[GRAB]", 1) + "        access: tokn\n",
			"keygate.yaml:1: log.level: must be one of \"debug\", \"info\", \"warn\", \"error\", got \"loud\"\n" +
				"keygate.yaml:8: apis[0].routes[0].methods[0]: must be an HTTP method (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS), got \"GRAB\"\n" +
				"keygate.yaml:10: apis[0].routes[0].access: must be \"public\" or \"token\", got \"tokn\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("keygate.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s\nconfig: %+v", tt.yaml, cfg)
			}
			if err.Error() != tt.want {
				t.Errorf("Parse error\n got: %s\nwant: %s", err, tt.want)
			}
			if _, ok := err.(Errors); !ok {
				t.Errorf("error is %T, want config.Errors", err)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config with its error")
			}
		})
	}
}

func TestParseErrorsNeverEchoSecrets(t *testing.T) {
	for _, yaml := range []string{
		"database_url: mysql://root:hunter2@db/keygate\n" + minimal,
		"database_url: \"postgres://root:hunter2@db/%zz\"\n" + minimal,
		"rate_limiter:\n  redis_url: http://user:hunter2@redis\n" + minimal,
	} {
		_, err := Parse("keygate.yaml", []byte(yaml))
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Parse(%q) = %v, want an error without the password", yaml, err)
		}
	}
}

func TestAPIsMayShareAnAddressByHost(t *testing.T) {
	cfg, err := Parse("keygate.yaml", []byte(strings.Replace(minimal, "listen: 127.0.0.1:8080", "listen: 127.0.0.1:8080\n    host: Menus.Example.com", 1)+`  - name: canskan
    preset: canskan
    listen: 127.0.0.1:8080
    host: events.example.com
    upstream: http://127.0.0.1:9081
    routes:
      - methods: [GET]
        path: /p/{code}
`))
	if err != nil {
		t.Fatal(err)
	}
	apis := cfg.APIs()
	if apis[0].Host != "menus.example.com" || apis[1].Host != "events.example.com" || apis[0].Listen != apis[1].Listen {
		t.Errorf("hosts %q %q on %q %q", apis[0].Host, apis[1].Host, apis[0].Listen, apis[1].Listen)
	}
}

func TestMCPAndOAuthFromTheExample(t *testing.T) {
	cfg, err := Parse("example.yaml", Example())
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.API("cannmenus").MCP
	if m == nil || m.Path != "/mcp" || m.Upstream != "http://127.0.0.1:9090/mcp" || !m.AllowAPITokens || strings.Join(m.Scopes, ",") != "products:read,dispensaries:read" {
		t.Errorf("mcp %+v", m)
	}
	if cfg.API("canskan").MCP != nil {
		t.Error("an API without an mcp block got one")
	}
	o := cfg.OAuth
	if len(o.Clients) != 1 || o.Clients[0].ID != "claude" || !o.Clients[0].Public() || o.Clients[0].Source != keygate.OAuthClientConfig || !o.AllowDynamicRegistration {
		t.Errorf("oauth %+v clients %+v", o, o.Clients)
	}
}
