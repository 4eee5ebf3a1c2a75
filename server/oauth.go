package server

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/oauth"
	"github.com/keygate/keygate/ratelimit"
)

// newOAuth builds the authorization server and mounts each API's MCP
// endpoint on its gateway.
func (s *Server) newOAuth() error {
	o := s.cfg.OAuth
	var err error
	s.oauth, err = oauth.New(oauth.Config{
		Store: s.store, Sessions: s.sessions, Issuer: s.cfg.Admin.PublicURL, Logger: s.logger,
		Clients: o.Clients, AllowPrivateCIMD: o.AllowPrivateCIMD, CIMDRootCAs: s.oauthRoots, DisableRegistration: !o.AllowDynamicRegistration,
		LoginURL: o.LoginURL, Logins: s.logins, ClientIP: s.clientAddr,
		AccessTokenTTL: o.AccessTokenTTL, RefreshTokenTTL: o.RefreshTokenTTL, StoreTimeout: s.cfg.Cache.StoreTimeout,
	})
	if err != nil {
		return fmt.Errorf("oauth: %w", err)
	}
	for _, api := range s.apis {
		if api.MCP == nil {
			continue
		}
		upstream, err := url.Parse(api.MCP.Upstream)
		if err != nil {
			return fmt.Errorf("api %s: mcp.upstream: %w", api.Name, err)
		}
		g := s.gateways[api.Name]
		var apiToken func(http.Header, *http.Request) (*keygate.Identity, error)
		if api.MCP.AllowAPITokens {
			apiToken = g.AuthenticateToken
		}
		guard := s.oauth.ProtectMCP(api, api.PublicURL+api.MCP.Path, g.ForwardAs(upstream), apiToken, g)
		g.Mount(api.MCP.Path, guard)
		g.Mount(api.MCP.Path+"/", guard)
		g.Mount("/.well-known/oauth-protected-resource", guard)
		g.Mount("/.well-known/oauth-protected-resource"+api.MCP.Path, guard)
	}
	return nil
}

// OAuth endpoints anyone may call, by method and path, limited per client
// address so they cannot be used to fill the store (registration), to
// guess codes and refresh tokens (token), or to make keygate fetch client
// metadata documents from URLs of the caller's choosing: every endpoint
// that reads a client_id fetches the document of a new URL (authorize,
// the consent form, token, revocation), so each is limited, each in a
// bucket of its own.
var oauthLimits = map[string]keygate.RateLimit{
	"POST " + oauth.PathRegister:  {Key: keygate.LimitByIP, Limit: 20, Period: time.Hour},
	"POST " + oauth.PathToken:     {Key: keygate.LimitByIP, Limit: 120, Period: time.Minute},
	"POST " + oauth.PathRevoke:    {Key: keygate.LimitByIP, Limit: 120, Period: time.Minute},
	"GET " + oauth.PathAuthorize:  {Key: keygate.LimitByIP, Limit: 30, Period: time.Minute},
	"POST " + oauth.PathAuthorize: {Key: keygate.LimitByIP, Limit: 30, Period: time.Minute},
}

// mountOAuth serves the authorization server on the admin listener.
func (s *Server) mountOAuth(mux *http.ServeMux) {
	h := s.oauth.Handler()
	for _, p := range []string{"/oauth/", "/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server/",
		"/.well-known/openid-configuration", "/.well-known/openid-configuration/"} {
		mux.Handle(p, h)
	}
	// Limited in memory while the shared limiter fails (Redis down, in the
	// closed mode): see ratelimit.Backstop.
	limiter := ratelimit.NewBackstop(s.limiter.Limiter(), s.limiter.Memory(), ratelimit.BackstopOptions{What: "OAuth endpoints", Logger: s.logger})
	for route, limit := range oauthLimits {
		mux.Handle(route, s.limitByIP(limiter, route, limit, h))
	}
}

// limitByIP applies limit per client address to next, counted by
// limiter, answering 429 with the rate limit headers, Retry-After and an
// OAuth-style JSON error. name is the route ("POST /oauth/token"), so each
// route counts in its own bucket.
func (s *Server) limitByIP(limiter ratelimit.Limiter, name string, limit keygate.RateLimit, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, err := limiter.Allow(r.Context(), "admin:"+name+":ip:"+s.clientIP.Bucket(s.clientIP.ClientIP(r)), limit.Limit, limit.Period)
		if err != nil && r.Context().Err() != nil {
			// The client went away while the limiter was asked: nobody
			// reads an answer, and nothing failed that an operator must see.
			s.logger.DebugContext(r.Context(), "client went away while an OAuth endpoint's rate limit was checked", "route", name, "error", err)
			return
		}
		if err != nil {
			// Neither the shared limiter nor this process's answered: the
			// limit is not one a limiter takes.
			s.logger.WarnContext(r.Context(), "rate limiter failed for an OAuth endpoint", "route", name, "error", err)
			writeJSON(w, http.StatusServiceUnavailable, `{"error":"temporarily_unavailable","error_description":"Rate limiting is unavailable; retry later."}`)
			return
		}
		if res.SetHeaders(w.Header()); !res.Allowed {
			writeJSON(w, http.StatusTooManyRequests, `{"error":"too_many_requests","error_description":"Too many requests from this address; retry later."}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeJSON answers status with body, a JSON document.
func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
