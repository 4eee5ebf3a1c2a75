package keygate

import "time"

// Identity is who a verified request acts for. The gateway builds it after a
// token (or an OAuth access token on the MCP endpoint) passes every check and
// sends it upstream as headers and as the signed X-Keygate-Identity JWT, so
// the upstream can filter data by the organization's entitlements.
type Identity struct {
	OrganizationID   string       `json:"org"`
	OrganizationSlug string       `json:"org_slug"`
	Plan             string       `json:"plan"`
	Entitlements     Entitlements `json:"entitlements"`
	TokenID          string       `json:"token_id,omitempty"`  // API token id
	ClientID         string       `json:"client_id,omitempty"` // OAuth client, for MCP
	UserID           string       `json:"user_id,omitempty"`   // OAuth grant's user
	Scopes           []string     `json:"scopes"`
	API              string       `json:"api"`
}

// Headers set by keygate on forwarded requests. Incoming copies are always
// stripped first so a client cannot forge them.
const (
	HeaderOrganization = "X-Keygate-Org"
	HeaderTokenID      = "X-Keygate-Token-Id"
	HeaderScopes       = "X-Keygate-Scopes"
	HeaderIdentity     = "X-Keygate-Identity"
	HeaderPrefix       = "X-Keygate-"
	// IdentityIssuer is the "iss" of identity JWTs.
	IdentityIssuer = "keygate"
	// IdentityLifetime is how long an identity JWT is valid: long enough for
	// the upstream to check it, short enough to be useless if logged.
	IdentityLifetime = 60 * time.Second
)
