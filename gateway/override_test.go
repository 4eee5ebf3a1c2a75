package gateway_test

import (
	"testing"

	"github.com/keygate/keygate"
)

// A route is chosen and checked for the request's method. Laravel and
// Symfony serve a POST carrying X-HTTP-Method-Override: DELETE or
// ?_method=DELETE as a DELETE (Express's method-override and ASP.NET's
// middleware read the header too), so such a request would reach a route
// keygate never checked: a public POST becomes a token DELETE. It is the
// preset's 400, on the proxy and on forward-auth, and never forwarded.
func TestMethodOverrideNamingAnotherMethodIsRefused(t *testing.T) {
	gw, up := pathsGateway(t,
		keygate.Route{Methods: []string{"POST"}, Path: "/events/{id}/register", Access: keygate.AccessPublic},
		keygate.Route{Methods: []string{"DELETE"}, Path: "/events/{id}/register", Access: keygate.AccessToken, Scopes: []string{"webhooks:manage"}},
	)
	addr := newRawServer(t, gw)
	const badRequest = `{"message": "Bad Request."}`

	for _, c := range []struct{ target, header string }{
		{"/events/1/register", "X-HTTP-Method-Override: DELETE"},
		{"/events/2/register", "x_http_method_override: delete"},
		{"/events/3/register", "X-HTTP-Method: DELETE"},
		{"/events/4/register", "X-Method-Override: PUT"},
		{"/events/5/register", "X-HTTP-Method-Override: POST\r\nX-HTTP-Method-Override: DELETE"},
		{"/events/6/register?_method=DELETE", ""},
		{"/events/7/register?page=1&.method=delete", ""},
		{"/events/8/register?%5Fmethod=DELETE", ""},
		{"/events/9/register?_method=%ZZ", ""},
		{"/events/13/register", "X-HTTP-Method-Override: poſt"}, // long s: POST only to a Unicode case fold
		{"/events/14/register?_method=po%C5%BFt", ""},
	} {
		head := "POST " + c.target + " HTTP/1.1\r\nHost: api.example\r\nContent-Length: 0\r\n"
		if c.header != "" {
			head += c.header + "\r\n"
		}
		status, body := rawExchange(t, addr, head+"Connection: close\r\n\r\n")
		if status != "HTTP/1.1 400 Bad Request" || body != badRequest {
			t.Errorf("POST %s with %q: %s %q, want 400 %q", c.target, c.header, status, body, badRequest)
		}
		if up.saw(c.target) {
			t.Errorf("POST %s with %q reached the upstream", c.target, c.header)
		}
		auth := "GET /_keygate/auth HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-Method: POST\r\nX-Forwarded-Uri: " + c.target + "\r\n"
		if c.header != "" {
			auth += c.header + "\r\n"
		}
		status, body = rawExchange(t, addr, auth+"Connection: close\r\n\r\n")
		if status != "HTTP/1.1 400 Bad Request" || body != badRequest {
			t.Errorf("forward-auth POST %s with %q: %s %q, want 400 %q", c.target, c.header, status, body, badRequest)
		}
	}

	// Naming the request's own method, or a parameter that only looks
	// like _method, changes nothing.
	for _, c := range []struct{ target, header string }{
		{"/events/10/register", "X-HTTP-Method-Override: post"},
		{"/events/11/register?_methods=DELETE&method=DELETE", ""},
		{"/events/12/register?_method=POST", ""},
	} {
		head := "POST " + c.target + " HTTP/1.1\r\nHost: api.example\r\nContent-Length: 0\r\n"
		if c.header != "" {
			head += c.header + "\r\n"
		}
		status, body := rawExchange(t, addr, head+"Connection: close\r\n\r\n")
		if status != "HTTP/1.1 200 OK" || body != "upstream" || !up.saw(c.target) {
			t.Errorf("POST %s with %q: %s %q, want the upstream's 200", c.target, c.header, status, body)
		}
	}
}
