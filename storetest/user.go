package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

var userTests = []test{
	{"CreateAndFind", testUserCreateAndFind},
	{"CreateFillsID", testUserCreateFills},
	{"EmailUniqueInAnyCase", testUserEmailConflict},
	{"NotFound", testUserNotFound},
	{"List", testUserList},
	{"Update", testUserUpdate},
}

func testUserCreateAndFind(t *testing.T, e *env) {
	user := &keygate.User{
		ID:           "usr_alice",
		Email:        "Alice.Smith@Example.COM",
		Name:         "Alice Smith",
		PasswordHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA",
		IsAdmin:      true,
		CreatedAt:    e.at(-time.Hour),
	}
	must(t, "CreateUser", e.store.CreateUser(e.ctx, user))
	want := &keygate.User{
		ID:           "usr_alice",
		Email:        "alice.smith@example.com",
		Name:         "Alice Smith",
		PasswordHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA",
		IsAdmin:      true,
		CreatedAt:    e.at(-time.Hour),
	}

	got, err := e.store.FindUserByID(e.ctx, "usr_alice")
	must(t, "FindUserByID", err)
	equal(t, "FindUserByID", got, want)

	for _, email := range []string{"alice.smith@example.com", "ALICE.SMITH@EXAMPLE.COM", "Alice.Smith@example.com"} {
		got, err := e.store.FindUserByEmail(e.ctx, email)
		must(t, "FindUserByEmail("+email+")", err)
		equal(t, "FindUserByEmail("+email+")", got, want)
	}
}

func testUserCreateFills(t *testing.T, e *env) {
	user := &keygate.User{Email: "bob@example.com", Name: "Bob", PasswordHash: "x"}
	must(t, "CreateUser", e.store.CreateUser(e.ctx, user))
	if user.ID == "" {
		t.Fatal("CreateUser left ID empty")
	}
	got, err := e.store.FindUserByID(e.ctx, user.ID)
	must(t, "FindUserByID", err)
	if got.CreatedAt.IsZero() {
		t.Error("CreateUser left CreatedAt zero")
	}
}

func testUserEmailConflict(t *testing.T, e *env) {
	e.createUser("alice@example.com")
	for _, email := range []string{"alice@example.com", "ALICE@example.com", "Alice@Example.Com"} {
		dup := &keygate.User{ID: keygate.NewID("usr"), Email: email, Name: "Dup", PasswordHash: "x", CreatedAt: e.now}
		wantCode(t, "CreateUser("+email+")", e.store.CreateUser(e.ctx, dup), keygate.ECONFLICT)
	}
	users, err := e.store.ListUsers(e.ctx)
	must(t, "ListUsers", err)
	if len(users) != 1 {
		t.Errorf("ListUsers returned %d users after refused creates, want 1", len(users))
	}
}

func testUserNotFound(t *testing.T, e *env) {
	e.createUser("alice@example.com")
	_, err := e.store.FindUserByID(e.ctx, "usr_missing")
	wantCode(t, "FindUserByID", err, keygate.ENOTFOUND)
	_, err = e.store.FindUserByEmail(e.ctx, "bob@example.com")
	wantCode(t, "FindUserByEmail", err, keygate.ENOTFOUND)
	err = e.store.UpdateUser(e.ctx, &keygate.User{ID: "usr_missing", Name: "x", PasswordHash: "x"})
	wantCode(t, "UpdateUser", err, keygate.ENOTFOUND)
}

func testUserList(t *testing.T, e *env) {
	users, err := e.store.ListUsers(e.ctx)
	must(t, "ListUsers on an empty store", err)
	if len(users) != 0 {
		t.Fatalf("ListUsers on an empty store returned %d users", len(users))
	}
	c := e.createUser("carol@example.com")
	a := e.createUser("alice@example.com")
	b := e.createUser("bob@example.com")
	users, err = e.store.ListUsers(e.ctx)
	must(t, "ListUsers", err)
	equal(t, "ListUsers", users, []*keygate.User{a, b, c})
}

func testUserUpdate(t *testing.T, e *env) {
	user := e.createUser("alice@example.com")
	other := e.createUser("bob@example.com")
	must(t, "UpdateUser", e.store.UpdateUser(e.ctx, &keygate.User{
		ID:           user.ID,
		Email:        "ignored@example.com",
		Name:         "Alice Cooper",
		PasswordHash: "$argon2id$new",
		IsAdmin:      true,
	}))
	want := *user
	want.Name = "Alice Cooper"
	want.PasswordHash = "$argon2id$new"
	want.IsAdmin = true
	got, err := e.store.FindUserByID(e.ctx, user.ID)
	must(t, "FindUserByID", err)
	equal(t, "updated user", got, &want)

	got, err = e.store.FindUserByID(e.ctx, other.ID)
	must(t, "FindUserByID(other)", err)
	equal(t, "other user", got, other)
}

