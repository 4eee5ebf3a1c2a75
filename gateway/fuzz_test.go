package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/clientip"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/ratelimit"
)

// Fuzz tests of the gateway as a whole: arbitrary requests go through a
// real listener to the gateway and on to a real upstream that echoes what
// it received. Whatever comes in, keygate answers either with the
// upstream's response or with one of its preset's defined refusals, and
// the upstream never sees a token, a client's X-Keygate-* header in any
// spelling, or a client-chosen address header.

// fuzzMethods are the methods a fuzz input picks from: the routes' own,
// others net/http accepts, and one it would not route.
var fuzzMethods = []string{"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "get", "BREW"}

// presetRefusal returns the code whose preset answer is status and body,
// or "" when the answer is none of the preset's defined ones for a
// working keygate — a 500, net/http's own text, or the outage answer
// while store, limiter and upstream all work. The upstream's 502 stays: a
// request its transport refuses is answered in the preset's shape.
func presetRefusal(p *keygate.Preset, status int, body string) string {
	for code, resp := range p.Responses {
		if code == keygate.EINTERNAL || code == keygate.EUNAVAILABLE || resp.Status != status {
			continue
		}
		if before, _, ok := strings.Cut(resp.Body, "{kind}"); ok {
			_, after, _ := strings.Cut(resp.Body, "{value}")
			if strings.HasPrefix(body, before) && strings.HasSuffix(body, after) && json.Valid([]byte(body)) {
				return code
			}
		} else if resp.Body == body {
			return code
		}
	}
	return ""
}

// gatewayFuzz is a running gateway with a valid token of each API.
type gatewayFuzz struct {
	f           *fixture
	menus       *httptest.Server
	events      *httptest.Server
	menusToken  string
	eventsToken string
	menusTok    *keygate.Token
	eventsTok   *keygate.Token
	client      *http.Client
}

func newGatewayFuzz(f *testing.F) *gatewayFuzz {
	fx := newFixture(f)
	g := &gatewayFuzz{f: fx, client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	g.menusTok, g.menusToken = fx.token(fx.menus, []string{"products:read"}, keygate.Expiry90Days, fx.now)
	g.eventsTok, g.eventsToken = fx.token(fx.events, []string{"attendees:read"}, keygate.Expiry90Days, fx.now)
	// Gateways without a limiter, so canskan's 10 requests a minute do
	// not turn every later input into a 429.
	resolver, _ := clientip.New(nil)
	for _, pair := range []struct {
		api *keygate.API
		srv **httptest.Server
	}{{fx.menus, &g.menus}, {fx.events, &g.events}} {
		gw, err := gateway.New(gateway.Config{API: pair.api, Tokens: fx.tokens, ClientIP: resolver, Signer: fx.signer, MaxBodyBytes: 1024})
		if err != nil {
			f.Fatal(err)
		}
		*pair.srv = httptest.NewServer(gw)
	}
	f.Cleanup(g.menus.Close)
	f.Cleanup(g.events.Close)
	return g
}

// validHeaderName and validHeaderValue keep inputs to what a client can
// put on the wire at all (RFC 9110 tokens; no control bytes).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// foldName is a header name as the frameworks behind keygate may read it:
// case folded and "_" taken for "-".
func foldName(s string) string {
	return strings.ReplaceAll(strings.ToLower(s), "_", "-")
}

func FuzzGateway(f *testing.F) {
	// api 0: cannmenus (X-Token, no limits); 1: canskan (Bearer, limits).
	// tokenAt: 0 none, 1 the preset's header, 2 both X-Token and
	// Authorization, 3 inside the fuzzed header's value.
	f.Add(uint8(0), uint8(0), "/v2/products?states=California&page=1", uint8(1), "X-Keygate-Org", "org_evil", "", []byte(nil))
	f.Add(uint8(0), uint8(0), "/v2/products?states=New%20York", uint8(1), "X_Keygate_Identity", "forged", "X-Real-IP", []byte(nil))
	f.Add(uint8(0), uint8(0), "/v2/products?States=New%20York&states[]=Texas", uint8(1), "x_token", "cm_live_x", "True-Client-IP", []byte(nil))
	f.Add(uint8(0), uint8(1), "/v2/upload", uint8(1), "Content-Type", "application/json", "", bytes.Repeat([]byte("a"), 2000))
	f.Add(uint8(0), uint8(0), "/v2/../v2/products", uint8(1), "Cookie", "a=b", "", []byte(nil))
	f.Add(uint8(0), uint8(0), "/v2/products%2F..%2Fanalytics", uint8(3), "Authorization", "Basic ", "", []byte(nil))
	f.Add(uint8(0), uint8(0), "/v2/analytics", uint8(2), "CF-Connecting-IP", "10.0.0.1", "X_Client_IP", []byte(nil))
	f.Add(uint8(1), uint8(0), "/api/v1/attendees", uint8(1), "X-Forwarded-For", "10.0.0.1", "x-keygate-token-id", []byte(nil))
	f.Add(uint8(1), uint8(0), "/p/abc123def456", uint8(0), "Authorization", "Bearer csk_live_", "", []byte(nil))
	f.Add(uint8(1), uint8(0), "/api/v1/webhooks?x=1;states=New%20York", uint8(3), "Proxy-Authorization", "Bearer ", "", []byte(nil))
	f.Add(uint8(1), uint8(5), "/api/v1/attendees", uint8(1), "Authorization", "bearer  x", "", []byte(nil))
	g := newGatewayFuzz(f)
	f.Fuzz(func(t *testing.T, api, method uint8, target string, tokenAt uint8, name, value, extraName string, body []byte) {
		if !strings.HasPrefix(target, "/") || !validHeaderName(name) || !validHeaderValue(value) ||
			extraName != "" && !validHeaderName(extraName) || len(target) > 4096 {
			t.Skip()
		}
		u, err := url.ParseRequestURI(target)
		if err != nil || strings.ContainsAny(target, " \t\r\n#") {
			t.Skip()
		}
		srv, p, secret, tok := g.menus, g.f.menus.Preset, g.menusToken, g.menusTok
		if api%2 == 1 {
			srv, p, secret, tok = g.events, g.f.events.Preset, g.eventsToken, g.eventsTok
		}
		req, err := http.NewRequest(fuzzMethods[int(method)%len(fuzzMethods)], srv.URL+u.RequestURI(), bytes.NewReader(body))
		if err != nil {
			t.Skip()
		}
		req.Header[name] = []string{value}
		if extraName != "" {
			req.Header[extraName] = []string{value}
		}
		switch tokenAt % 4 {
		case 1:
			req.Header.Set(p.TokenHeader, strings.TrimSpace(p.TokenScheme+" "+secret))
		case 2:
			req.Header.Set("X-Token", secret)
			req.Header.Set("Authorization", "Bearer "+secret)
		case 3:
			req.Header[name] = []string{value + secret}
		}
		resp, err := g.client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", req.Method, target, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			if req.Method == http.MethodHead {
				return // no body to judge; the status is checked below for GET
			}
			if code := presetRefusal(p, resp.StatusCode, string(got)); code == "" {
				t.Fatalf("%s %s: %d %q is not one of the %s preset's answers", req.Method, target, resp.StatusCode, got, p.Name)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("%s %s: refusal with Content-Type %q", req.Method, target, ct)
			}
			return
		}
		if req.Method == http.MethodHead {
			return
		}
		var seen upstreamSeen
		if err := json.Unmarshal(got, &seen); err != nil {
			t.Fatalf("%s %s: 200 that is not the upstream's echo: %q", req.Method, target, got)
		}
		checkUpstreamSaw(t, g, p, seen, secret, tok)
		checkEntitlementsHeld(t, g.f.org.Entitlements, seen.Path)
	})
}

