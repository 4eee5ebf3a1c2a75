package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/keygate/keygate"
)

// Defaults of the OAuth and MCP settings.
const (
	DefaultMCPPath         = "/mcp"
	DefaultAccessTokenTTL  = time.Hour
	DefaultRefreshTokenTTL = 30 * 24 * time.Hour
)

// OAuth configures keygate's OAuth 2.1 authorization server for MCP
// clients.
type OAuth struct {
	// Clients are registered by the administrator.
	Clients []*keygate.OAuthClient
	// AllowDynamicRegistration enables RFC 7591 registration.
	AllowDynamicRegistration bool
	// AllowPrivateCIMD lets Client ID Metadata Documents be fetched from
	// loopback and private addresses.
	AllowPrivateCIMD bool
	// LoginURL sends users without a session to another login page.
	LoginURL        string
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
}

// mcp checks an API's mcp block; nil when the API has none.
func (c *checker) mcp(path string, f *fileMCP, apiScopes []string) *keygate.MCPEndpoint {
	if f == nil {
		return nil
	}
	m := &keygate.MCPEndpoint{Path: DefaultMCPPath, Upstream: f.Upstream, Scopes: c.words(path+".scopes", f.Scopes), AllowAPITokens: true}
	if f.Path != "" {
		if !strings.HasPrefix(f.Path, "/") || strings.ContainsAny(f.Path, "?#{} ") || strings.HasSuffix(f.Path, "/") {
			c.fail(path+".path", `must be a path such as "/mcp" (no trailing "/", query or pattern), got %q`, f.Path)
		}
		m.Path = f.Path
	}
	if f.Upstream == "" {
		c.fail(path+".upstream", `is required: the MCP server's URL, e.g. "http://127.0.0.1:9090/mcp"`)
	} else if reason := httpURLProblem(f.Upstream); reason != "" {
		c.fail(path+".upstream", "%s, got %q", reason, f.Upstream)
	}
	for i, s := range m.Scopes {
		if len(apiScopes) > 0 && !keygate.HasAll(apiScopes, []string{s}) {
			c.fail(fmt.Sprintf("%s.scopes[%d]", path, i), "%q is not one of the API's scopes", s)
		}
	}
	if f.AllowAPITokens != nil {
		m.AllowAPITokens = *f.AllowAPITokens
	}
	return m
}

// apiPublicURL is how clients reach an API: the MCP resource URL is built
// from it. Default: http://<listen>, or http://<host> when a host is set.
func (c *checker) apiPublicURL(path string, f *fileAPI, listen, host string) string {
	if f.PublicURL != "" {
		if reason := httpURLProblem(f.PublicURL); reason != "" {
			c.fail(path+".public_url", `%s such as "https://api.example.com", got %q`, reason, f.PublicURL)
		}
		return strings.TrimRight(f.PublicURL, "/")
	}
	if host != "" {
		return "http://" + host
	}
	return PublicURLFor(listen)
}

func (c *checker) oauth(f fileOAuth) OAuth {
	o := OAuth{
		AllowDynamicRegistration: true,
		AllowPrivateCIMD:         f.AllowPrivateCIMD,
		AccessTokenTTL:           c.duration("oauth.access_token_ttl", f.AccessTokenTTL, DefaultAccessTokenTTL, false),
		RefreshTokenTTL:          c.duration("oauth.refresh_token_ttl", f.RefreshTokenTTL, DefaultRefreshTokenTTL, false),
	}
	if f.AllowDynamicRegistration != nil {
		o.AllowDynamicRegistration = *f.AllowDynamicRegistration
	}
	if f.LoginURL != "" {
		if reason := httpURLProblem(f.LoginURL); reason != "" {
			c.fail("oauth.login_url", "%s, got %q", reason, f.LoginURL)
		}
		o.LoginURL = f.LoginURL
	}
	ids := map[string]bool{}
	for i, fc := range f.Clients {
		path := fmt.Sprintf("oauth.clients[%d]", i)
		client := c.oauthClient(path, fc)
		if ids[client.ID] {
			c.fail(path+".id", "%q is listed twice", client.ID)
		}
		ids[client.ID] = true
		o.Clients = append(o.Clients, client)
	}
	return o
}

func (c *checker) oauthClient(path string, f fileOAuthClient) *keygate.OAuthClient {
	client := &keygate.OAuthClient{
		ID: f.ID, Name: f.Name, RedirectURIs: f.RedirectURIs, GrantTypes: f.GrantTypes,
		TokenEndpointAuthMethod: keygate.OAuthAuthNone, Source: keygate.OAuthClientConfig,
	}
	if f.ID == "" || strings.ContainsAny(f.ID, " \t") {
		c.fail(path+".id", "is required: one word naming the client, got %q", f.ID)
	}
	if client.Name == "" {
		client.Name = f.ID
	}
	if len(f.RedirectURIs) == 0 {
		c.fail(path+".redirect_uris", "needs at least one redirect URI")
	}
	for i, g := range f.GrantTypes {
		if g != keygate.OAuthGrantAuthorizationCode && g != keygate.OAuthGrantRefreshToken {
			c.fail(fmt.Sprintf("%s.grant_types[%d]", path, i), `must be "authorization_code" or "refresh_token", got %q`, g)
		}
	}
	if f.Secret != "" {
		if len(f.Secret) < 32 {
			c.fail(path+".secret", "must be at least 32 characters")
		}
		client.SecretHash = keygate.HashToken(f.Secret)
		client.TokenEndpointAuthMethod = keygate.OAuthAuthSecretBasic
	}
	switch m := f.TokenEndpointAuthMethod; {
	case m == "":
	case f.Secret == "" && m != keygate.OAuthAuthNone:
		c.fail(path+".token_endpoint_auth_method", "%q needs a secret; a client without one uses %q", m, keygate.OAuthAuthNone)
	case f.Secret != "" && m != keygate.OAuthAuthSecretBasic && m != keygate.OAuthAuthSecretPost:
		c.fail(path+".token_endpoint_auth_method", "must be %q or %q for a client with a secret, got %q",
			keygate.OAuthAuthSecretBasic, keygate.OAuthAuthSecretPost, m)
	default:
		client.TokenEndpointAuthMethod = m
	}
	return client
}
