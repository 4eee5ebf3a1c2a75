package manage

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keygate/keygate"
)

// AdminKeyPrefix starts every admin key, so a leaked one is recognisable and
// secret scanners can match it.
const AdminKeyPrefix = "kgadm_"

// CreateAdminKey stores a new admin key under name and returns it with its
// secret, shown once. Only the key's SHA-256 is kept.
func CreateAdminKey(ctx context.Context, keys keygate.AdminKeyService, name string, now time.Time) (*keygate.AdminKey, string, error) {
	name = strings.TrimSpace(name)
	if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > keygate.MaxTokenNameLength {
		return nil, "", keygate.Errorf(keygate.EINVALID, "Admin key name must be 1 to %d characters.", keygate.MaxTokenNameLength)
	}
	secret := keygate.GenerateTokenSecret(AdminKeyPrefix)
	k := &keygate.AdminKey{
		ID:        keygate.NewID("adk"),
		Name:      name,
		Hash:      keygate.HashToken(secret),
		Hint:      keygate.TokenHint(AdminKeyPrefix, secret),
		CreatedAt: now.UTC(),
	}
	if err := keys.CreateAdminKey(ctx, k); err != nil {
		return nil, "", err
	}
	return k, secret, nil
}

// AuthenticateAdminKey returns the admin key whose secret this is. Malformed
// secrets are refused without a database lookup; unknown, malformed and
// revoked keys all get the same EUNAUTHORIZED.
func AuthenticateAdminKey(ctx context.Context, keys keygate.AdminKeyService, secret string) (*keygate.AdminKey, error) {
	refused := keygate.Errorf(keygate.EUNAUTHORIZED, "Invalid admin key.")
	if len(secret) > keygate.MaxTokenLength || !keygate.WellFormedToken(secret, AdminKeyPrefix) {
		return nil, refused
	}
	k, err := keys.FindAdminKeyByHash(ctx, keygate.HashToken(secret))
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return nil, refused
	} else if err != nil {
		return nil, err
	}
	if k.RevokedAt != nil {
		return nil, refused
	}
	return k, nil
}

// ListAdminKeys returns the keys in force, newest first, without their
// secrets (only a hint is kept). Site administrators only.
func ListAdminKeys(ctx context.Context, keys keygate.AdminKeyService, c Caller) ([]*keygate.AdminKey, error) {
	if err := RequireAdmin(c); err != nil {
		return nil, err
	}
	return keys.ListAdminKeys(ctx)
}

// RevokeAdminKey revokes the key with this id: the next request made with
// it is refused. ENOTFOUND for an unknown or already revoked key. Site
// administrators only; a key may revoke itself.
func RevokeAdminKey(ctx context.Context, keys keygate.AdminKeyService, c Caller, id string, now time.Time) error {
	if err := RequireAdmin(c); err != nil {
		return err
	}
	err := keys.RevokeAdminKey(ctx, id, now.UTC())
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return keygate.Errorf(keygate.ENOTFOUND, "Admin key %q not found.", id)
	}
	return err
}
