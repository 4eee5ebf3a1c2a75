package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/clientip"
	"github.com/keygate/keygate/gateway"
)

// FuzzForwardAuthRelay asks forward-auth the same arbitrary question
// twice: plainly, and with ?refusal=headers as keygate's nginx recipe
// does. The relayed answer is the plain one carried in headers: a pass
// stays a pass; a refusal becomes 401 or 403 (what auth_request relays)
// with an empty body, X-Keygate-Status the plain answer's status and
// X-Keygate-Body its exact body, on one header line each.
func FuzzForwardAuthRelay(f *testing.F) {
	f.Add(uint8(0), "GET", "/v2/products?states=California", true, "")
	f.Add(uint8(1), "GET", "/v2/products?states=New%20York", true, "")
	f.Add(uint8(0), "GET", "/v2/products?states=%22%5C%0D%0AX:y", true, "")
	f.Add(uint8(0), "POST", "/v2/upload", false, "")
	f.Add(uint8(1), "GET", "/v2/analytics", true, "refusal=headers")
	f.Add(uint8(0), "GET", "/nope", true, "refusal=body&refusal=headers")
	fx := newFixture(f)
	_, secret := fx.token(fx.menus, []string{"products:read"}, keygate.Expiry90Days, fx.now)
	resolver, err := clientip.New([]string{"10.0.0.0/8"})
	if err != nil {
		f.Fatal(err)
	}
	// No limiter: both questions must get the same decision.
	gw, err := gateway.New(gateway.Config{API: fx.menus, Tokens: fx.tokens, ClientIP: resolver, MaxBodyBytes: 1024})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, family uint8, method, uri string, withToken bool, extraQuery string) {
		if !validHeaderValue(method) || !validHeaderValue(uri) || strings.ContainsAny(extraQuery, " #\t\r\n") {
			t.Skip()
		}
		names := [][2]string{{"X-Forwarded-Method", "X-Forwarded-Uri"}, {"X-Original-Method", "X-Original-URI"}}[family%2]
		ask := func(query string) *httptest.ResponseRecorder {
			req := httptest.NewRequest("GET", "/_keygate/auth", nil)
			req.URL.RawQuery = query
			req.RemoteAddr = "10.1.2.3:5000"
			if method != "" {
				req.Header.Set(names[0], method)
			}
			if uri != "" {
				req.Header.Set(names[1], uri)
			}
			if withToken {
				req.Header.Set("X-Token", secret)
			}
			rec := httptest.NewRecorder()
			gw.ServeHTTP(rec, req)
			return rec
		}
		plain := ask("")
		query := strings.TrimPrefix(extraQuery+"&refusal=headers", "&")
		relayed := ask(query)
		if v, _ := url.ParseQuery(query); v.Get("refusal") != "headers" {
			// The first refusal parameter is the one read: the plain answer.
			if relayed.Code != plain.Code || relayed.Body.String() != plain.Body.String() {
				t.Fatalf("%q: %d %q, the plain answer is %d %q", query, relayed.Code, relayed.Body, plain.Code, plain.Body)
			}
			return
		}
		if plain.Code == http.StatusOK {
			if relayed.Code != http.StatusOK || relayed.Header().Get(gateway.HeaderRefusalStatus) != "" {
				t.Fatalf("a pass relayed as %d %v", relayed.Code, relayed.Header())
			}
			return
		}
		if relayed.Code != http.StatusUnauthorized && relayed.Code != http.StatusForbidden || relayed.Body.Len() != 0 {
			t.Fatalf("refusal %d relayed as %d %q", plain.Code, relayed.Code, relayed.Body)
		}
		h := relayed.Header()
		if h.Get(gateway.HeaderRefusalStatus) != strconv.Itoa(plain.Code) || h.Get(gateway.HeaderRefusalBody) != plain.Body.String() {
			t.Fatalf("refusal %d %q relayed as %q %q", plain.Code, plain.Body, h.Get(gateway.HeaderRefusalStatus), h.Get(gateway.HeaderRefusalBody))
		}
		for _, name := range []string{gateway.HeaderRefusalStatus, gateway.HeaderRefusalBody} {
			if v := h.Values(name); len(v) != 1 || strings.ContainsAny(v[0], "\r\n") {
				t.Fatalf("%s relayed as %q", name, v)
			}
		}
	})
}