// checkUpstreamSaw asserts what reached the upstream: no token, no
// client's identity or address header, and keygate's own headers only
// with keygate's values.
func checkUpstreamSaw(t *testing.T, g *gatewayFuzz, p *keygate.Preset, seen upstreamSeen, secret string, tok *keygate.Token) {
	t.Helper()
	own := map[string]bool{}
	for name, values := range seen.Header {
		folded := foldName(name)
		for _, v := range values {
			if strings.Contains(v, secret) {
				t.Fatalf("the upstream saw the token in %s", name)
			}
		}
		switch {
		case folded == foldName(p.TokenHeader):
			t.Fatalf("the upstream saw the token header %s: %q", name, values)
		case folded == "true-client-ip" || folded == "cf-connecting-ip" || folded == "x-client-ip":
			t.Fatalf("the upstream saw the client's %s: %q", name, values)
		case folded == "x-real-ip":
			// keygate's own, set to the address it resolved: the
			// connection's, as no proxy is trusted here.
			if len(values) != 1 || name != "X-Real-Ip" || values[0] != "127.0.0.1" {
				t.Fatalf("the upstream saw %s: %q", name, values)
			}
		case strings.HasPrefix(folded, "x-keygate-"):
			if len(values) != 1 || !strings.HasPrefix(name, "X-Keygate-") {
				t.Fatalf("the upstream saw %s: %q", name, values)
			}
			own[name] = true
		}
	}
	if len(own) == 0 {
		return // a public route: keygate vouches for nobody
	}
	id, err := g.f.verifier.Verify(seen.Header.Get(keygate.HeaderIdentity), tok.API)
	if err != nil {
		t.Fatalf("identity header does not verify: %v", err)
	}
	if id.TokenID != tok.ID || seen.Header.Get(keygate.HeaderTokenID) != tok.ID ||
		seen.Header.Get(keygate.HeaderOrganization) != g.f.org.ID || seen.Header.Get(keygate.HeaderScopes) != strings.Join(tok.Scopes, " ") {
		t.Fatalf("keygate's headers do not say what keygate decided: %v", seen.Header)
	}
	if len(own) != 4 {
		t.Fatalf("the upstream saw keygate headers %v", own)
	}
}

