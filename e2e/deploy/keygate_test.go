package deploy_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/internal/testenv"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/server"
)

// Bodies the presets must deliver through every proxy, byte for byte.
const (
	cannmenusNotFound    = `{"detail": "Not Found"}`
	cannmenusNoState     = `{"detail": "Your organization does not have access to state New York."}`
	canskanRequired      = `{"message": "API token required."}`
	canskanInvalid       = `{"message": "Invalid API token."}`
	canskanExpired       = `{"message": "API token has expired."}`
	canskanTooMany       = `{"message": "Too Many Attempts."}`
	canskanNotFound      = `{"message": "Not Found."}`
	cannmenusBadRequest  = `{"detail": "Bad Request"}`
	publicLimitPerMinute = 10
)

// stack is a running keygate with one organization and a token per API,
// guarding two APIs that point at an echo upstream.
type stack struct {
	srv      *server.Server
	admin    string // keygate's admin listener, host:port
	upstream string // the echo upstream, host:port
	org      *keygate.Organization
	menus    string // a cannmenus token's secret
	menusID  string
	events   string // a canskan token's secret
	expired  string // an expired canskan token's secret
}

// echoed is what the echo upstream saw.
type echoed struct {
	Method string      `json:"method"`
	URI    string      `json:"uri"`
	Header http.Header `json:"header"`
}

func startKeygate(t *testing.T) *stack {
	t.Helper()
	t.Setenv(config.DatabaseURLEnv, "")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echoed{Method: r.Method, URI: r.RequestURI, Header: r.Header})
	}))
	t.Cleanup(up.Close)
	dir := t.TempDir()
	yaml := `data_dir: ` + quote(dir) + `
admin:
  listen: 127.0.0.1:0
trusted_proxies: [127.0.0.1/32, "::1/128"]
log:
  level: warn
apis:
  - name: cannmenus
    preset: cannmenus
    listen: 127.0.0.1:0
    upstream: ` + up.URL + `
    token_prefix: cm_
    scopes: [products:read]
    routes:
      - methods: [GET]
        path: /v2/products
        access: token
        scopes: [products:read]
        entitlements: {states: states}
  - name: canskan
    preset: canskan
    listen: 127.0.0.1:0
    upstream: ` + up.URL + `
    token_prefix: csk_
    scopes: [organization:read]
    rate_limits:
      public: {key: ip, limit: 10, period: 1m}
      token: {key: token, limit: 60, period: 1m}
    routes:
      - methods: [GET]
        path: /p/{code}
        access: public
      - methods: [GET]
        path: /api/v1/organization
        access: token
        scopes: [organization:read]
`
	path := filepath.Join(dir, "keygate.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := server.New(context.Background(), cfg, server.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	s := &stack{srv: srv, admin: srv.Addr("admin"), upstream: strings.TrimPrefix(up.URL, "http://")}
	s.org = &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free", Entitlements: keygate.Entitlements{States: []string{"California"}}}
	if err := srv.Store().CreateOrganization(context.Background(), s.org); err != nil {
		t.Fatal(err)
	}
	var tok *keygate.Token
	tok, s.menus = s.token(t, "cannmenus", time.Now())
	s.menusID = tok.ID
	_, s.events = s.token(t, "canskan", time.Now())
	_, s.expired = s.token(t, "canskan", time.Now().Add(-100*24*time.Hour))
	return s
}

// token creates a token on api, as the dashboard does, at now with the
// default 90-day expiry (so a now far enough back makes it expired).
func (s *stack) token(t *testing.T, api string, now time.Time) (*keygate.Token, string) {
	t.Helper()
	tok, secret, err := manage.CreateToken(context.Background(), s.srv.Store(), s.srv.Gateway(api).API(), s.org,
		keygate.TokenRequest{Name: "deploy test", CreatedBy: "usr_test"}, now)
	if err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	return tok, secret
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// program finds a program the test needs: env (when set) names it,
// else PATH. Missing, the test is skipped, or failed under CI.
func program(t *testing.T, name, env string) string {
	t.Helper()
	if env != "" {
		if p := os.Getenv(env); p != "" {
			return p
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		testenv.Missing(t, name+" not found (set "+env+" or install it)")
	}
	return p
}

// freePort returns a loopback port free right now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// waitListening waits until something accepts on addr.
func waitListening(t *testing.T, addr string, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("exited before listening on %s: %v", addr, err)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listening on %s", addr)
}

// response is what a client got.
type response struct {
	status int
	header http.Header
	body   string
}

func send(t *testing.T, method, url string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, string(body)}
}

// expectRefusal checks status, exact body and JSON content type.
func expectRefusal(t *testing.T, name string, got response, status int, body string) {
	t.Helper()
	if got.status != status || got.body != body {
		t.Errorf("%s: got %d %q, want %d %q", name, got.status, got.body, status, body)
		return
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", name, ct)
	}
}

// upstreamSaw decodes the echo upstream's answer, failing unless the
// request passed.
func upstreamSaw(t *testing.T, name string, got response) echoed {
	t.Helper()
	if got.status != 200 {
		t.Fatalf("%s: got %d %q, want the upstream's 200", name, got.status, got.body)
	}
	var e echoed
	if err := json.Unmarshal([]byte(got.body), &e); err != nil {
		t.Fatalf("%s: upstream answer %q: %v", name, got.body, err)
	}
	return e
}
