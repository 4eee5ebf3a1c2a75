package keygate

import "time"

// Organization owns tokens and members. Its plan and entitlements decide
// which routes and which data its tokens (and OAuth grants) may reach.
type Organization struct {
	ID           string
	Slug         string // unique, URL-safe, e.g. "demo"
	Name         string
	Plan         string // e.g. "free", "pro"
	Entitlements Entitlements
	// MaxActiveTokens overrides the API's limit when > 0.
	MaxActiveTokens int
	CreatedAt       time.Time
}

// Entitlement kinds, in the words error messages use.
const (
	EntitlementStates       = "states"
	EntitlementBrands       = "brands"
	EntitlementDispensaries = "dispensaries"
)

// Entitlements list the data an organization may ask for. An empty list
// means no restriction of that kind; a non-empty list allows only its values
// (compared case-insensitively).
type Entitlements struct {
	States       []string `json:"states"`
	Brands       []string `json:"brands"`
	Dispensaries []string `json:"dispensaries"`
}

// Values returns the list for an entitlement kind.
func (e Entitlements) Values(kind string) []string {
	switch kind {
	case EntitlementStates:
		return e.States
	case EntitlementBrands:
		return e.Brands
	case EntitlementDispensaries:
		return e.Dispensaries
	}
	return nil
}

// Allows reports whether value of kind is within the entitlements.
func (e Entitlements) Allows(kind, value string) bool {
	allowed := e.Values(kind)
	if len(allowed) == 0 {
		return true
	}
	for _, a := range allowed {
		if EqualFoldASCII(a, value) {
			return true
		}
	}
	return false
}

// EntitlementNoun is the singular word for a kind in error messages:
// "Your organization does not have access to state New York."
func EntitlementNoun(kind string) string {
	switch kind {
	case EntitlementStates:
		return "state"
	case EntitlementBrands:
		return "brand"
	case EntitlementDispensaries:
		return "dispensary"
	}
	return kind
}

// EqualFoldASCII reports whether a and b are equal with ASCII letters
// compared without case, and every other byte as it is. Names and values
// that decide access (entitlements, header names, Transfer-Encoding) are
// compared this way, never with strings.EqualFold's Unicode folding, under
// which the Kelvin sign "\u212a" equals "k" and the long s "\u017f" equals
// "s": a value another parser reads byte for byte as something else would
// match.
func EqualFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}

// User is a person who logs in to the dashboard.
type User struct {
	ID           string
	Email        string // unique, stored lower-case
	Name         string
	PasswordHash string // argon2id PHC string; never the password
	IsAdmin      bool   // site administrator: manages every organization
	CreatedAt    time.Time
}

// Roles a user can hold in an organization.
const (
	RoleOwner  = "owner"  // manages members, sees usage, manages tokens
	RoleMember = "member" // manages tokens
)

// OnlyOwnerError is the refusal to demote or remove an organization's only
// owner, which would leave nobody to manage its members. Every store
// returns this one message, so the dashboard, the management API and the
// CLI say the same thing.
func OnlyOwnerError(email string) *Error {
	return Errorf(ECONFLICT, "%s is the only owner: make someone else an owner first.", email)
}

// Membership ties a user to an organization with a role.
type Membership struct {
	OrganizationID string
	UserID         string
	Role           string
	CreatedAt      time.Time
}

// Session is a dashboard login. Only the hash of the session cookie's value
// is stored, like tokens.
type Session struct {
	ID        string // hex SHA-256 of the cookie value
	UserID    string
	CSRFToken string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// AdminKey authenticates automation against the management API with
// site-administrator rights. Only its hash is stored.
type AdminKey struct {
	ID        string
	Name      string
	Hash      string
	Hint      string
	CreatedAt time.Time
	RevokedAt *time.Time
}
