package server

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/oauth"
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
		AccessTokenTTL: o.AccessTokenTTL, RefreshTokenTTL: o.RefreshTokenTTL,
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
		var apiToken func(*http.Request) (*keygate.Identity, error)
		if api.MCP.AllowAPITokens {
			apiToken = g.AuthenticateToken
		}
		guard := s.oauth.ProtectMCP(api, api.PublicURL+api.MCP.Path, g.ForwardAs(upstream), apiToken)
		g.Mount(api.MCP.Path, guard)
		g.Mount(api.MCP.Path+"/", guard)
		g.Mount("/.well-known/oauth-protected-resource", guard)
		g.Mount("/.well-known/oauth-protected-resource"+api.MCP.Path, guard)
	}
	return nil
}

// mountOAuth serves the authorization server on the admin listener.
func (s *Server) mountOAuth(mux *http.ServeMux) {
	h := s.oauth.Handler()
	for _, p := range []string{"/oauth/", "/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server/",
		"/.well-known/openid-configuration", "/.well-known/openid-configuration/"} {
		mux.Handle(p, h)
	}
}
