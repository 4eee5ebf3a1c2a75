package keygate

import (
	"net/mail"
	"strings"
	"unicode/utf8"
)

// ValidateOrganization checks an organization before it is stored, and
// normalises its slug to lower case.
func ValidateOrganization(org *Organization) error {
	org.Slug = strings.ToLower(strings.TrimSpace(org.Slug))
	org.Name = strings.TrimSpace(org.Name)
	org.Plan = strings.TrimSpace(org.Plan)
	if !validSlug(org.Slug) {
		return Errorf(EINVALID, "Organization slug must be 1 to 63 lower-case letters, digits or hyphens, starting with a letter or digit.")
	}
	if org.Name == "" || utf8.RuneCountInString(org.Name) > 100 {
		return Errorf(EINVALID, "Organization name must be 1 to 100 characters.")
	}
	if org.Plan == "" || len(org.Plan) > 50 {
		return Errorf(EINVALID, "Organization plan must be 1 to 50 characters.")
	}
	if org.MaxActiveTokens < 0 {
		return Errorf(EINVALID, "Max active tokens cannot be negative.")
	}
	return nil
}

func validSlug(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ValidateUser checks a user before it is stored, and normalises the
// email to lower case.
func ValidateUser(u *User) error {
	u.Email = strings.ToLower(strings.TrimSpace(u.Email))
	u.Name = strings.TrimSpace(u.Name)
	if addr, err := mail.ParseAddress(u.Email); err != nil || addr.Address != u.Email || len(u.Email) > 254 {
		return Errorf(EINVALID, "Email %q is not a valid address.", u.Email)
	}
	if utf8.RuneCountInString(u.Name) > 100 {
		return Errorf(EINVALID, "Name must be at most 100 characters.")
	}
	return nil
}

// ValidRole reports whether role is one a membership can hold.
func ValidRole(role string) bool {
	return role == RoleOwner || role == RoleMember
}
