// Package storetest is the contract every keygate.Store implementation
// passes: the SQLite and the PostgreSQL store run the same Run, so the two
// behave alike wherever keygate uses them.
//
// What the suite holds a store to, beyond the comments on keygate.Store:
//
//   - Times come back in UTC and equal (time.Equal) what was stored, to the
//     millisecond. The suite only stores times truncated to the millisecond,
//     so a store may keep milliseconds (SQLite) or microseconds (PostgreSQL).
//   - Every "not found" is a *keygate.Error with code ENOTFOUND, every
//     duplicate (slug, email, id, hash) one with ECONFLICT.
//   - CreateOrganization, CreateUser, CreateToken and CreateAdminKey fill in
//     an empty ID; every create fills in a zero CreatedAt.
//   - Emails are stored lower-case and are unique regardless of case.
//   - Lists: organizations by slug, users by email, memberships oldest
//     first, tokens, admin keys and invitations newest first, usage by
//     hour then token.
//     ListAdminKeys leaves revoked keys out.
//   - SetMembership, CreateToken and CreateSession return ENOTFOUND when the
//     organization or user they refer to does not exist.
//   - DeleteOrganization keeps the organization's tokens, revoked, and
//     publishes a token change for each token it revokes as well as an
//     organization change.
//   - DeleteSession and DeleteUserSessions succeed when nothing matches;
//     DeleteMembership, RevokeToken, RevokeAdminKey, UpdateUser,
//     UpdateOrganization and DeleteOrganization return ENOTFOUND when there
//     is nothing to delete, revoke or update, and then publish no change.
//   - The active-token limit refusal is keygate.TooManyTokensError.
//   - Demoting or removing an organization's only owner is refused with
//     keygate.OnlyOwnerError, atomically: of two owners demoting or
//     removing each other at once, through separate handles and inside
//     RecordChange too, exactly one succeeds.
//   - RecordChange commits a change and its audit entries together: an
//     entry the database refuses rolls the change back, and a change that
//     fails appends no entry. The writes made with the context it hands
//     the change join its transaction, those of users, sessions and OAuth
//     clients included, which no audited change makes yet, and so do its
//     reads: they see the change's uncommitted writes, and a handle with
//     one connection (Factory.OpenOneConnection) makes them all. Every change
//     audit.Store records goes through it (Factory.RefuseAuditEntries
//     makes the database refuse).
//   - WatchChanges sees changes committed through any handle on the same
//     database, and returns (nil or context.Canceled) once its context ends.
//     It returns keygate.ErrChangesPruned when changes it had not
//     delivered were pruned (the store's PruneChanges) before it read them.
//
// A store's tests run it with a Factory:
//
//	type files struct{}
//
//	func (files) NewDatabase(t *testing.T) string {
//		return filepath.Join(t.TempDir(), "keygate.db")
//	}
//
//	func (files) Open(t *testing.T, path string) keygate.Store {
//		s, err := sqlite.Open(context.Background(), path)
//		if err != nil {
//			t.Fatal(err)
//		}
//		return s
//	}
//
//	func (files) RefuseAuditEntries(t *testing.T, path string) {
//		// CREATE TRIGGER … BEFORE INSERT ON audit_log … RAISE(ABORT, …)
//	}
//
//	func (f files) OpenOneConnection(t *testing.T, path string) keygate.Store {
//		return f.Open(t, path)
//	}
//
//	func TestStoreContract(t *testing.T) { storetest.Run(t, files{}) }
//
// The change-feed tests wait for changes to arrive, so a polling store
// should poll often in tests (the SQLite tests use 10ms).
//
// The suite never needs a token secret; it stores hashes of made-up values.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

