// Package password hashes and checks user passwords with argon2id, stored in
// the PHC string format so parameters can be raised later without breaking
// existing hashes. It never logs or returns a password.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Parameters follow the RFC 9106 second recommendation scaled to a login
// taking tens of milliseconds on a small server.
const (
	timeCost    = 2
	memoryKiB   = 64 * 1024
	parallelism = 2
	saltLength  = 16
	keyLength   = 32
	// MinLength is the shortest password accepted for new users.
	MinLength = 4
	// MaxLength bounds the work an attacker can force per login attempt.
	MaxLength = 1024
)

var b64 = base64.RawStdEncoding

// Hash returns the argon2id PHC string for pw.
func Hash(pw string) (string, error) {
	if len(pw) > MaxLength {
		return "", errors.New("password too long")
	}
	salt := make([]byte, saltLength)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, timeCost, memoryKiB, parallelism, keyLength)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, memoryKiB, timeCost, parallelism, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether pw matches the PHC string hash. Malformed hashes
// never match.
func Verify(hash, pw string) bool {
	if len(pw) > MaxLength {
		return false
	}
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	var mem, iters uint32
	var par uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &iters, &par); err != nil {
		return false
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, iters, mem, par, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// DummyVerify spends the same time as Verify on a non-matching hash, so a
// login for an unknown email is not faster than one with a wrong password.
func DummyVerify(pw string) {
	Verify(dummyHash, pw)
}

var dummyHash, _ = Hash("keygate-dummy-password")
