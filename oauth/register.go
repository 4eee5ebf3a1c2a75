package oauth

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"

	"github.com/keygate/keygate"
)

// RFC 7591 dynamic client registration. The MCP specification keeps it for
// clients that predate Client ID Metadata Documents. Anyone may register,
// so what a registration can store is bounded (clientMetadata.check) and
// registrations that never lead to a grant are purged after a day.

const (
	maxRegistrationBytes = 16 << 10
	clientSecretPrefix   = "kgo_cs_"
)

// registrationResponse is the RFC 7591 §3.2.1 answer: the metadata as
// accepted, the client_id, and a client_secret for confidential clients,
// shown this once.
type registrationResponse struct {
	ClientID                string   `json:"client_id"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	ClientSecret            string   `json:"client_secret,omitempty"`
	ClientSecretExpiresAt   *int64   `json:"client_secret_expires_at,omitempty"`
	ClientName              string   `json:"client_name,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
}

func (s *Server) serveRegister(w http.ResponseWriter, r *http.Request) {
	if !s.allowRegistration {
		writeError(w, &authError{code: "invalid_request", description: "Dynamic client registration is turned off; use a Client ID Metadata Document or a pre-registered client.", status: http.StatusNotFound})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		writeError(w, &authError{code: "invalid_request", description: "Use POST.", status: http.StatusMethodNotAllowed})
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeError(w, invalidMetadata("The registration request must be JSON (Content-Type: application/json)."))
		return
	}
	var m clientMetadata
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRegistrationBytes))
	if err := dec.Decode(&m); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, &authError{code: "invalid_client_metadata", description: "The registration request is too large.", status: http.StatusRequestEntityTooLarge})
			return
		}
		writeError(w, invalidMetadata("The registration request is not a JSON object of client metadata."))
		return
	}
	c, aerr := m.check()
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	// RFC 7591 §2: without a method the client gets a secret for HTTP Basic.
	c.TokenEndpointAuthMethod = m.TokenEndpointAuthMethod
	if c.TokenEndpointAuthMethod == "" {
		c.TokenEndpointAuthMethod = keygate.OAuthAuthSecretBasic
	}
	var secret string
	switch c.TokenEndpointAuthMethod {
	case keygate.OAuthAuthNone:
	case keygate.OAuthAuthSecretBasic, keygate.OAuthAuthSecretPost:
		secret = keygate.GenerateTokenSecret(clientSecretPrefix)
		c.SecretHash = keygate.HashToken(secret)
	default:
		writeError(w, invalidMetadata("token_endpoint_auth_method must be none, client_secret_basic or client_secret_post."))
		return
	}
	c.ID = keygate.NewID("kgc")
	c.Source = keygate.OAuthClientRegistered
	c.CreatedAt = s.now().UTC()
	if err := s.store.CreateOAuthClient(r.Context(), c); err != nil {
		s.log.Error("oauth: storing a registered client failed", "err", err)
		writeError(w, serverError())
		return
	}
	s.log.Info("oauth: client registered", "client_id", c.ID, "client_name", c.Name, "auth_method", c.TokenEndpointAuthMethod)
	s.maybePurge()
	resp := registrationResponse{
		ClientID:                c.ID,
		ClientIDIssuedAt:        c.CreatedAt.Unix(),
		ClientSecret:            secret,
		ClientName:              c.Name,
		ClientURI:               c.URI,
		RedirectURIs:            c.RedirectURIs,
		GrantTypes:              c.GrantTypes,
		ResponseTypes:           []string{"code"},
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod,
	}
	if secret != "" {
		never := int64(0)
		resp.ClientSecretExpiresAt = &never
	}
	writeJSON(w, http.StatusCreated, resp)
}