// checkEntitlementsHeld reads the query the upstream got the way common
// upstream frameworks may (case-insensitive names, PHP's "states[]" and
// "states[0]") and asserts every state asked for is entitled.
func checkEntitlementsHeld(t *testing.T, ent keygate.Entitlements, requestURI string) {
	t.Helper()
	u, err := url.ParseRequestURI(requestURI)
	if err != nil {
		t.Fatalf("upstream request URI %q: %v", requestURI, err)
	}
	values, _ := url.ParseQuery(u.RawQuery)
	for name, vs := range values {
		base, _, _ := strings.Cut(strings.ToLower(name), "[")
		if base != "states" && base != "brands" {
			continue
		}
		for _, raw := range vs {
			for _, v := range strings.Split(raw, ",") {
				if v = strings.TrimSpace(v); v != "" && !ent.Allows(base, v) {
					t.Fatalf("the upstream got %s=%q, outside the organization's entitlements", name, v)
				}
			}
		}
	}
}

// FuzzForwardAuth sends arbitrary forwarded-request headers to
// /_keygate/auth from a trusted proxy. Whatever the headers say, the answer
// is 200 or one of the preset's refusals, and a 200 is never given for a
// request the reverse proxy itself would refuse: forward-auth is the same
// decision, reached through headers.
func FuzzForwardAuth(f *testing.F) {
	// family 0: X-Forwarded-Method/-Uri/-Host; 1: X-Original-Method/-URI.
	f.Add(uint8(0), "GET", "/v2/products?states=California", "api.example.com", true, "", "")
	f.Add(uint8(1), "GET", "/v2/products?states=New%20York", "", true, "X-Forwarded-Uri", "/v2/products")
	f.Add(uint8(0), "POST", "/v2/upload", "", true, "X-Original-Method", "GET")
	f.Add(uint8(1), "GET", "http://evil.example/v2/products", "", true, "", "")
	f.Add(uint8(0), "GET", "/v2/analytics", "", true, "X-Original-URI", "/v2/products")
	f.Add(uint8(0), "", "", "", false, "X-Original-Url", "/v2/products")
	f.Add(uint8(1), "get", "/v2//products", "", true, "", "")
	f.Add(uint8(0), "GET", "/v2/products/../analytics", "", true, "X_Forwarded_Uri", "/v2/products")
	f.Add(uint8(0), "GET", "*", "", true, "", "")
	fx := newFixture(f)
	tok, secret := fx.token(fx.menus, []string{"products:read"}, keygate.Expiry90Days, fx.now)
	_ = tok
	resolver, err := clientip.New([]string{"10.0.0.0/8"})
	if err != nil {
		f.Fatal(err)
	}
	limiter := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	f.Cleanup(func() { limiter.Close() })
	gw, err := gateway.New(gateway.Config{API: fx.menus, Tokens: fx.tokens, Limiter: limiter, ClientIP: resolver, MaxBodyBytes: 1024})
	if err != nil {
		f.Fatal(err)
	}
	p := fx.menus.Preset
	f.Fuzz(func(t *testing.T, family uint8, method, uri, host string, withToken bool, extraName, extraValue string) {
		for _, s := range []string{method, uri, host, extraValue} {
			if !validHeaderValue(s) {
				t.Skip()
			}
		}
		if extraName != "" && !validHeaderName(extraName) {
			t.Skip()
		}
		names := [][3]string{{"X-Forwarded-Method", "X-Forwarded-Uri", "X-Forwarded-Host"}, {"X-Original-Method", "X-Original-URI", "X-Original-Host"}}[family%2]
		req := httptest.NewRequest("GET", "/_keygate/auth", nil)
		req.RemoteAddr = "10.1.2.3:5000"
		for i, v := range []string{method, uri, host} {
			if v != "" {
				req.Header.Set(names[i], v)
			}
		}
		if extraName != "" {
			req.Header[extraName] = []string{extraValue}
		}
		if withToken {
			req.Header.Set("X-Token", secret)
		}
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			if presetRefusal(p, rec.Code, rec.Body.String()) == "" {
				t.Fatalf("forward-auth answered %d %q, not one of the preset's answers", rec.Code, rec.Body.String())
			}
			return
		}
		if rec.Body.Len() != 0 {
			t.Fatalf("a pass has a body: %q", rec.Body.String())
		}
		// Some reading of the forwarded headers must be a request the
		// reverse proxy lets through.
		methods, uris := forwardedReadings(req.Header)
		for _, m := range methods {
			for _, target := range uris {
				if proxyAllows(gw, m, target, secret) {
					return
				}
			}
		}
		t.Fatalf("forward-auth passed %v %v, which the reverse proxy refuses", methods, uris)
	})
}