var membershipTests = []test{
	{"SetListDelete", testMembershipSetListDelete},
	{"SetChangesRole", testMembershipSetChangesRole},
	{"UnknownUserOrOrganization", testMembershipUnknown},
	{"OnlyOwnerStays", testMembershipOnlyOwnerStays},
	{"OwnersDemotingEachOther", testMembershipOwnersDemotingEachOther},
}

func testMembershipSetListDelete(t *testing.T, e *env) {
	acme, globex := e.createOrganization("acme"), e.createOrganization("globex")
	alice, bob := e.createUser("alice@example.com"), e.createUser("bob@example.com")
	m1 := &keygate.Membership{OrganizationID: acme.ID, UserID: alice.ID, Role: keygate.RoleOwner, CreatedAt: e.at(1 * time.Second)}
	m2 := &keygate.Membership{OrganizationID: acme.ID, UserID: bob.ID, Role: keygate.RoleMember, CreatedAt: e.at(2 * time.Second)}
	m3 := &keygate.Membership{OrganizationID: globex.ID, UserID: alice.ID, Role: keygate.RoleMember, CreatedAt: e.at(3 * time.Second)}
	for _, m := range []*keygate.Membership{m1, m2, m3} {
		must(t, "SetMembership", e.store.SetMembership(e.ctx, m))
	}

	list := func(filter keygate.MembershipFilter) []*keygate.Membership {
		t.Helper()
		got, err := e.store.ListMemberships(e.ctx, filter)
		must(t, "ListMemberships", err)
		return got
	}
	equal(t, "memberships of acme", list(keygate.MembershipFilter{OrganizationID: acme.ID}), []*keygate.Membership{m1, m2})
	equal(t, "memberships of alice", list(keygate.MembershipFilter{UserID: alice.ID}), []*keygate.Membership{m1, m3})
	equal(t, "alice in acme", list(keygate.MembershipFilter{OrganizationID: acme.ID, UserID: alice.ID}), []*keygate.Membership{m1})
	equal(t, "every membership", list(keygate.MembershipFilter{}), []*keygate.Membership{m1, m2, m3})

	must(t, "DeleteMembership", e.store.DeleteMembership(e.ctx, acme.ID, bob.ID))
	equal(t, "memberships of acme after delete", list(keygate.MembershipFilter{OrganizationID: acme.ID}), []*keygate.Membership{m1})
	wantCode(t, "DeleteMembership twice", e.store.DeleteMembership(e.ctx, acme.ID, bob.ID), keygate.ENOTFOUND)
	wantCode(t, "DeleteMembership of a non-member", e.store.DeleteMembership(e.ctx, globex.ID, bob.ID), keygate.ENOTFOUND)
}

func testMembershipSetChangesRole(t *testing.T, e *env) {
	acme := e.createOrganization("acme")
	alice := e.createUser("alice@example.com")
	first := &keygate.Membership{OrganizationID: acme.ID, UserID: alice.ID, Role: keygate.RoleMember, CreatedAt: e.now}
	must(t, "SetMembership", e.store.SetMembership(e.ctx, first))
	must(t, "SetMembership again", e.store.SetMembership(e.ctx, &keygate.Membership{
		OrganizationID: acme.ID, UserID: alice.ID, Role: keygate.RoleOwner, CreatedAt: e.at(time.Hour),
	}))

	got, err := e.store.ListMemberships(e.ctx, keygate.MembershipFilter{OrganizationID: acme.ID})
	must(t, "ListMemberships", err)
	want := &keygate.Membership{OrganizationID: acme.ID, UserID: alice.ID, Role: keygate.RoleOwner, CreatedAt: e.now}
	equal(t, "membership after a role change (CreatedAt kept)", got, []*keygate.Membership{want})
}

func testMembershipUnknown(t *testing.T, e *env) {
	acme := e.createOrganization("acme")
	alice := e.createUser("alice@example.com")
	err := e.store.SetMembership(e.ctx, &keygate.Membership{OrganizationID: "org_missing", UserID: alice.ID, Role: keygate.RoleMember})
	wantCode(t, "SetMembership in an unknown organization", err, keygate.ENOTFOUND)
	err = e.store.SetMembership(e.ctx, &keygate.Membership{OrganizationID: acme.ID, UserID: "usr_missing", Role: keygate.RoleMember})
	wantCode(t, "SetMembership of an unknown user", err, keygate.ENOTFOUND)
}

