package oauth

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/keygate/keygate"
)

// findClient resolves a client_id: a pre-registered client, a Client ID
// Metadata Document when the id is an HTTPS URL, or a registered client.
// The error is a *keygate.Error whose message may be shown to the user
// (ENOTFOUND, EINVALID) or an internal failure.
func (s *Server) findClient(ctx context.Context, id string) (*keygate.OAuthClient, error) {
	if id == "" {
		return nil, keygate.Errorf(keygate.EINVALID, "The client_id parameter is missing.")
	}
	if c, ok := s.clients[id]; ok {
		return c, nil
	}
	if isMetadataClientID(id) {
		return s.cimd.client(ctx, id)
	}
	c, err := s.store.FindOAuthClient(ctx, id)
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return nil, keygate.Errorf(keygate.ENOTFOUND, "The application's client_id is not known to keygate.")
	}
	return c, err
}

// clientName is how pages and listings name a client.
func clientName(c *keygate.OAuthClient) string {
	if c.Name != "" {
		return c.Name
	}
	if c.Source == keygate.OAuthClientMetadata {
		if u, err := url.Parse(c.ID); err == nil {
			return u.Host
		}
	}
	return "Unnamed application (" + c.ID + ")"
}

// authenticateClient checks the client's credentials at the token and
// revocation endpoints, sent the way used names (an OAuthAuth constant). A
// client authenticates exactly as it registered (RFC 7591 §2,
// token_endpoint_auth_method): a public client only names itself and sends
// no secret in any form; a confidential one proves its secret by HTTP Basic
// (client_secret_basic) or in the form (client_secret_post), and the other
// way is refused, so a client cannot fall back to a method it did not
// register.
func (s *Server) authenticateClient(ctx context.Context, id, secret, used string) (*keygate.OAuthClient, *authError) {
	c, err := s.findClient(ctx, id)
	if err != nil {
		if code := keygate.ErrorCode(err); code == keygate.ENOTFOUND || code == keygate.EINVALID {
			return nil, invalidClient(keygate.ErrorMessage(err))
		}
		s.log.Error("oauth: finding client failed", "client_id", id, "err", err)
		return nil, serverError()
	}
	if c.Public() {
		if secret != "" {
			return nil, invalidClient("This client is public and has no secret.")
		}
		return c, nil
	}
	if used != c.TokenEndpointAuthMethod {
		return nil, invalidClient(fmt.Sprintf("This client must authenticate with %s, as it registered.", c.TokenEndpointAuthMethod))
	}
	if secret == "" || subtle.ConstantTimeCompare([]byte(keygate.HashToken(secret)), []byte(c.SecretHash)) != 1 {
		return nil, invalidClient("Client authentication failed.")
	}
	return c, nil
}

// checkRedirectURI enforces the MCP rule for registered redirect URIs:
// https, or http on the loopback interface, absolute and without fragment.
func checkRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("redirect URI %q is not an absolute URL", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("redirect URI %q must not have a fragment", raw)
	}
	if u.User != nil {
		return fmt.Errorf("redirect URI %q must not have user information", raw)
	}
	if !asciiHost(u) {
		return fmt.Errorf("redirect URI %q must name its host in ASCII (an internationalized name in its xn-- form)", raw)
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
		return nil
	}
	return fmt.Errorf("redirect URI %q must use https, or http on localhost", raw)
}

// asciiHost reports whether u's host is written in ASCII, percent-decoded
// as browsers read it. The consent page names the hosts a client is
// published at and sends the user back to; one in Unicode could pose as
// another there ("claude.ai" with a Cyrillic a) while the browser goes to
// its xn-- form, which a look-alike cannot hide behind.
func asciiHost(u *url.URL) bool {
	for i := 0; i < len(u.Host); i++ {
		if u.Host[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func isLoopbackHost(host string) bool {
	return host == "localhost" || isLoopbackIP(host)
}

func isLoopbackIP(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// matchRedirectURI reports whether requested is one of the registered
// redirect URIs, compared as strings. The one exception is RFC 8252 §7.3
// (OAuth 2.1 §8.4.2): for a loopback IP literal (127.0.0.1, [::1]) the
// port may differ, because native apps listen on whatever port the system
// gives them. "localhost" gets no such exception.
func matchRedirectURI(registered []string, requested string) bool {
	if requested == "" {
		return false
	}
	if slices.Contains(registered, requested) {
		return true
	}
	// Beyond exact equality the requested URI must itself be one keygate
	// would register: "http://127.0.0.1:1/cb#" parses without a fragment.
	req, err := url.Parse(requested)
	if err != nil || req.Scheme != "http" || !isLoopbackIP(req.Hostname()) || checkRedirectURI(requested) != nil {
		return false
	}
	for _, r := range registered {
		reg, err := url.Parse(r)
		if err != nil || reg.Scheme != "http" || !isLoopbackIP(reg.Hostname()) {
			continue
		}
		if withoutPort(reg) == withoutPort(req) {
			return true
		}
	}
	return false
}

// withoutPort spells a URL without its port, for the loopback comparison;
// any user information or fragment makes it match nothing registered.
func withoutPort(u *url.URL) string {
	if u.User != nil || u.Fragment != "" {
		return "\x00"
	}
	s := u.Scheme + "://" + u.Hostname() + u.EscapedPath()
	if u.ForceQuery || u.RawQuery != "" {
		s += "?" + u.RawQuery
	}
	return s
}

// checkConfigClient validates a pre-registered client from config.
func checkConfigClient(c *keygate.OAuthClient) error {
	if c == nil || c.ID == "" {
		return fmt.Errorf("oauth: a pre-registered client needs an id")
	}
	if isMetadataClientID(c.ID) || strings.Contains(c.ID, "://") {
		return fmt.Errorf("oauth: client %q: a pre-registered client id must not be a URL; URL ids are Client ID Metadata Documents", c.ID)
	}
	if len(c.RedirectURIs) == 0 {
		return fmt.Errorf("oauth: client %q needs at least one redirect URI", c.ID)
	}
	for _, u := range c.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return fmt.Errorf("oauth: client %q: %w", c.ID, err)
		}
	}
	switch c.TokenEndpointAuthMethod {
	case "", keygate.OAuthAuthNone:
		if c.SecretHash != "" {
			return fmt.Errorf("oauth: client %q has a secret but token_endpoint_auth_method none", c.ID)
		}
	case keygate.OAuthAuthSecretBasic, keygate.OAuthAuthSecretPost:
		if c.SecretHash == "" {
			return fmt.Errorf("oauth: client %q uses %s but has no secret", c.ID, c.TokenEndpointAuthMethod)
		}
	default:
		return fmt.Errorf("oauth: client %q: unknown token_endpoint_auth_method %q", c.ID, c.TokenEndpointAuthMethod)
	}
	for _, g := range c.GrantTypes {
		if g != keygate.OAuthGrantAuthorizationCode && g != keygate.OAuthGrantRefreshToken {
			return fmt.Errorf("oauth: client %q: unsupported grant type %q", c.ID, g)
		}
	}
	return nil
}
