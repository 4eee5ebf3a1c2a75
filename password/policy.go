package password

import (
	_ "embed"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/keygate/keygate"
)

// MinLength is the fewest characters a new password may have (NIST SP
// 800-63B §3.1.1.2 asks for at least 8, and 15 for single-factor logins;
// 12 is keygate's middle ground for a dashboard behind one password).
const MinLength = 12

//go:embed common.txt
var commonList string

// common holds the embedded list of common passwords, lower-cased.
var common = sync.OnceValue(func() map[string]bool {
	set := map[string]bool{}
	for _, line := range strings.Split(commonList, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			set[line] = true
		}
	}
	return set
})

// CheckPolicy says whether pw may be set as a new password: at least
// MinLength characters, at most MaxLength bytes, and not one of the
// embedded common passwords (compared without case). It applies to every
// password set through the CLI, the management API and the dashboard;
// existing hashes (and the demo's seeded user) are not checked again.
func CheckPolicy(pw string) error {
	switch {
	case utf8.RuneCountInString(pw) < MinLength:
		return keygate.Errorf(keygate.EINVALID, "Password must be at least %d characters.", MinLength)
	case len(pw) > MaxLength:
		return keygate.Errorf(keygate.EINVALID, "Password must be at most %d bytes.", MaxLength)
	case common()[strings.ToLower(pw)]:
		return keygate.Errorf(keygate.EINVALID, "This password is one of the most commonly used; choose another.")
	}
	return nil
}
