package gateway_test

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/internal/logtest"
)

// Whatever a client does with a token (sends it right, wrong, twice, in
// the query, in the path, in forwarded headers) and however the upstream
// fails, the debug log of the gateway holds no token, nor its secret part.
func TestNoTokenInTheLogsWhateverTheClientSends(t *testing.T) {
	f := newFixture(t)
	_, secret := f.token(f.events, []string{"attendees:read"}, keygate.Expiry90Days, f.now)
	_, menus := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	logs := &logtest.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	// One gateway whose upstream is up, one whose upstream refuses
	// connections, one whose upstream is too slow.
	down, _ := net.Listen("tcp", "127.0.0.1:0")
	downURL := "http://" + down.Addr().String()
	down.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(300 * time.Millisecond) }))
	defer slow.Close()
	var addrs []string
	for _, upstream := range []string{f.upstream.URL, downURL, slow.URL} {
		api := eventsAPI(upstream)
		api.PublicRateLimit, api.TokenRateLimit, api.FailedAuthRateLimit = nil, nil, nil
		gw, err := gateway.New(gateway.Config{API: api, Tokens: f.tokens, Signer: f.signer, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		gateway.SetUpstreamTimeouts(gw, 100*time.Millisecond, time.Second)
		addrs = append(addrs, newRawServer(t, gw))
	}
	changed := secret[:len(secret)-3] + "zzz"
	requests := []string{
		"GET /api/v1/attendees HTTP/1.1\r\nAuthorization: Bearer " + secret,
		"GET /api/v1/attendees HTTP/1.1\r\nAuthorization: Bearer " + changed,
		"GET /api/v1/attendees HTTP/1.1\r\nAuthorization: Bearer " + secret + "\r\nAuthorization: Bearer " + secret,
		"GET /api/v1/attendees HTTP/1.1\r\nAuthorization: bearer   " + secret + "  \r\nX-Token: " + secret,
		"GET /api/v1/attendees?token=" + secret + " HTTP/1.1\r\nAuthorization: Bearer " + secret,
		"GET /api/v1/attendees?access_token=" + secret + " HTTP/1.1",
		"GET /p/" + secret + " HTTP/1.1",
		"GET /p/" + secret + "?t=" + menus + " HTTP/1.1\r\nCookie: t=" + secret,
		"GET /" + secret + " HTTP/1.1",
		"GET /api/v1/attendees HTTP/1.1\r\nAuthorization: Bearer " + strings.Repeat(secret, 40),
		"GET /api/v1/attendees HTTP/1.1\r\nAuthorization: Bearer " + menus,
		"GET /_keygate/auth HTTP/1.1\r\nX-Forwarded-Uri: /p/" + secret + "\r\nAuthorization: Bearer " + secret,
		"GET /_keygate/auth HTTP/1.1\r\nX-Forwarded-Uri: /api/v1/webhooks?x=" + secret + "\r\nAuthorization: Bearer " + secret,
		"GET /_keygate/auth HTTP/1.1\r\nX-Original-URI: /p/" + secret + "\r\nX-Forwarded-Uri: /p/x",
	}
	for _, addr := range addrs {
		for _, req := range requests {
			rawExchange(t, addr, req+"\r\nHost: api.example\r\nConnection: close\r\n\r\n")
		}
	}
	out := logs.String()
	if !strings.Contains(out, "upstream") {
		t.Fatalf("the upstream failures were not logged; the test does not test:\n%s", out)
	}
	for _, tok := range []string{secret, menus, changed} {
		random := tok[strings.LastIndexByte(tok, '_')+1:]
		if strings.Contains(out, random[:20]) {
			t.Errorf("a token is in the log:\n%s", out)
			break
		}
	}
}

func TestLoggedPathHidesTokenSecrets(t *testing.T) {
	secret := "csk_live_" + strings.Repeat("a1B", 12)
	for p, want := range map[string]string{
		"/p/abc":                            "/p/abc",
		"/p/" + secret:                      "/p/csk_live_[redacted]",
		"/" + secret + "/x/" + secret + "x": "/csk_live_[redacted]/x/csk_live_[redacted]",
		"/orders/0123456789abcdef0123456789abcde": "/orders/0123456789abcdef0123456789abcde", // 35: kept
		"/u/" + strings.Repeat("a", 36):           "/u/[redacted]",
	} {
		if got := gateway.LoggedPath(p); got != want {
			t.Errorf("LoggedPath(%q) = %q, want %q", p, got, want)
		}
	}
}
