package config

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/preset"
)

// CustomPreset is the preset name for an API whose wire behaviour is
// written in its custom_preset block instead of taken from package preset.
const CustomPreset = "custom"

var (
	apiNameRe     = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	tokenPrefixRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_]*_$`)
	// A scope or plan is one word of printable ASCII: no spaces (OAuth scope
	// lists are space-separated), commas (identity headers list them with
	// commas), quotes or backslashes.
	wordRe       = regexp.MustCompile(`^[\x21\x23-\x2B\x2D-\x5B\x5D-\x7E]+$`)
	headerNameRe = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
)

const (
	maxAPINameLength = 63
	// maxTokenPrefixLength leaves room for the environment ("live_") within
	// the 32 prefix characters keygate.MaxTokenLength allows.
	maxTokenPrefixLength = 27
)

// reservedTokenPrefixes start keygate's own secrets: OAuth access and
// refresh tokens and admin keys.
var reservedTokenPrefixes = []string{"kgo_", "kgadm_"}

// apis checks each API and what APIs must not share: names, token
// prefixes and listen addresses (with the admin listener's). No APIs at all
// is allowed: commands that only manage organizations and users need none.
func (c *checker) apis(list []fileAPI, adminListen string) []*keygate.API {
	names := map[string]string{}
	prefixes := map[string]string{}
	type listener struct{ path, addr, host string }
	listeners := []listener{{"admin.listen", adminListen, ""}}
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
		for _, l := range listeners {
			if sharedByHost(api.Listen, api.Host, l.addr, l.host, l.path) {
				continue
			}
			if reason := listenConflict(api.Listen, l.addr); reason != "" {
				c.fail(path+".listen", "%q %s %s%s", api.Listen, reason, l.path, hostHint(l.path))
				break
			}
		}
		listeners = append(listeners, listener{path + ".listen", api.Listen, api.Host})
		apis = append(apis, api)
	}
	return apis
}

// sharedByHost reports whether two APIs may share one listen address: the
// same address, each with its own host name.
func sharedByHost(addr, host, otherAddr, otherHost, otherPath string) bool {
	return otherPath != "admin.listen" && addr == otherAddr && host != "" && otherHost != "" && host != otherHost
}

func hostHint(otherPath string) string {
	if otherPath == "admin.listen" {
		return ""
	}
	return " (APIs may share an address only when each sets its own host)"
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
	api.Host = c.host(path+".host", f.Host)
	api.PublicURL = c.apiPublicURL(path, f, api.Listen, api.Host)
	if f.Upstream == "" {
		c.fail(path+".upstream", `is required, e.g. "http://127.0.0.1:9080"`)
	} else if reason := httpURLProblem(f.Upstream); reason != "" {
		c.fail(path+".upstream", `%s such as "http://127.0.0.1:9080", got %q`, reason, f.Upstream)
	}
	api.Upstream = f.Upstream
	api.UpstreamTimeout = c.duration(path+".upstream_timeout", f.UpstreamTimeout, DefaultUpstreamTimeout, false)
	api.Tokens = c.tokenPolicy(path, f, api.Preset)
	api.PublicRateLimit = c.defaultRateLimit(path+".rate_limits.public", f.RateLimits.Public, api.Preset.PublicRateLimit, keygate.AccessPublic)
	api.TokenRateLimit = c.defaultRateLimit(path+".rate_limits.token", f.RateLimits.Token, api.Preset.TokenRateLimit, keygate.AccessToken)
	api.FailedAuthRateLimit = c.defaultRateLimit(path+".rate_limits.failed_auth", f.RateLimits.FailedAuth, api.Preset.FailedAuthRateLimit, keygate.AccessPublic)
	api.OnLimiterFailure = c.oneOf(path+".rate_limits.on_redis_failure", f.RateLimits.OnRedisFailure, "",
		OnFailureLocal, OnFailureSplit, OnFailureClosed)
	api.Routes = c.routes(path, f.Routes, api.Tokens.Scopes)
	api.MCP = c.mcp(path+".mcp", f.MCP, api.Tokens.Scopes)
	return api
}

// host checks a bare host name (no scheme, port or path), lower-cased.
func (c *checker) host(path, got string) string {
	if got == "" {
		return ""
	}
	h := strings.ToLower(got)
	if !hostNameRe.MatchString(h) || len(h) > 253 {
		c.fail(path, `must be a host name such as "api.example.com" (no scheme, port or path), got %q`, got)
	}
	return h
}

var hostNameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)

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
		keygate.EUPSTREAMSLOW: r(504, keygate.EUPSTREAMSLOW, "The upstream API did not answer in time."),
		keygate.EUNAVAILABLE:  r(503, keygate.EUNAVAILABLE, "Service unavailable."),
		keygate.EINTERNAL:     r(500, keygate.EINTERNAL, "Internal server error."),
		keygate.ETOOLARGE:     r(413, keygate.ETOOLARGE, "The request body is too large."),
		keygate.EINVALID:      r(400, keygate.EINVALID, "Bad request."),
	}
}

func (c *checker) customPreset(path string, f *fileCustomPreset) *keygate.Preset {
	p := &keygate.Preset{Name: CustomPreset, TokenHeader: "Authorization", TokenScheme: "Bearer", Responses: customResponses(),
		FailedAuthRateLimit: preset.DefaultFailedAuthLimit()}
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
	for _, reserved := range reservedTokenPrefixes {
		if strings.HasPrefix(tp.BasePrefix, reserved) {
			c.fail(path+".token_prefix", "%q is reserved for keygate's own credentials (%s…), so they can never be taken for API tokens", tp.BasePrefix, reserved)
		}
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
