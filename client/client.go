// Package client lets a Go service check API tokens through a running
// keygate's verify API (POST /api/v1/verify) instead of putting keygate in
// front of it. Answers are cached for a short time so a busy token costs
// one call per TTL; the cache key is the token's SHA-256 with the method and
// path, never the token itself. Middleware answers refusals with the exact
// status and body of the API's preset.
//
// The cache trades precision for latency: within the TTL a revoked token
// may still pass. An answer on a rate-limited route is never cached: each
// request there must be counted, or a client would get as many requests
// as it could send in a TTL for one counted. Use a negative TTL to ask
// keygate on every request.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate"
)

// Client calls one keygate's verify API.
type Client struct {
	baseURL  string
	adminKey string
	http     *http.Client
	ttl      time.Duration
	max      int // cached answers at most
	now      func() time.Time

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	resp    *keygate.VerifyResponse
	expires time.Time
}

// Options tune a Client; zero values take the defaults.
type Options struct {
	HTTPClient *http.Client  // default: 5s timeout
	CacheTTL   time.Duration // default 5s; negative disables the cache
	MaxEntries int           // default 10000
}

// New returns a Client for the keygate admin listener at baseURL
// (e.g. "http://127.0.0.1:8090") using an admin key.
func New(baseURL, adminKey string, opts Options) *Client {
	c := &Client{baseURL: strings.TrimRight(baseURL, "/"), adminKey: adminKey, http: opts.HTTPClient, ttl: opts.CacheTTL, now: time.Now, cache: map[string]cached{}}
	if c.http == nil {
		c.http = &http.Client{Timeout: 5 * time.Second}
	}
	if c.ttl == 0 {
		c.ttl = 5 * time.Second
	}
	if c.max = opts.MaxEntries; c.max <= 0 {
		c.max = 10000
	}
	return c
}

// Request is what to verify.
type Request struct {
	API    string
	Token  string // "" when the request carried none
	Method string
	Path   string // path and query
	IP     string // the end client's address
	// MethodOverride: the request's method override header values
	// (keygate.MethodOverrides); keygate refuses one naming another
	// method, which a framework behind the middleware would serve.
	MethodOverride []string
}

// Verify asks keygate whether req may pass. A transport or keygate failure
// is an error; a refusal is a response with Valid false.
func (c *Client) Verify(ctx context.Context, req Request) (*keygate.VerifyResponse, error) {
	// Everything keygate judges is in the key: a pass without an
	// override must not answer a request with one.
	key := keygate.HashToken(req.Token) + "\x00" + req.API + "\x00" + req.Method + "\x00" + req.Path + "\x00" + strings.Join(req.MethodOverride, "\x00")
	if resp := c.lookup(key); resp != nil {
		return resp, nil
	}
	body, _ := json.Marshal(keygate.VerifyRequest{API: req.API, Token: req.Token, Method: req.Method, Path: req.Path, IP: req.IP, MethodOverride: req.MethodOverride})
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.baseURL+"/api/v1/verify", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Authorization", "Bearer "+c.adminKey)
	hreq.Header.Set("Content-Type", "application/json")
	hresp, err := c.http.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("keygate verify: %w", err)
	}
	defer hresp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(hresp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("keygate verify: %w", err)
	}
	if hresp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("keygate verify: HTTP %d: %s", hresp.StatusCode, bytes.TrimSpace(raw))
	}
	var resp keygate.VerifyResponse
	if err := json.Unmarshal(raw, &resp); err != nil {
		return nil, fmt.Errorf("keygate verify: bad answer: %w", err)
	}
	c.store(key, &resp)
	return &resp, nil
}

func (c *Client) lookup(key string) *keygate.VerifyResponse {
	if c.ttl < 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.cache[key]
	if !ok || !c.now().Before(e.expires) {
		return nil
	}
	return e.resp
}

func (c *Client) store(key string, resp *keygate.VerifyResponse) {
	if c.ttl < 0 || resp.Code == keygate.ERATELIMITED || resp.RateLimit != nil {
		return // a limited route's requests are each counted by keygate
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cache) >= c.max {
		// Drop a random tenth (map order), so a full cache is not
		// emptied on every store.
		for k := range c.cache {
			delete(c.cache, k)
			if len(c.cache) < c.max*9/10 {
				break
			}
		}
	}
	c.cache[key] = cached{resp: resp, expires: c.now().Add(c.ttl)}
}

// Middleware guards next with keygate: the token is read from the preset's
// header, refusals get the preset's exact status and body, and passing
// requests reach next with the identity in their context.
func (c *Client) Middleware(api string, preset *keygate.Preset) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			resp, err := c.Verify(r.Context(), Request{
				API: api, Token: tokenOf(r, preset), Method: r.Method, Path: r.URL.RequestURI(), IP: hostOf(r.RemoteAddr),
				MethodOverride: keygate.MethodOverrides(r.Header),
			})
			if err != nil {
				status, body := preset.Render(keygate.Errorf(keygate.EUNAVAILABLE, "keygate unreachable"))
				writeJSON(w, status, body)
				return
			}
			if rl := resp.RateLimit; rl != nil {
				setRateLimitHeaders(w.Header(), rl)
			}
			if !resp.Valid {
				writeJSON(w, resp.Status, []byte(resp.Body))
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, resp.Identity)))
		})
	}
}

type identityKey struct{}

// IdentityFrom returns the identity Middleware verified, or nil.
func IdentityFrom(ctx context.Context) *keygate.Identity {
	id, _ := ctx.Value(identityKey{}).(*keygate.Identity)
	return id
}

func tokenOf(r *http.Request, p *keygate.Preset) string {
	v := strings.TrimSpace(r.Header.Get(p.TokenHeader))
	if p.TokenScheme != "" {
		scheme, rest, _ := strings.Cut(v, " ")
		if !strings.EqualFold(scheme, p.TokenScheme) {
			return ""
		}
		v = strings.TrimSpace(rest)
	}
	return v
}

func hostOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		return strings.Trim(addr[:i], "[]")
	}
	return addr
}

func setRateLimitHeaders(h http.Header, rl *keygate.VerifyRateLimit) {
	h["X-RateLimit-Limit"] = []string{fmt.Sprint(rl.Limit)}
	h["X-RateLimit-Remaining"] = []string{fmt.Sprint(rl.Remaining)}
	h["X-RateLimit-Reset"] = []string{fmt.Sprint(rl.Reset)}
	if rl.RetryAfter > 0 {
		h.Set("Retry-After", fmt.Sprint(rl.RetryAfter))
	}
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
