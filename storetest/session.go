package storetest

import (
	"testing"
	"time"

	"github.com/keygate/keygate"
)

var sessionTests = []test{
	{"CreateAndFind", testSessionCreateAndFind},
	{"ExpiredIsNotFound", testSessionExpired},
	{"UnknownUser", testSessionUnknownUser},
	{"Delete", testSessionDelete},
	{"DeleteUserSessions", testSessionDeleteUser},
}

func (e *env) newSession(userID string, expiresAt time.Time) *keygate.Session {
	id := keygate.NewID("ses")
	return &keygate.Session{
		ID:        keygate.HashToken(id),
		UserID:    userID,
		CSRFToken: "csrf-" + id,
		CreatedAt: e.now,
		ExpiresAt: expiresAt,
	}
}

func (e *env) createSession(userID string) *keygate.Session {
	e.t.Helper()
	s := e.newSession(userID, e.at(time.Hour))
	must(e.t, "CreateSession", e.store.CreateSession(e.ctx, s))
	return s
}

func testSessionCreateAndFind(t *testing.T, e *env) {
	user := e.createUser("alice@example.com")
	s := e.newSession(user.ID, e.at(12*time.Hour))
	must(t, "CreateSession", e.store.CreateSession(e.ctx, s))
	got, err := e.store.FindSession(e.ctx, s.ID)
	must(t, "FindSession", err)
	equal(t, "FindSession", got, s)

	dup := e.newSession(user.ID, e.at(time.Hour))
	dup.ID = s.ID
	wantCode(t, "CreateSession with a stored id", e.store.CreateSession(e.ctx, dup), keygate.ECONFLICT)
}

func testSessionExpired(t *testing.T, e *env) {
	user := e.createUser("alice@example.com")
	s := e.newSession(user.ID, e.at(-time.Second))
	must(t, "CreateSession", e.store.CreateSession(e.ctx, s))
	_, err := e.store.FindSession(e.ctx, s.ID)
	wantCode(t, "FindSession(expired)", err, keygate.ENOTFOUND)
	_, err = e.store.FindSession(e.ctx, keygate.HashToken("unknown"))
	wantCode(t, "FindSession(unknown)", err, keygate.ENOTFOUND)
}

func testSessionUnknownUser(t *testing.T, e *env) {
	s := e.newSession("usr_missing", e.at(time.Hour))
	wantCode(t, "CreateSession for an unknown user", e.store.CreateSession(e.ctx, s), keygate.ENOTFOUND)
}

func testSessionDelete(t *testing.T, e *env) {
	user := e.createUser("alice@example.com")
	s, keep := e.createSession(user.ID), e.createSession(user.ID)
	must(t, "DeleteSession", e.store.DeleteSession(e.ctx, s.ID))
	_, err := e.store.FindSession(e.ctx, s.ID)
	wantCode(t, "FindSession after delete", err, keygate.ENOTFOUND)
	must(t, "DeleteSession twice", e.store.DeleteSession(e.ctx, s.ID))
	_, err = e.store.FindSession(e.ctx, keep.ID)
	must(t, "FindSession(other session)", err)
}

func testSessionDeleteUser(t *testing.T, e *env) {
	alice, bob := e.createUser("alice@example.com"), e.createUser("bob@example.com")
	a1, a2, b1 := e.createSession(alice.ID), e.createSession(alice.ID), e.createSession(bob.ID)
	must(t, "DeleteUserSessions", e.store.DeleteUserSessions(e.ctx, alice.ID))
	for _, s := range []*keygate.Session{a1, a2} {
		_, err := e.store.FindSession(e.ctx, s.ID)
		wantCode(t, "FindSession of a deleted user session", err, keygate.ENOTFOUND)
	}
	got, err := e.store.FindSession(e.ctx, b1.ID)
	must(t, "FindSession(bob)", err)
	equal(t, "another user's session", got, b1)
	must(t, "DeleteUserSessions with none left", e.store.DeleteUserSessions(e.ctx, alice.ID))
}

var adminKeyTests = []test{
	{"CreateFindList", testAdminKeyCreateFindList},
	{"Revoke", testAdminKeyRevoke},
}

func (e *env) createAdminKey(name string, createdAt time.Time) *keygate.AdminKey {
	e.t.Helper()
	id := keygate.NewID("adm")
	k := &keygate.AdminKey{
		ID:        id,
		Name:      name,
		Hash:      keygate.HashToken(id),
		Hint:      "kg_admin_…" + id[len(id)-4:],
		CreatedAt: createdAt,
	}
	must(e.t, "CreateAdminKey", e.store.CreateAdminKey(e.ctx, k))
	return k
}

func testAdminKeyCreateFindList(t *testing.T, e *env) {
	older := e.createAdminKey("deploy", e.at(-time.Hour))
	newer := e.createAdminKey("terraform", e.now)

	got, err := e.store.FindAdminKeyByHash(e.ctx, older.Hash)
	must(t, "FindAdminKeyByHash", err)
	equal(t, "FindAdminKeyByHash", got, older)
	_, err = e.store.FindAdminKeyByHash(e.ctx, keygate.HashToken("unknown"))
	wantCode(t, "FindAdminKeyByHash(unknown)", err, keygate.ENOTFOUND)

	keys, err := e.store.ListAdminKeys(e.ctx)
	must(t, "ListAdminKeys", err)
	equal(t, "ListAdminKeys", keys, []*keygate.AdminKey{newer, older})

	dup := &keygate.AdminKey{ID: keygate.NewID("adm"), Name: "dup", Hash: older.Hash, Hint: "x", CreatedAt: e.now}
	wantCode(t, "CreateAdminKey with a stored hash", e.store.CreateAdminKey(e.ctx, dup), keygate.ECONFLICT)
}

func testAdminKeyRevoke(t *testing.T, e *env) {
	revoked := e.createAdminKey("old", e.at(-time.Hour))
	keep := e.createAdminKey("new", e.now)
	must(t, "RevokeAdminKey", e.store.RevokeAdminKey(e.ctx, revoked.ID, e.now))

	_, err := e.store.FindAdminKeyByHash(e.ctx, revoked.Hash)
	wantCode(t, "FindAdminKeyByHash(revoked)", err, keygate.ENOTFOUND)
	wantCode(t, "RevokeAdminKey twice", e.store.RevokeAdminKey(e.ctx, revoked.ID, e.now), keygate.ENOTFOUND)
	wantCode(t, "RevokeAdminKey(unknown)", e.store.RevokeAdminKey(e.ctx, "adm_missing", e.now), keygate.ENOTFOUND)

	keys, err := e.store.ListAdminKeys(e.ctx)
	must(t, "ListAdminKeys", err)
	equal(t, "ListAdminKeys after a revoke", keys, []*keygate.AdminKey{keep})
	_, err = e.store.FindAdminKeyByHash(e.ctx, keep.Hash)
	must(t, "FindAdminKeyByHash(kept)", err)
}