// Factory makes the databases the suite runs against.
type Factory interface {
	// NewDatabase creates an empty database for one subtest and returns
	// what Open needs to reach it: a file path, a connection URL. It
	// removes the database itself, with t.Cleanup, if that is needed.
	NewDatabase(t *testing.T) string
	// Open returns a new handle on the database, ready to use (migrated).
	// The suite opens several handles on one database to check that they
	// share limits and changes as separate processes would. The suite
	// closes every handle it opens.
	Open(t *testing.T, dsn string) keygate.Store
	// RefuseAuditEntries makes the database refuse every audit log entry
	// appended from now on (a trigger that raises on insert), as a full or
	// failing database would, for the suite to check that a change whose
	// entry cannot be stored is not stored either.
	RefuseAuditEntries(t *testing.T, dsn string)
	// OpenOneConnection is Open for a handle that holds at most one
	// connection to the database at a time (PostgreSQL: pool_max_conns=1),
	// for the suite to check that a change's reads take no connection
	// beside its transaction's. A store that does not pool connections
	// returns what Open does.
	OpenOneConnection(t *testing.T, dsn string) keygate.Store
}

// Run runs the whole contract against stores made by f. Each subtest gets
// a database of its own.
func Run(t *testing.T, f Factory) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"Organizations", organizationTests},
		{"Users", userTests},
		{"Memberships", membershipTests},
		{"Invitations", invitationTests},
		{"Tokens", tokenTests},
		{"TokenRotation", rotationTests},
		{"AuditLog", auditTests},
		{"AuditedChanges", auditChangeTests},
		{"TokenLimit", tokenLimitTests},
		{"Sessions", sessionTests},
		{"AdminKeys", adminKeyTests},
		{"SigningKey", signingKeyTests},
		{"Usage", usageTests},
		{"Changes", changeTests},
		{"OAuth", oauthTests},
		{"Webhooks", webhookTests},
		{"Email", emailTests},
		{"Instances", instanceTests},
		{"Ping", []test{{"Answers", testPing}}},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tt := range g.tests {
				t.Run(tt.name, func(t *testing.T) {
					tt.fn(t, newEnv(t, f))
				})
			}
		})
	}
}

// test is one subtest of the contract.
type test struct {
	name string
	fn   func(t *testing.T, e *env)
}

// env is one subtest's database and its first handle.
type env struct {
	t       *testing.T
	factory Factory
	dsn     string
	ctx     context.Context
	store   keygate.Store
	// now is the test's clock reading, UTC and truncated to the millisecond
	// so any store keeps it exactly.
	now time.Time
}

func newEnv(t *testing.T, f Factory) *env {
	e := &env{
		t:       t,
		factory: f,
		dsn:     f.NewDatabase(t),
		ctx:     t.Context(),
		now:     time.Now().UTC().Truncate(time.Millisecond),
	}
	e.store = e.open()
	return e
}

// open returns another handle on the subtest's database, closed at the end.
func (e *env) open() keygate.Store {
	e.t.Helper()
	s := e.factory.Open(e.t, e.dsn)
	if s == nil {
		e.t.Fatal("Factory.Open returned nil")
	}
	e.t.Cleanup(func() { s.Close() })
	return s
}

// at returns the test clock moved by d.
func (e *env) at(d time.Duration) time.Time { return e.now.Add(d) }

// ptr returns a pointer to t, for the optional time fields.
func ptr(t time.Time) *time.Time { return &t }

// createOrganization stores an organization with the given slug.
func (e *env) createOrganization(slug string) *keygate.Organization {
	e.t.Helper()
	org := &keygate.Organization{
		ID:        keygate.NewID("org"),
		Slug:      slug,
		Name:      "Organization " + slug,
		Plan:      "free",
		CreatedAt: e.now,
	}
	if err := e.store.CreateOrganization(e.ctx, org); err != nil {
		e.t.Fatalf("CreateOrganization(%s): %v", slug, err)
	}
	return org
}

// createUser stores a user with the given (lower-case) email.
func (e *env) createUser(email string) *keygate.User {
	e.t.Helper()
	user := &keygate.User{
		ID:           keygate.NewID("usr"),
		Email:        email,
		Name:         "User " + email,
		PasswordHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA",
		CreatedAt:    e.now,
	}
	if err := e.store.CreateUser(e.ctx, user); err != nil {
		e.t.Fatalf("CreateUser(%s): %v", email, err)
	}
	return user
}

