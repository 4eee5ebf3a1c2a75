package oauth

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/keygate/keygate"
)

// clientMetadata is an OAuth client's metadata (RFC 7591 §2): the body of
// a registration request and the content of a Client ID Metadata Document.
type clientMetadata struct {
	ClientID                string   `json:"client_id,omitempty"`
	ClientName              string   `json:"client_name,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	LogoURI                 string   `json:"logo_uri,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
	SoftwareID              string   `json:"software_id,omitempty"`
	SoftwareVersion         string   `json:"software_version,omitempty"`
	// ClientSecret must not appear in a metadata document: a secret
	// published at a URL is no secret.
	ClientSecret json.RawMessage `json:"client_secret,omitempty"`
}

// Limits on client metadata, so a registration or a document cannot make
// keygate store or render something huge.
const (
	maxRedirectURIs    = 10
	maxRedirectURILen  = 2000
	maxClientNameRunes = 100
	maxClientURILen    = 2000
)

// check validates metadata common to registration and metadata documents
// and returns the client it describes, without id, secret or source.
func (m *clientMetadata) check() (*keygate.OAuthClient, *authError) {
	if len(m.RedirectURIs) == 0 {
		return nil, &authError{code: "invalid_redirect_uri", description: "redirect_uris must list at least one redirect URI."}
	}
	if len(m.RedirectURIs) > maxRedirectURIs {
		return nil, &authError{code: "invalid_redirect_uri", description: "At most 10 redirect URIs may be registered."}
	}
	for _, u := range m.RedirectURIs {
		if len(u) > maxRedirectURILen {
			return nil, &authError{code: "invalid_redirect_uri", description: "A redirect URI is too long."}
		}
		if err := checkRedirectURI(u); err != nil {
			return nil, &authError{code: "invalid_redirect_uri", description: "Redirect URIs must be absolute https URLs, or http on localhost, without fragment."}
		}
	}
	// The name is shown to the user deciding on the consent page and in
	// the organization's connected apps: no character may reorder the
	// words around it or pose as something else there.
	name := strings.TrimSpace(m.ClientName)
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxClientNameRunes || keygate.HasHiddenCharacters(name) {
		return nil, invalidMetadata("client_name must be at most 100 characters, without control characters (line breaks, tabs, escapes) or marks that reorder text.")
	}
	if m.ClientURI != "" && (len(m.ClientURI) > maxClientURILen || !plainHTTPSURL(m.ClientURI)) {
		return nil, invalidMetadata("client_uri must be an https URL, written encoded (no spaces or characters outside ASCII).")
	}
	grants := m.GrantTypes
	if len(grants) == 0 {
		grants = []string{keygate.OAuthGrantAuthorizationCode}
	}
	for _, g := range grants {
		if g != keygate.OAuthGrantAuthorizationCode && g != keygate.OAuthGrantRefreshToken {
			return nil, invalidMetadata("Only the authorization_code and refresh_token grant types are supported.")
		}
	}
	if !slices.Contains(grants, keygate.OAuthGrantAuthorizationCode) {
		return nil, invalidMetadata("grant_types must include authorization_code.")
	}
	for _, t := range m.ResponseTypes {
		if t != "code" {
			return nil, invalidMetadata("Only the response type code is supported.")
		}
	}
	return &keygate.OAuthClient{
		Name:         name,
		URI:          m.ClientURI,
		RedirectURIs: slices.Clone(m.RedirectURIs),
		GrantTypes:   slices.Clone(grants),
	}, nil
}

// plainHTTPSURL reports whether raw is an absolute https URL written in
// its encoded form. The consent page shows client_uri as the client's
// home page, so it must read as an address and nothing more: no spaces
// to append words of the client's choosing ("https://claude.ai — checked
// by keygate"), no characters outside ASCII, marks that reorder text
// included.
func plainHTTPSURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "https" && u.Host != "" && u.User == nil && u.String() == raw
}

func invalidMetadata(description string) *authError {
	return &authError{code: "invalid_client_metadata", description: description}
}
