package oauth

import (
	"encoding/json"
	"net/http"
	"slices"
)

// serverMetadata is the RFC 8414 document. keygate is not an OpenID
// provider (it issues no ID tokens), but the same document is served at
// the OpenID discovery address so clients that only try that one find the
// endpoints; the MCP specification asks for code_challenge_methods_supported
// there too.
type serverMetadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RegistrationEndpoint              string   `json:"registration_endpoint,omitempty"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	RevocationAuthMethodsSupported    []string `json:"revocation_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	ClientIDMetadataDocumentSupported bool     `json:"client_id_metadata_document_supported"`
	IssParameterSupported             bool     `json:"authorization_response_iss_parameter_supported"`
}

var clientAuthMethods = []string{"none", "client_secret_basic", "client_secret_post"}

func (s *Server) metadata() serverMetadata {
	m := serverMetadata{
		Issuer:                            s.issuer,
		AuthorizationEndpoint:             s.issuer + PathAuthorize,
		TokenEndpoint:                     s.issuer + PathToken,
		RevocationEndpoint:                s.issuer + PathRevoke,
		ScopesSupported:                   append(s.allScopes(), scopeOfflineAccess),
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{"query"},
		GrantTypesSupported:               []string{"authorization_code", "refresh_token"},
		TokenEndpointAuthMethodsSupported: slices.Clone(clientAuthMethods),
		RevocationAuthMethodsSupported:    slices.Clone(clientAuthMethods),
		CodeChallengeMethodsSupported:     []string{"S256"},
		ClientIDMetadataDocumentSupported: true,
		IssParameterSupported:             true,
	}
	if s.allowRegistration {
		m.RegistrationEndpoint = s.issuer + PathRegister
	}
	return m
}

func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		writeError(w, &authError{code: "invalid_request", description: "Use GET.", status: http.StatusMethodNotAllowed})
		return
	}
	body, _ := json.Marshal(s.metadata())
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// Metadata changes only with config; a short cache spares clients a
	// fetch per connection without outliving a restart by much.
	h.Set("Cache-Control", "public, max-age=300")
	w.Write(body)
}
