package oauth

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/keygate/keygate"
)

// resource is one guarded MCP endpoint: the audience of the tokens issued
// for it (RFC 8707) and the scopes every call needs.
type resource struct {
	api         *keygate.API
	url         string // canonical resource URL, e.g. "https://api.example.com/mcp"
	path        string // its path, e.g. "/mcp"; "" at the root
	metadataURL string // RFC 9728 metadata, path form
	scopes      []string
}

// pathProtectedResource is the RFC 9728 well-known prefix.
const pathProtectedResource = "/.well-known/oauth-protected-resource"

// canonicalResource returns the form of a resource URL that keygate
// compares: scheme and host lower-cased, no trailing slash. The MCP
// specification asks servers to accept upper-case scheme and host, and
// clients to drop the trailing slash, so both spellings mean one endpoint.
func canonicalResource(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("resource %q is not an absolute URL", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return "", fmt.Errorf("resource %q must not have a fragment", raw)
	}
	if u.User != nil {
		return "", fmt.Errorf("resource %q must not have user information", raw)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Scheme != "https" && u.Scheme != "http" {
		return "", fmt.Errorf("resource %q must be an http(s) URL", raw)
	}
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = strings.TrimSuffix(u.RawPath, "/")
	return u.String(), nil
}

// addResource registers an MCP endpoint so the authorize endpoint accepts
// its URL as a `resource` and the consent page can name its API.
func (s *Server) addResource(api *keygate.API, rawURL string) (*resource, error) {
	canonical, err := canonicalResource(rawURL)
	if err != nil {
		return nil, fmt.Errorf("oauth: MCP endpoint of API %q: %w", api.Name, err)
	}
	u, _ := url.Parse(canonical)
	res := &resource{
		api:         api,
		url:         canonical,
		path:        u.EscapedPath(),
		metadataURL: u.Scheme + "://" + u.Host + pathProtectedResource + u.EscapedPath(),
	}
	if api.MCP != nil {
		res.scopes = slices.Clone(api.MCP.Scopes)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if other, ok := s.resources[canonical]; ok && other.api.Name != api.Name {
		return nil, fmt.Errorf("oauth: APIs %q and %q both serve MCP at %s", other.api.Name, api.Name, canonical)
	}
	s.resources[canonical] = res
	return res, nil
}

// findResource returns the endpoint a `resource` parameter names. Without
// one, the only endpoint is meant, as clients before 2025-06-18 did not
// send the parameter.
func (s *Server) findResource(raw string) (*resource, *authError) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if raw == "" {
		if len(s.resources) == 1 {
			for _, r := range s.resources {
				return r, nil
			}
		}
		return nil, &authError{code: "invalid_target", description: "The resource parameter is required: name the MCP endpoint the token is for."}
	}
	canonical, err := canonicalResource(raw)
	if err != nil {
		return nil, &authError{code: "invalid_target", description: "The resource parameter is not a valid URL."}
	}
	res, ok := s.resources[canonical]
	if !ok {
		return nil, &authError{code: "invalid_target", description: "This authorization server does not issue tokens for that resource."}
	}
	return res, nil
}

// allScopes lists every scope of every endpoint, for scopes_supported.
func (s *Server) allScopes() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for _, r := range s.resources {
		for _, sc := range r.scopes {
			if !slices.Contains(out, sc) {
				out = append(out, sc)
			}
		}
	}
	slices.Sort(out)
	return out
}

// grantedScopes decides what a grant carries: the requested scopes the
// endpoint knows, or all of its scopes when the request named none it
// knows (RFC 6749 §3.3 lets the server ignore what it does not issue; the
// consent page shows the result and the token response returns it).
// offline_access asks for a refresh token and is not a resource scope.
func (r *resource) grantedScopes(requested string) (scopes []string, offline bool) {
	for _, sc := range strings.Fields(requested) {
		if sc == scopeOfflineAccess {
			offline = true
		} else if slices.Contains(r.scopes, sc) && !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	if len(scopes) == 0 {
		scopes = slices.Clone(r.scopes)
	}
	// Keep the endpoint's order so the consent page and tokens read alike.
	slices.SortFunc(scopes, func(a, b string) int {
		return slices.Index(r.scopes, a) - slices.Index(r.scopes, b)
	})
	return scopes, offline
}

const scopeOfflineAccess = "offline_access"
