package server_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/server"
)

// badInput is one malformed, hostile or refused request and keygate's
// defined answer to it. docs/security.md lists every case of badInputs;
// TestSecurityDocListsEveryBadInput keeps the two the same.
type badInput struct {
	name   string
	api    string // "menus" (cannmenus preset), "events" (canskan) or "down" (upstream unreachable)
	before int    // identical requests sent first, for limits
	// request is the raw request up to the blank line, with {TOKEN},
	// {EXPIRED}, {EVENTS_TOKEN} and {CHECKSUM_OK} replaced; "Host" and
	// "Connection: close" are added.
	request string
	body    string
	status  int
	answer  string // exact body; "" with net/http's own answers is not checked
	// contains is what a page (or an indented JSON answer) of the admin
	// listener must hold, where the whole body varies.
	contains string
	// location is where a redirect must point.
	location string
}

const (
	cmNotFound   = `{"detail": "Not Found"}`
	cmScope      = `{"detail": "Token does not have access to this endpoint."}`
	cskRequired  = `{"message": "API token required."}`
	cskInvalid   = `{"message": "Invalid API token."}`
	cskExpired   = `{"message": "API token has expired."}`
	cskNotFound  = `{"message": "Not Found."}`
	cskForbidden = `{"message": "Token does not have required permissions."}`
)