// The only owner of an organization can be neither made a member nor
// removed; once there is a second owner, either can.
func testMembershipOnlyOwnerStays(t *testing.T, e *env) {
	acme := e.createOrganization("acme")
	alice, bob := e.createUser("alice@example.com"), e.createUser("bob@example.com")
	must(t, "SetMembership(alice owner)", e.store.SetMembership(e.ctx, &keygate.Membership{OrganizationID: acme.ID, UserID: alice.ID, Role: keygate.RoleOwner, CreatedAt: e.now}))
	must(t, "SetMembership(bob member)", e.store.SetMembership(e.ctx, &keygate.Membership{OrganizationID: acme.ID, UserID: bob.ID, Role: keygate.RoleMember, CreatedAt: e.now}))

	refusal := keygate.OnlyOwnerError("alice@example.com")
	equal(t, "demoting the only owner", e.store.SetMembership(e.ctx, &keygate.Membership{OrganizationID: acme.ID, UserID: alice.ID, Role: keygate.RoleMember}), refusal)
	equal(t, "removing the only owner", e.store.DeleteMembership(e.ctx, acme.ID, alice.ID), refusal)
	must(t, "SetMembership(only owner stays owner)", e.store.SetMembership(e.ctx, &keygate.Membership{OrganizationID: acme.ID, UserID: alice.ID, Role: keygate.RoleOwner}))
	must(t, "SetMembership(member stays member)", e.store.SetMembership(e.ctx, &keygate.Membership{OrganizationID: acme.ID, UserID: bob.ID, Role: keygate.RoleMember}))

	must(t, "SetMembership(bob owner)", e.store.SetMembership(e.ctx, &keygate.Membership{OrganizationID: acme.ID, UserID: bob.ID, Role: keygate.RoleOwner}))
	must(t, "SetMembership(alice member)", e.store.SetMembership(e.ctx, &keygate.Membership{OrganizationID: acme.ID, UserID: alice.ID, Role: keygate.RoleMember}))
	equal(t, "removing bob, now the only owner", e.store.DeleteMembership(e.ctx, acme.ID, bob.ID), keygate.OnlyOwnerError("bob@example.com"))
	must(t, "DeleteMembership(alice)", e.store.DeleteMembership(e.ctx, acme.ID, alice.ID))
	got, err := e.store.ListMemberships(e.ctx, keygate.MembershipFilter{OrganizationID: acme.ID})
	must(t, "ListMemberships", err)
	equal(t, "memberships of acme", got, []*keygate.Membership{{OrganizationID: acme.ID, UserID: bob.ID, Role: keygate.RoleOwner, CreatedAt: e.now}})
}

// Two owners demote or remove each other at the same time, through
// separate handles, on their own and inside an audited change's
// transaction (RecordChange): exactly one succeeds, the other is refused
// as the only owner's demotion, and the organization keeps an owner.
// Races depend on timing, so each way runs several rounds.
func testMembershipOwnersDemotingEachOther(t *testing.T, e *env) {
	stores := []keygate.Store{e.store, e.open()}
	ways := []struct {
		name   string
		change func(store keygate.Store, ctx context.Context, orgID, userID string) error
	}{
		{"demote", func(store keygate.Store, ctx context.Context, orgID, userID string) error {
			return store.SetMembership(ctx, &keygate.Membership{OrganizationID: orgID, UserID: userID, Role: keygate.RoleMember})
		}},
		{"remove", func(store keygate.Store, ctx context.Context, orgID, userID string) error {
			return store.DeleteMembership(ctx, orgID, userID)
		}},
	}
	round := 0
	for _, way := range ways {
		for _, audited := range []bool{false, true} {
			for range 10 {
				round++
				org := e.createOrganization(fmt.Sprintf("race-%d", round))
				owners := []*keygate.User{
					e.createUser(fmt.Sprintf("a%d@example.com", round)),
					e.createUser(fmt.Sprintf("b%d@example.com", round)),
				}
				for _, u := range owners {
					must(t, "SetMembership", e.store.SetMembership(e.ctx, &keygate.Membership{OrganizationID: org.ID, UserID: u.ID, Role: keygate.RoleOwner, CreatedAt: e.now}))
				}
				errs := make([]error, 2)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range 2 {
					other := owners[1-i].ID
					wg.Go(func() {
						<-start
						if !audited {
							errs[i] = way.change(stores[i], e.ctx, org.ID, other)
							return
						}
						errs[i] = stores[i].RecordChange(e.ctx, func(ctx context.Context) ([]*keygate.AuditEntry, error) {
							return nil, way.change(stores[i], ctx, org.ID, other)
						})
					})
				}
				close(start)
				wg.Wait()

				what := fmt.Sprintf("%s (audited %v), round %d", way.name, audited, round)
				refused := 0
				for i, err := range errs {
					if err == nil {
						continue
					}
					refused++
					// The one refused is the survivor's demotion, the
					// other having gone first.
					equal(t, fmt.Sprintf("%s: refusal of change %d", what, i), err, keygate.OnlyOwnerError(owners[1-i].Email))
				}
				ms, err := e.store.ListMemberships(e.ctx, keygate.MembershipFilter{OrganizationID: org.ID})
				must(t, "ListMemberships", err)
				left := 0
				for _, m := range ms {
					if m.Role == keygate.RoleOwner {
						left++
					}
				}
				if refused != 1 || left != 1 {
					t.Fatalf("%s: %d of 2 changes refused, %d owners left; want 1 and 1", what, refused, left)
				}
			}
		}
	}
}