// forwardedReadings lists every method and URI the headers could be taken
// to name, in any family and spelling; GET when no method is given.
func forwardedReadings(h http.Header) (methods, uris []string) {
	for name, values := range h {
		switch foldName(name) {
		case "x-forwarded-method", "x-original-method":
			methods = append(methods, values...)
		case "x-forwarded-uri", "x-original-uri", "x-original-url":
			uris = append(uris, values...)
		}
	}
	return append(methods, http.MethodGet), uris
}

// proxyAllows reports whether the gateway, as a reverse proxy, would pass
// method and target with the token: its decision, without forwarding.
func proxyAllows(gw *gateway.Gateway, method, target, secret string) bool {
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return false
	}
	h := http.Header{}
	h.Set("X-Token", secret)
	_, err = gw.Authorize(context.Background(), gateway.Request{Method: method, URL: u, Header: h})
	return err == nil
}

// FuzzEntitlementQuery checks the entitlement rule on arbitrary query
// strings against its definition: a request passes exactly when every
// state and brand asked for — parameters repeated or comma-separated,
// values trimmed and compared without case — is one the organization has.
// A refusal names the first value outside them, JSON-escaped so the body
// stays valid JSON that reads back as that value.
func FuzzEntitlementQuery(f *testing.F) {
	for _, q := range []string{
		"states=California", "states=California,Oregon", "states=california&states=MICHIGAN",
		"states=%20Colorado%20,,", "states=New%20York", "states=%22%5C%3C", "states=Calif%00ornia",
		"states=California&states=Texas", "brands=Acme", "states=%zz&states=Texas", "x=1;states=Texas",
		"States=Texas", "states[]=Texas", "states[0]=Texas", "STATES%5B%5D=Texas", "states=\u00e9",
	} {
		f.Add(q)
	}
	fx := newFixture(f)
	_, secret := fx.token(fx.menus, []string{"products:read"}, keygate.Expiry90Days, fx.now)
	h := http.Header{}
	h.Set("X-Token", secret)
	ent := fx.org.Entitlements
	f.Fuzz(func(t *testing.T, rawQuery string) {
		u := &url.URL{Path: "/v2/products", RawQuery: rawQuery}
		_, err := fx.menusGW.Authorize(context.Background(), gateway.Request{Method: "GET", URL: u, Header: h})
		if _, perr := url.ParseQuery(rawQuery); perr != nil {
			// Go reads such a query only in part (a ";" separator, a bad
			// escape, too many parameters); another parser upstream may
			// read a value in the rest, so it is refused whole.
			if status, _ := fx.menus.Preset.Render(err); keygate.ErrorCode(err) != keygate.EINVALID || status != http.StatusBadRequest {
				t.Fatalf("?%s (%v): got %v, want the malformed query refused 400", rawQuery, perr, err)
			}
			return
		}
		first := firstUnentitled(ent, rawQuery)
		if first == "" {
			if err != nil {
				t.Fatalf("?%s refused (%v) though every value is entitled", rawQuery, err)
			}
			return
		}
		e := keygate.AsError(err)
		if err == nil || e.Code != keygate.EENTITLEMENT {
			t.Fatalf("?%s: got %v, want a refusal naming %q", rawQuery, err, first)
		}
		status, body := fx.menus.Preset.Render(err)
		var detail struct {
			Detail string `json:"detail"`
		}
		if status != http.StatusForbidden || json.Unmarshal(body, &detail) != nil {
			t.Fatalf("?%s: refusal %d %q is not the preset's JSON", rawQuery, status, body)
		}
		want := "Your organization does not have access to " + keygate.EntitlementNoun(e.Kind) + " " + e.Value + "."
		if detail.Detail != viaJSON(want) {
			t.Fatalf("?%s: detail %q, want %q", rawQuery, detail.Detail, viaJSON(want))
		}
		if !strings.EqualFold(e.Value, first) && firstUnentitled(ent, rawQuery) != "" {
			// Which value is named first depends on the map's order of
			// kinds; it must at least be one that is not entitled.
			if ent.Allows(e.Kind, e.Value) {
				t.Fatalf("?%s: refusal names %s %q, which is entitled", rawQuery, e.Kind, e.Value)
			}
		}
	})
}

// firstUnentitled is the rule written out: every parameter whose name is
// "states" or "brands" in any case, or those names with PHP's array
// brackets, counts; "" when all values are entitled.
func firstUnentitled(ent keygate.Entitlements, rawQuery string) string {
	values, _ := url.ParseQuery(rawQuery)
	for name, vs := range values {
		kind, _, _ := strings.Cut(strings.ToLower(name), "[")
		if kind != keygate.EntitlementStates && kind != keygate.EntitlementBrands {
			continue
		}
		for _, raw := range vs {
			for _, v := range strings.Split(raw, ",") {
				if v = strings.TrimSpace(v); v != "" && !ent.Allows(kind, v) {
					return v
				}
			}
		}
	}
	return ""
}

// viaJSON is s as a JSON string carries it: invalid UTF-8 (a client's
// %80) becomes U+FFFD, as encoding/json writes every body.
func viaJSON(s string) string {
	b, _ := json.Marshal(s)
	var out string
	json.Unmarshal(b, &out)
	return out
}