var badInputs = []badInput{
	// Tokens: where they travel, what they look like.
	{name: "cannmenus: no token", api: "menus", request: "GET /v2/products HTTP/1.1", status: 404, answer: cmNotFound},
	{name: "cannmenus: empty X-Token", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Token: ", status: 404, answer: cmNotFound},
	{name: "cannmenus: token only in Authorization: Bearer", api: "menus", request: "GET /v2/products HTTP/1.1\r\nAuthorization: Bearer {TOKEN}", status: 404, answer: cmNotFound},
	{name: "cannmenus: X-Token twice", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Token: {TOKEN}\r\nX-Token: {TOKEN}", status: 404, answer: cmNotFound},
	{name: "cannmenus: token with one character changed", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Token: {TOKEN_CHANGED}", status: 404, answer: cmNotFound},
	{name: "cannmenus: token of another API", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Token: {EVENTS_TOKEN}", status: 404, answer: cmNotFound},
	{name: "cannmenus: well-formed token never issued", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Token: {CHECKSUM_OK}", status: 404, answer: cmNotFound},
	{name: "cannmenus: token with a trailing character", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Token: {TOKEN}x", status: 404, answer: cmNotFound},
	{name: "cannmenus: 4 KB X-Token", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Token: cm_live_" + strings.Repeat("a", 4096), status: 404, answer: cmNotFound},
	{name: "cannmenus: token with non-ASCII bytes", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Token: cm_live_\xc3\xa9\xc3\xa9", status: 404, answer: cmNotFound},
	{name: "cannmenus: expired token", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Token: {EXPIRED}", status: 404, answer: cmNotFound},
	{name: "cannmenus: valid token with surrounding spaces", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Token:    {TOKEN}   ", status: 200},
	{name: "canskan: no Authorization", api: "events", request: "GET /api/v1/attendees HTTP/1.1", status: 401, answer: cskRequired},
	{name: "canskan: Basic instead of Bearer", api: "events", request: "GET /api/v1/attendees HTTP/1.1\r\nAuthorization: Basic dXNlcjpwdw==", status: 401, answer: cskRequired},
	{name: "canskan: Bearer without a token", api: "events", request: "GET /api/v1/attendees HTTP/1.1\r\nAuthorization: Bearer", status: 401, answer: cskRequired},
	{name: "canskan: Bearer and spaces only", api: "events", request: "GET /api/v1/attendees HTTP/1.1\r\nAuthorization: Bearer    ", status: 401, answer: cskRequired},
	{name: "canskan: lower-case bearer scheme", api: "events", request: "GET /api/v1/attendees HTTP/1.1\r\nAuthorization: bearer {EVENTS_TOKEN}", status: 200},
	{name: "canskan: token in X-Token", api: "events", request: "GET /api/v1/attendees HTTP/1.1\r\nX-Token: {EVENTS_TOKEN}", status: 401, answer: cskRequired},
	{name: "canskan: Authorization twice", api: "events", request: "GET /api/v1/attendees HTTP/1.1\r\nAuthorization: Bearer {EVENTS_TOKEN}\r\nAuthorization: Bearer {EVENTS_TOKEN}", status: 401, answer: cskInvalid},
	{name: "canskan: garbage Bearer token", api: "events", request: "GET /api/v1/attendees HTTP/1.1\r\nAuthorization: Bearer ' OR 1=1 --", status: 401, answer: cskInvalid},
	{name: "canskan: cannmenus token", api: "events", request: "GET /api/v1/attendees HTTP/1.1\r\nAuthorization: Bearer {TOKEN}", status: 401, answer: cskInvalid},
	{name: "canskan: OAuth-style kgo_ token on a route", api: "events", request: "GET /api/v1/attendees HTTP/1.1\r\nAuthorization: Bearer kgo_" + strings.Repeat("A", 40), status: 401, answer: cskInvalid},
	{name: "canskan: expired token", api: "events", request: "GET /api/v1/attendees HTTP/1.1\r\nAuthorization: Bearer {EVENTS_EXPIRED}", status: 401, answer: cskExpired},

	// Paths and methods: only the clean path of a known route is checked and forwarded.
	{name: "unknown path", api: "menus", request: "GET /v2/nothing HTTP/1.1\r\nX-Token: {TOKEN}", status: 404, answer: cmNotFound},
	{name: "dot-dot segment", api: "menus", request: "GET /v2/x/../products HTTP/1.1\r\nX-Token: {TOKEN}", status: 404, answer: cmNotFound},
	{name: "dot segment", api: "menus", request: "GET /v2/./products HTTP/1.1\r\nX-Token: {TOKEN}", status: 404, answer: cmNotFound},
	{name: "doubled slash", api: "menus", request: "GET /v2//products HTTP/1.1\r\nX-Token: {TOKEN}", status: 404, answer: cmNotFound},
	{name: "encoded slash", api: "menus", request: "GET /v2%2Fproducts HTTP/1.1\r\nX-Token: {TOKEN}", status: 404, answer: cmNotFound},
	{name: "encoded dot-dot", api: "menus", request: "GET /v2/x/%2e%2e/products HTTP/1.1\r\nX-Token: {TOKEN}", status: 404, answer: cmNotFound},
	{name: "trailing slash", api: "menus", request: "GET /v2/products/ HTTP/1.1\r\nX-Token: {TOKEN}", status: 404, answer: cmNotFound},
	{name: "upper-case path", api: "menus", request: "GET /V2/PRODUCTS HTTP/1.1\r\nX-Token: {TOKEN}", status: 404, answer: cmNotFound},
	{name: "method not on the route", api: "menus", request: "DELETE /v2/products HTTP/1.1\r\nX-Token: {TOKEN}", status: 404, answer: cmNotFound},
	{name: "lower-case method", api: "menus", request: "get /v2/products HTTP/1.1\r\nX-Token: {TOKEN}", status: 404, answer: cmNotFound},
	{name: "made-up method", api: "menus", request: "BREW /v2/products HTTP/1.1\r\nX-Token: {TOKEN}", status: 404, answer: cmNotFound},
	{name: "absolute-form target for another host", api: "menus", request: "GET http://evil.example/v2/nothing HTTP/1.1\r\nX-Token: {TOKEN}", status: 404, answer: cmNotFound},
	{name: "canskan: unknown path", api: "events", request: "GET /admin HTTP/1.1", status: 404, answer: cskNotFound},
	{name: "canskan: public route with a slash in its parameter", api: "events", request: "GET /p/a%2Fb HTTP/1.1", status: 404, answer: cskNotFound},
	{name: "forward-auth with two header families that differ", api: "events", request: "GET /_keygate/auth HTTP/1.1\r\nX-Forwarded-Uri: /p/x\r\nX-Original-URI: /api/v1/webhooks", status: 400, answer: `{"message": "Bad Request."}`},
	{name: "forward-auth without a forwarded URI", api: "events", request: "GET /_keygate/auth HTTP/1.1", status: 404, answer: cskNotFound},
	{name: "canskan: NUL byte in a public route's parameter", api: "events", request: "GET /p/abc%00 HTTP/1.1", status: 404, answer: cskNotFound},
	{name: "method override header naming another method", api: "menus", request: "POST /v2/upload HTTP/1.1\r\nX-Token: {TOKEN}\r\nX-HTTP-Method-Override: DELETE\r\nContent-Length: 0", status: 400, answer: `{"detail": "Bad Request"}`},
	{name: "_method query parameter naming another method", api: "menus", request: "POST /v2/upload?_method=DELETE HTTP/1.1\r\nX-Token: {TOKEN}\r\nContent-Length: 0", status: 400, answer: `{"detail": "Bad Request"}`},

	// Rules: scopes, plans, entitlements.
	{name: "cannmenus: token without the route's scope", api: "menus", request: "GET /v2/brands HTTP/1.1\r\nX-Token: {TOKEN}", status: 403, answer: cmScope},
	{name: "cannmenus: plan lacks the route", api: "menus", request: "GET /v2/analytics HTTP/1.1\r\nX-Token: {TOKEN_ALL}", status: 403, answer: `{"detail": "Your plan does not include this endpoint."}`},
	{name: "state outside the entitlements", api: "menus", request: "GET /v2/products?states=New%20York HTTP/1.1\r\nX-Token: {TOKEN}", status: 403, answer: `{"detail": "Your organization does not have access to state New York."}`},
	{name: "second value of a comma list outside", api: "menus", request: "GET /v2/products?states=Oregon,Texas HTTP/1.1\r\nX-Token: {TOKEN}", status: 403, answer: `{"detail": "Your organization does not have access to state Texas."}`},
	{name: "repeated parameter, second outside", api: "menus", request: "GET /v2/products?states=Oregon&states=Texas HTTP/1.1\r\nX-Token: {TOKEN}", status: 403, answer: `{"detail": "Your organization does not have access to state Texas."}`},
	{name: "parameter name in another case", api: "menus", request: "GET /v2/products?STATES=Texas HTTP/1.1\r\nX-Token: {TOKEN}", status: 403, answer: `{"detail": "Your organization does not have access to state Texas."}`},
	{name: "PHP array form states[]", api: "menus", request: "GET /v2/products?states%5B%5D=Texas HTTP/1.1\r\nX-Token: {TOKEN}", status: 403, answer: `{"detail": "Your organization does not have access to state Texas."}`},
	{name: "value with quotes and a backslash is JSON-escaped", api: "menus", request: "GET /v2/products?states=%22%5C HTTP/1.1\r\nX-Token: {TOKEN}", status: 403, answer: `{"detail": "Your organization does not have access to state \"\\."}`},
	{name: "value with HTML stays inert JSON", api: "menus", request: "GET /v2/products?states=%3Cscript%3E HTTP/1.1\r\nX-Token: {TOKEN}", status: 403, answer: `{"detail": "Your organization does not have access to state \u003cscript\u003e."}`},
	{name: "entitled value in another case", api: "menus", request: "GET /v2/products?states=oREGON HTTP/1.1\r\nX-Token: {TOKEN}", status: 200},
	{name: "semicolon-joined parameter is dropped, not forwarded", api: "menus", request: "GET /v2/products?x=1;states=Texas HTTP/1.1\r\nX-Token: {TOKEN}", status: 200},
	{name: "canskan: token without the route's scope", api: "events", request: "GET /api/v1/webhooks HTTP/1.1\r\nAuthorization: Bearer {EVENTS_TOKEN}", status: 403, answer: cskForbidden},

	// Limits.
	{name: "public route past its per-IP limit", api: "events", before: 2, request: "GET /p/limited HTTP/1.1", status: 429, answer: `{"message": "Too Many Attempts."}`},
	{name: "body over 10 MiB, by Content-Length", api: "menus", request: "POST /v2/upload HTTP/1.1\r\nX-Token: {TOKEN}\r\nContent-Type: text/plain\r\nContent-Length: 10485761", status: 413, answer: `{"detail": "Request Entity Too Large"}`},
	{name: "body over 10 MiB, chunked", api: "menus", request: "POST /v2/upload HTTP/1.1\r\nX-Token: {TOKEN}\r\nTransfer-Encoding: chunked", body: "{BIG_CHUNKED}", status: 413, answer: `{"detail": "Request Entity Too Large"}`},
	{name: "small body", api: "menus", request: "POST /v2/upload HTTP/1.1\r\nX-Token: {TOKEN}\r\nContent-Length: 1024", body: strings.Repeat("a", 1024), status: 200},
	{name: "headers over 64 KiB", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Big: " + strings.Repeat("a", 70<<10), status: 431},

	// Malformed HTTP: net/http refuses it before keygate sees it.
	{name: "header name with a space", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX Token: {TOKEN}", status: 400},
	{name: "header line without a colon", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Token", status: 400},
	{name: "Content-Length and Transfer-Encoding together: chunked wins, the length is dropped", api: "menus", request: "POST /v2/upload HTTP/1.1\r\nX-Token: {TOKEN}\r\nContent-Length: 3\r\nTransfer-Encoding: chunked", body: "0\r\n\r\n", status: 200},
	{name: "two different Content-Lengths", api: "menus", request: "POST /v2/upload HTTP/1.1\r\nX-Token: {TOKEN}\r\nContent-Length: 1\r\nContent-Length: 2", body: "ab", status: 400},
	{name: "negative Content-Length", api: "menus", request: "POST /v2/upload HTTP/1.1\r\nX-Token: {TOKEN}\r\nContent-Length: -1", status: 400},
	{name: "request line without a version", api: "menus", request: "GET /v2/products", status: 400},
	{name: "HTTP/1.1 without Host", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Token: {TOKEN}\r\nNoHost: 1", status: 400},
	{name: "unsupported HTTP version", api: "menus", request: "GET /v2/products HTTP/3.0\r\nX-Token: {TOKEN}", status: 505},
	{name: "NUL byte in a header value", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Token: {TOKEN}\r\nX-A: a\x00b", status: 400},

	// Headers the upstream must not take from a client (the upstream echoes
	// what it received; the test checks that none of it came through).
	{name: "client's X-Keygate-Org, with underscores", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Token: {TOKEN}\r\nX_Keygate_Org: org_evil", status: 200},
	{name: "client's X-Keygate-Identity", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Token: {TOKEN}\r\nX-Keygate-Identity: forged", status: 200},
	{name: "client's X-Real-IP and True-Client-IP", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Token: {TOKEN}\r\nX-Real-IP: 10.9.9.9\r\nTrue-Client-IP: 10.9.9.9", status: 200},
	{name: "client's CF-Connecting-IP and X-Client-IP", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Token: {TOKEN}\r\nCF-Connecting-IP: 10.9.9.9\r\nX_Client_IP: 10.9.9.9", status: 200},
	{name: "another token of the API in Authorization", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Token: {TOKEN}\r\nAuthorization: Bearer {TOKEN_ALL}", status: 200},
	{name: "token Basic-encoded in Proxy-Authorization", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Token: {TOKEN}\r\nProxy-Authorization: Basic {TOKEN_ALL_BASIC}", status: 200},
	{name: "X-Forwarded-For from an untrusted peer", api: "menus", request: "GET /v2/products HTTP/1.1\r\nX-Token: {TOKEN}\r\nX-Forwarded-For: 10.9.9.9", status: 200},

	// The upstream.
	{name: "upstream unreachable", api: "down", request: "GET /p/x HTTP/1.1", status: 502, answer: `{"message": "Bad Gateway."}`},

	// Invitation links on the admin listener: one answer for every link
	// that opens nothing, and nothing without the invitee's session.
	{name: "invitation link with a secret never issued", api: "admin", request: "GET /invitations/" + strings.Repeat("A", 43) + " HTTP/1.1", status: 404, contains: invitationNotValid},
	{name: "invitation link with a malformed secret", api: "admin", request: "GET /invitations/'%20OR%201=1-- HTTP/1.1", status: 404, contains: invitationNotValid},
	{name: "invitation link with an over-long secret", api: "admin", request: "GET /invitations/{INVITATION}A HTTP/1.1", status: 404, contains: invitationNotValid},
	{name: "invitation accepted without a session", api: "admin", request: "POST /invitations/{INVITATION}/accept HTTP/1.1\r\nContent-Length: 0", status: 303, location: "/login"},
	{name: "invitation account form without the login form's token", api: "admin", request: "POST /invitations/{INVITATION}/signup HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 53", body: "password=plum+orchard+42&password_confirm=plum+orchar", status: 403, contains: "This form expired. Please try again."},
	{name: "invitation accepted through the API without a session", api: "admin", request: "POST /api/v1/me/invitations/accept HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2", body: "{}", status: 401, contains: "Log in to the dashboard or send an admin key"},
	{name: "invitation account named with a line break", api: "admin", request: fmt.Sprintf("POST /invitations/{INVITATION}/signup HTTP/1.1\r\nCookie: keygate_login=f0rm\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d", len(badSignupName)), body: badSignupName, status: 400, contains: "Name must not hold control characters (line breaks, tabs, escapes) or marks that reorder text."},

	// Names people type are shown to others (emails, the CLI, pages):
	// no line breaks, escapes or text-reordering marks.
	{name: "token name with a line break, through the management API", api: "admin", request: fmt.Sprintf("POST /api/v1/orgs/acme/tokens HTTP/1.1\r\nAuthorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/json\r\nContent-Length: %d", len(badTokenName)), body: badTokenName, status: 400, contains: "Token name must not hold control characters (line breaks, tabs, escapes) or marks that reorder text."},
	{name: "token name with a terminal escape, through the management API", api: "admin", request: fmt.Sprintf("POST /api/v1/orgs/acme/tokens HTTP/1.1\r\nAuthorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/json\r\nContent-Length: %d", len(escapeTokenName)), body: escapeTokenName, status: 400, contains: "Token name must not hold control characters (line breaks, tabs, escapes) or marks that reorder text."},
	{name: "token name with a right-to-left override, through the management API", api: "admin", request: fmt.Sprintf("POST /api/v1/orgs/acme/tokens HTTP/1.1\r\nAuthorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/json\r\nContent-Length: %d", len(rtlTokenName)), body: rtlTokenName, status: 400, contains: "Token name must not hold control characters (line breaks, tabs, escapes) or marks that reorder text."},
}

const (
	badSignupName   = "csrf_token=f0rm&name=Ann%0D%0A%0D%0AYour+password+expired%3A+https%3A%2F%2Fevil.example%2F&password=plum+orchard+42&password_confirm=plum+orchard+42"
	badTokenName    = `{"name": "CI\r\n\r\nYour password expired: https://evil.example/", "api": "menus"}`
	escapeTokenName = `{"name": "CI\u001b]8;;https://evil.example/\u001b\\", "api": "menus"}`
	rtlTokenName    = `{"name": "report\u202excod.exe", "api": "menus"}`
)

const invitationNotValid = "This invitation is not valid: it may have been used, revoked or have expired."

type badInputServer struct {
	srv    *server.Server
	addr   map[string]string
	values map[string]string
	echo   *echoRecorder
}

// echoRecorder is the real upstream: it answers 200 with a fixed body and
// keeps the headers of the last request, for the header cases.
type echoRecorder struct {
	last chan http.Header
}

func (e *echoRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-e.last:
	default:
	}
	e.last <- r.Header.Clone()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"upstream": true}`)
}

func startBadInputServer(t *testing.T) *badInputServer {
	t.Helper()
	echo := &echoRecorder{last: make(chan http.Header, 1)}
	up := &http.Server{Handler: echo, ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = up.Serve(ln) }()
	t.Cleanup(func() { _ = up.Close() })
	upstream := "http://" + ln.Addr().String()
	b := &badInputServer{addr: map[string]string{"admin": freeAddr(t), "menus": freeAddr(t), "events": freeAddr(t), "down": freeAddr(t)}, echo: echo}
	b.srv = runServer(t, `
data_dir: `+t.TempDir()+`
admin: {listen: `+b.addr["admin"]+`}
apis:
  - name: menus
    preset: cannmenus
    listen: `+b.addr["menus"]+`
    upstream: `+upstream+`
    token_prefix: cm_
    max_active_tokens: 0
    scopes: [products:read, brands:read, analytics:read]
    rate_limits: {failed_auth: none}
    routes:
      - {methods: [GET], path: /v2/products, scopes: [products:read], entitlements: {states: states}}
      - {methods: [GET], path: /v2/brands, scopes: [brands:read]}
      - {methods: [GET], path: /v2/analytics, scopes: [analytics:read], plans: [pro]}
      - {methods: [POST], path: /v2/upload}
  - name: events
    preset: canskan
    listen: `+b.addr["events"]+`
    upstream: `+upstream+`
    token_prefix: ev_
    scopes: [attendees:read, webhooks:manage]
    rate_limits: {failed_auth: none, public: none, token: none}
    routes:
      - {methods: [GET], path: '/p/limited', access: public, rate_limit: {key: ip, limit: 2, period: 1m}}
      - {methods: [GET], path: '/p/{code}', access: public}
      - {methods: [GET], path: /api/v1/attendees, scopes: [attendees:read]}
      - {methods: [GET], path: /api/v1/webhooks, scopes: [webhooks:manage]}
  - name: down
    preset: canskan
    listen: `+b.addr["down"]+`
    upstream: http://`+closedAddr(t)+`
    token_prefix: down_
    routes:
      - {methods: [GET], path: '/p/{code}', access: public}
`, server.Options{Logger: quietLogger()})
	b.values = b.tokens(t)
	return b
}

// closedAddr is an address nothing listens on.
func closedAddr(t *testing.T) string {
	return freeAddr(t)
}

func (b *badInputServer) tokens(t *testing.T) map[string]string {
	t.Helper()
	ctx := context.Background()
	st := b.srv.Store()
	org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free", Entitlements: keygate.Entitlements{States: []string{"Oregon"}}}
	if err := manage.CreateOrganization(ctx, st, org, time.Now()); err != nil {
		t.Fatal(err)
	}
	apis := map[string]*keygate.API{}
	for _, a := range b.srv.APIs() {
		apis[a.Name] = a
	}
	create := func(api string, scopes []string, at time.Time, expiry keygate.ExpiryChoice) string {
		_, secret, err := manage.CreateToken(ctx, st, apis[api], org, keygate.TokenRequest{Name: "t", Scopes: scopes, Expiry: expiry}, at)
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	old := time.Now().Add(-8 * 24 * time.Hour)
	v := map[string]string{
		"{TOKEN}":          create("menus", []string{"products:read"}, time.Now(), keygate.Expiry90Days),
		"{TOKEN_ALL}":      create("menus", []string{"products:read", "brands:read", "analytics:read"}, time.Now(), keygate.Expiry90Days),
		"{EXPIRED}":        create("menus", []string{"products:read"}, old, keygate.Expiry7Days),
		"{EVENTS_TOKEN}":   create("events", []string{"attendees:read"}, time.Now(), keygate.Expiry90Days),
		"{EVENTS_EXPIRED}": create("events", []string{"attendees:read"}, old, keygate.Expiry7Days),
		"{CHECKSUM_OK}":    keygate.GenerateTokenSecret("cm_live_"),
	}
	tok := v["{TOKEN}"]
	flip := "A"
	if tok[20] == 'A' {
		flip = "B"
	}
	v["{TOKEN_CHANGED}"] = tok[:20] + flip + tok[21:]
	v["{TOKEN_ALL_BASIC}"] = base64.StdEncoding.EncodeToString([]byte(v["{TOKEN_ALL}"] + ":"))
	created, err := manage.Invitations{Store: st}.Invite(ctx, manage.Caller{}, org, manage.NewInvitation{Email: "new@acme.test", Role: keygate.RoleMember}, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	v["{INVITATION}"] = strings.TrimPrefix(created.Link, manage.InvitationPathPrefix)
	_, adminKey, err := manage.CreateAdminKey(ctx, st, "bad inputs", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	v["{ADMIN_KEY}"] = adminKey
	return v
}

// send writes the case's raw request on a new connection and reads the
// answer.
func (b *badInputServer) send(t *testing.T, c badInput) (int, string) {
	t.Helper()
	raw := c.request
	for k, v := range b.values {
		raw = strings.ReplaceAll(raw, k, v)
	}
	line, rest, _ := strings.Cut(raw, "\r\n")
	var req strings.Builder
	req.WriteString(line + "\r\n")
	if !strings.Contains(raw, "NoHost:") {
		req.WriteString("Host: " + b.addr[c.api] + "\r\n")
	}
	if rest != "" {
		req.WriteString(rest + "\r\n")
	}
	req.WriteString("Connection: close\r\n\r\n")
	if c.body == "{BIG_CHUNKED}" {
		chunk := strings.Repeat("a", 1<<20)
		for i := 0; i < 11; i++ {
			fmt.Fprintf(&req, "%x\r\n%s\r\n", len(chunk), chunk)
		}
		req.WriteString("0\r\n\r\n")
	} else {
		req.WriteString(c.body)
	}
	conn, err := net.DialTimeout("tcp", b.addr[c.api], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	go func() { _, _ = io.WriteString(conn, req.String()) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s: reading the answer: %v", c.name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if c.location != "" {
		return resp.StatusCode, "Location: " + resp.Header.Get("Location")
	}
	return resp.StatusCode, string(body)
}

func TestBadInputsGetTheirDefinedAnswers(t *testing.T) {
	b := startBadInputServer(t)
	names := map[string]bool{}
	for _, c := range badInputs {
		if names[c.name] {
			t.Fatalf("case %q is listed twice", c.name)
		}
		names[c.name] = true
		for i := 0; i < c.before; i++ {
			b.send(t, c)
		}
		status, body := b.send(t, c)
		if status != c.status || c.answer != "" && body != c.answer || !strings.Contains(body, c.contains) ||
			c.location != "" && body != "Location: "+c.location {
			t.Errorf("%s: got %d %s, want %d %s", c.name, status, body, c.status, c.answer)
			continue
		}
		if status == 200 && c.api != "down" && !strings.Contains(c.request, "/_keygate/auth") {
			if body != `{"upstream": true}` {
				t.Errorf("%s: 200 that is not the upstream's: %s", c.name, body)
			}
			b.checkUpstreamHeaders(t, c)
		}
	}
}

// checkUpstreamHeaders asserts that nothing a client may not choose
// reached the upstream on a forwarded case.
func (b *badInputServer) checkUpstreamHeaders(t *testing.T, c badInput) {
	t.Helper()
	var h http.Header
	select {
	case h = <-b.echo.last:
	case <-time.After(5 * time.Second):
		t.Errorf("%s: the upstream saw no request", c.name)
		return
	}
	for name, values := range h {
		folded := strings.ReplaceAll(strings.ToLower(name), "_", "-")
		for _, v := range values {
			for k, secret := range b.values {
				if k != "{CHECKSUM_OK}" && strings.Contains(v, secret) {
					t.Errorf("%s: the upstream saw %s in %s", c.name, k, name)
				}
			}
		}
		switch {
		case folded == "x-token" || folded == "true-client-ip" || folded == "cf-connecting-ip" || folded == "x-client-ip":
			t.Errorf("%s: the upstream saw %s: %q", c.name, name, values)
		case folded == "x-real-ip" && (len(values) != 1 || values[0] != "127.0.0.1"):
			t.Errorf("%s: the upstream saw %s: %q", c.name, name, values)
		case folded == "x-forwarded-for" && (len(values) != 1 || values[0] != "127.0.0.1"):
			t.Errorf("%s: the upstream saw %s: %q", c.name, name, values)
		case strings.HasPrefix(folded, "x-keygate-") && !strings.HasPrefix(name, "X-Keygate-"):
			t.Errorf("%s: the upstream saw %s: %q", c.name, name, values)
		}
	}
	if org := h.Get(keygate.HeaderOrganization); org == "org_evil" || h.Get(keygate.HeaderIdentity) == "forged" {
		t.Errorf("%s: the upstream saw the client's identity headers", c.name)
	}
}

// TestSecurityDocListsEveryBadInput keeps docs/security.md's table of bad
// inputs the same as badInputs: the table is generated from them, and
// KEYGATE_UPDATE_DOCS=1 rewrites it.
func TestSecurityDocListsEveryBadInput(t *testing.T) {
	const begin, end = "<!-- bad inputs: generated from server/badinput_test.go -->\n", "<!-- end of bad inputs -->\n"
	path := "../docs/security.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok1 := strings.Cut(string(doc), begin)
	_, after, ok2 := strings.Cut(rest, end)
	if !ok1 || !ok2 {
		t.Fatalf("%s has no bad inputs table between %q and %q", path, begin, end)
	}
	want := badInputTable()
	if before+begin+want+end+after == string(doc) {
		return
	}
	if os.Getenv("KEYGATE_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(path, []byte(before+begin+want+end+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s: the bad inputs table differs from server/badinput_test.go; run KEYGATE_UPDATE_DOCS=1 go test -run TestSecurityDocListsEveryBadInput ./server", path)
}

func badInputTable() string {
	var b strings.Builder
	b.WriteString("| # | bad input | preset | answer | test |\n|---|---|---|---|---|\n")
	presets := map[string]string{"menus": "cannmenus", "events": "canskan", "down": "canskan", "admin": "admin listener"}
	for i, c := range badInputs {
		answer := fmt.Sprintf("%d", c.status)
		switch {
		case c.answer != "":
			answer += " `" + c.answer + "`"
		case c.contains != "":
			answer += " with “" + c.contains + "”"
		case c.location != "":
			answer += " to `" + c.location + "`"
		case c.status == 200:
			answer += " forwarded; the upstream sees no token, no client identity or address header"
		default:
			answer += " (net/http, before keygate)"
		}
		if c.before > 0 {
			answer += fmt.Sprintf(" (after %d allowed)", c.before)
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | `TestBadInputsGetTheirDefinedAnswers` |\n", i+1, strings.ReplaceAll(c.name, "|", "\\|"), presets[c.api], strings.ReplaceAll(answer, "|", "\\|"))
	}
	return b.String()
}