// newToken returns a token for the organization and API, not yet stored.
// Its hash is made from its id: the suite has no secrets.
func (e *env) newToken(organizationID, api string, createdAt time.Time) *keygate.Token {
	id := keygate.NewID("tok")
	return &keygate.Token{
		ID:             id,
		OrganizationID: organizationID,
		API:            api,
		Name:           "Token " + id[len(id)-6:],
		Scopes:         []string{"products:read", "stores:read"},
		Environment:    keygate.EnvironmentLive,
		Hash:           keygate.HashToken(id),
		Hint:           "cm_live_…" + id[len(id)-4:],
		CreatedAt:      createdAt,
		CreatedBy:      "usr_creator",
	}
}

// createToken stores a new token with no limit and returns it.
func (e *env) createToken(organizationID, api string, createdAt time.Time) *keygate.Token {
	e.t.Helper()
	tok := e.newToken(organizationID, api, createdAt)
	if err := e.store.CreateToken(e.ctx, tok, 0); err != nil {
		e.t.Fatalf("CreateToken: %v", err)
	}
	return tok
}

// wantCode fails the test unless err is a *keygate.Error with code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	var kerr *keygate.Error
	switch {
	case err == nil:
		t.Errorf("%s: no error, want %s", what, code)
	case !errors.As(err, &kerr):
		t.Errorf("%s: error %v is not a *keygate.Error, want code %s", what, err, code)
	case kerr.Code != code:
		t.Errorf("%s: code %s (%v), want %s", what, kerr.Code, err, code)
	}
}

// must fails the test at once when err is not nil.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// equal reports each difference between got and want as a test error.
func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	for _, d := range diff(got, want) {
		t.Errorf("%s: %s", what, d)
	}
}

// diff compares got and want field by field: times with time.Equal and
// only in UTC, nil and empty slices alike, everything else exactly.
func diff(got, want any) []string {
	var out []string
	walk(&out, "", reflect.ValueOf(got), reflect.ValueOf(want))
	return out
}

var timeType = reflect.TypeOf(time.Time{})

func walk(out *[]string, path string, got, want reflect.Value) {
	report := func(format string, args ...any) {
		name := path
		if name == "" {
			name = "value"
		}
		*out = append(*out, name+": "+fmt.Sprintf(format, args...))
	}
	if !got.IsValid() || !want.IsValid() {
		if got.IsValid() != want.IsValid() {
			report("got %v, want %v", got, want)
		}
		return
	}
	if got.Type() == timeType {
		g, w := got.Interface().(time.Time), want.Interface().(time.Time)
		if !g.Equal(w) {
			report("got %s, want %s", g.Format(time.RFC3339Nano), w.Format(time.RFC3339Nano))
		} else if g.Location() != time.UTC {
			report("got time in %s, want UTC", g.Location())
		}
		return
	}
	switch got.Kind() {
	case reflect.Pointer, reflect.Interface:
		if got.IsNil() || want.IsNil() {
			if got.IsNil() != want.IsNil() {
				report("got %s, want %s", describe(got), describe(want))
			}
			return
		}
		walk(out, path, got.Elem(), want.Elem())
	case reflect.Struct:
		for i := 0; i < got.NumField(); i++ {
			field := got.Type().Field(i)
			if field.IsExported() {
				walk(out, joinPath(path, field.Name), got.Field(i), want.Field(i))
			}
		}
	case reflect.Slice:
		if got.Len() != want.Len() {
			report("got %d elements %v, want %d elements %v", got.Len(), got, want.Len(), want)
			return
		}
		for i := 0; i < got.Len(); i++ {
			walk(out, fmt.Sprintf("%s[%d]", path, i), got.Index(i), want.Index(i))
		}
	default:
		if !reflect.DeepEqual(got.Interface(), want.Interface()) {
			report("got %#v, want %#v", got.Interface(), want.Interface())
		}
	}
}

func joinPath(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func describe(v reflect.Value) string {
	if v.IsNil() {
		return "nil"
	}
	if t, ok := v.Elem().Interface().(time.Time); ok {
		return t.Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("%+v", v.Elem().Interface())
}

func testPing(t *testing.T, e *env) {
	must(t, "Ping", e.store.Ping(e.ctx))
}
