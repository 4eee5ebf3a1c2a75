package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

var invitationTests = []test{
	{"CreateAndFindByHash", testInvitationCreateAndFind},
	{"CreateFillsIDAndRefusesDuplicates", testInvitationCreateFills},
	{"CreateForUnknownOrganization", testInvitationUnknownOrganization},
	{"AcceptAddsMembershipOnce", testInvitationAccept},
	{"AcceptKeepsExistingRole", testInvitationAcceptExistingMember},
	{"AcceptUnknownUser", testInvitationAcceptUnknownUser},
	{"ConcurrentAcceptsOneWins", testInvitationConcurrentAccept},
	{"Revoke", testInvitationRevoke},
	{"Expiry", testInvitationExpiry},
	{"ListPendingPerOrganization", testInvitationList},
	{"GoneWithOrganization", testInvitationOrganizationDeleted},
}

// newInvitation returns an invitation to org for email, not yet stored.
// Its hash is made from its id: the suite has no secrets.
func (e *env) newInvitation(organizationID, email string, createdAt time.Time) *keygate.Invitation {
	id := keygate.NewID("inv")
	return &keygate.Invitation{
		ID:             id,
		OrganizationID: organizationID,
		Email:          email,
		Role:           keygate.RoleMember,
		Hash:           keygate.HashToken(id),
		InvitedBy:      "usr_inviter",
		CreatedAt:      createdAt,
		ExpiresAt:      createdAt.Add(keygate.InvitationLifetime),
	}
}

func (e *env) createInvitation(organizationID, email string, createdAt time.Time) *keygate.Invitation {
	e.t.Helper()
	inv := e.newInvitation(organizationID, email, createdAt)
	if err := e.store.CreateInvitation(e.ctx, inv); err != nil {
		e.t.Fatalf("CreateInvitation(%s): %v", email, err)
	}
	return inv
}

func testInvitationCreateAndFind(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	inv := &keygate.Invitation{
		ID:             "inv_one",
		OrganizationID: org.ID,
		Email:          "New.Person@Example.COM",
		Role:           keygate.RoleOwner,
		Hash:           keygate.HashToken("invitation secret"),
		InvitedBy:      "usr_owner",
		CreatedAt:      e.at(-time.Hour),
		ExpiresAt:      e.at(-time.Hour + keygate.InvitationLifetime),
	}
	must(t, "CreateInvitation", e.store.CreateInvitation(e.ctx, inv))
	want := &keygate.Invitation{
		ID:             "inv_one",
		OrganizationID: org.ID,
		Email:          "new.person@example.com",
		Role:           keygate.RoleOwner,
		Hash:           keygate.HashToken("invitation secret"),
		InvitedBy:      "usr_owner",
		CreatedAt:      e.at(-time.Hour),
		ExpiresAt:      e.at(-time.Hour + keygate.InvitationLifetime),
	}
	got, err := e.store.FindInvitationByHash(e.ctx, keygate.HashToken("invitation secret"))
	must(t, "FindInvitationByHash", err)
	equal(t, "FindInvitationByHash", got, want)
	if !got.PendingAt(e.now) {
		t.Error("a new invitation is not pending")
	}

	_, err = e.store.FindInvitationByHash(e.ctx, keygate.HashToken("another secret"))
	wantCode(t, "FindInvitationByHash(unknown)", err, keygate.ENOTFOUND)
}

func testInvitationCreateFills(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	inv := e.newInvitation(org.ID, "a@example.com", time.Time{})
	inv.ID = ""
	must(t, "CreateInvitation", e.store.CreateInvitation(e.ctx, inv))
	if inv.ID == "" || inv.CreatedAt.IsZero() {
		t.Fatalf("CreateInvitation left ID %q, CreatedAt %v", inv.ID, inv.CreatedAt)
	}
	sameHash := e.newInvitation(org.ID, "b@example.com", e.now)
	sameHash.Hash = inv.Hash
	wantCode(t, "CreateInvitation(same hash)", e.store.CreateInvitation(e.ctx, sameHash), keygate.ECONFLICT)
	sameID := e.newInvitation(org.ID, "c@example.com", e.now)
	sameID.ID = inv.ID
	wantCode(t, "CreateInvitation(same id)", e.store.CreateInvitation(e.ctx, sameID), keygate.ECONFLICT)
}

func testInvitationUnknownOrganization(t *testing.T, e *env) {
	inv := e.newInvitation("org_missing", "a@example.com", e.now)
	wantCode(t, "CreateInvitation", e.store.CreateInvitation(e.ctx, inv), keygate.ENOTFOUND)
}

func testInvitationAccept(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	user := e.createUser("new@example.com")
	inv := e.createInvitation(org.ID, "new@example.com", e.now)

	got, added, err := e.store.AcceptInvitation(e.ctx, inv.Hash, user.ID, e.at(time.Minute))
	must(t, "AcceptInvitation", err)
	if !added {
		t.Error("AcceptInvitation did not report the membership added")
	}
	want := *inv
	want.AcceptedAt = ptr(e.at(time.Minute))
	want.AcceptedBy = user.ID
	equal(t, "AcceptInvitation", got, &want)
	stored, err := e.store.FindInvitationByHash(e.ctx, inv.Hash)
	must(t, "FindInvitationByHash", err)
	equal(t, "FindInvitationByHash after accept", stored, &want)
	if stored.PendingAt(e.at(time.Minute)) {
		t.Error("an accepted invitation is still pending")
	}

	ms, err := e.store.ListMemberships(e.ctx, keygate.MembershipFilter{OrganizationID: org.ID, UserID: user.ID})
	must(t, "ListMemberships", err)
	equal(t, "memberships", ms, []*keygate.Membership{{OrganizationID: org.ID, UserID: user.ID, Role: keygate.RoleMember, CreatedAt: e.at(time.Minute)}})

	// Used: refused like an unknown one, and nothing changes.
	_, _, err = e.store.AcceptInvitation(e.ctx, inv.Hash, user.ID, e.at(2*time.Minute))
	wantCode(t, "AcceptInvitation(again)", err, keygate.ENOTFOUND)
	other := e.createUser("other@example.com")
	_, _, err = e.store.AcceptInvitation(e.ctx, inv.Hash, other.ID, e.at(2*time.Minute))
	wantCode(t, "AcceptInvitation(again, another user)", err, keygate.ENOTFOUND)
	ms, err = e.store.ListMemberships(e.ctx, keygate.MembershipFilter{OrganizationID: org.ID})
	must(t, "ListMemberships", err)
	if len(ms) != 1 {
		t.Errorf("%d memberships after a reused invitation, want 1", len(ms))
	}
	_, _, err = e.store.AcceptInvitation(e.ctx, keygate.HashToken("unknown"), user.ID, e.now)
	wantCode(t, "AcceptInvitation(unknown)", err, keygate.ENOTFOUND)
}

func testInvitationAcceptExistingMember(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	user := e.createUser("member@example.com")
	must(t, "SetMembership", e.store.SetMembership(e.ctx, &keygate.Membership{
		OrganizationID: org.ID, UserID: user.ID, Role: keygate.RoleMember, CreatedAt: e.at(-time.Hour)}))
	inv := e.newInvitation(org.ID, "member@example.com", e.now)
	inv.Role = keygate.RoleOwner
	must(t, "CreateInvitation", e.store.CreateInvitation(e.ctx, inv))

	got, added, err := e.store.AcceptInvitation(e.ctx, inv.Hash, user.ID, e.at(time.Minute))
	must(t, "AcceptInvitation", err)
	if added || got.AcceptedAt == nil {
		t.Errorf("AcceptInvitation by a member: added %v, accepted at %v; want false and a time", added, got.AcceptedAt)
	}
	ms, err := e.store.ListMemberships(e.ctx, keygate.MembershipFilter{OrganizationID: org.ID})
	must(t, "ListMemberships", err)
	equal(t, "memberships", ms, []*keygate.Membership{{OrganizationID: org.ID, UserID: user.ID, Role: keygate.RoleMember, CreatedAt: e.at(-time.Hour)}})
}

func testInvitationAcceptUnknownUser(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	inv := e.createInvitation(org.ID, "new@example.com", e.now)
	_, _, err := e.store.AcceptInvitation(e.ctx, inv.Hash, "usr_missing", e.at(time.Minute))
	wantCode(t, "AcceptInvitation", err, keygate.ENOTFOUND)
	got, err := e.store.FindInvitationByHash(e.ctx, inv.Hash)
	must(t, "FindInvitationByHash", err)
	if !got.PendingAt(e.at(time.Minute)) {
		t.Error("a refused accept used the invitation up")
	}
}

// Two accepts of one invitation at once, through separate handles: exactly
// one wins, and the user becomes a member once. Races depend on timing, so
// it runs several rounds.
func testInvitationConcurrentAccept(t *testing.T, e *env) {
	stores := []keygate.Store{e.store, e.open()}
	for round := range 10 {
		org := e.createOrganization(fmt.Sprintf("race-%d", round))
		a := e.createUser(fmt.Sprintf("a%d@example.com", round))
		b := e.createUser(fmt.Sprintf("b%d@example.com", round))
		inv := e.createInvitation(org.ID, a.Email, e.now)
		users := []string{a.ID, b.ID}
		errs := make([]error, 2)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				<-start
				_, _, errs[i] = stores[i].AcceptInvitation(e.ctx, inv.Hash, users[i], e.at(time.Minute))
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch keygate.ErrorCode(err) {
			case "":
				won++
			case keygate.ENOTFOUND:
			default:
				t.Errorf("round %d: accept %d failed with %v, want success or ENOTFOUND", round, i, err)
			}
		}
		ms, err := e.store.ListMemberships(e.ctx, keygate.MembershipFilter{OrganizationID: org.ID})
		must(t, "ListMemberships", err)
		if won != 1 || len(ms) != 1 {
			t.Fatalf("round %d: %d of 2 concurrent accepts won, %d memberships; want 1 and 1", round, won, len(ms))
		}
	}
}

func testInvitationRevoke(t *testing.T, e *env) {
	acme, globex := e.createOrganization("acme"), e.createOrganization("globex")
	user := e.createUser("new@example.com")
	inv := e.createInvitation(acme.ID, user.Email, e.now)

	wantCode(t, "RevokeInvitation(other organization)", e.store.RevokeInvitation(e.ctx, globex.ID, inv.ID, e.now), keygate.ENOTFOUND)
	wantCode(t, "RevokeInvitation(unknown)", e.store.RevokeInvitation(e.ctx, acme.ID, "inv_missing", e.now), keygate.ENOTFOUND)
	must(t, "RevokeInvitation", e.store.RevokeInvitation(e.ctx, acme.ID, inv.ID, e.at(time.Minute)))
	got, err := e.store.FindInvitationByHash(e.ctx, inv.Hash)
	must(t, "FindInvitationByHash", err)
	if got.RevokedAt == nil || !got.RevokedAt.Equal(e.at(time.Minute)) || got.PendingAt(e.at(time.Minute)) {
		t.Errorf("revoked invitation: RevokedAt %v, pending %v", got.RevokedAt, got.PendingAt(e.at(time.Minute)))
	}
	wantCode(t, "RevokeInvitation(again)", e.store.RevokeInvitation(e.ctx, acme.ID, inv.ID, e.now), keygate.ENOTFOUND)
	_, _, err = e.store.AcceptInvitation(e.ctx, inv.Hash, user.ID, e.at(2*time.Minute))
	wantCode(t, "AcceptInvitation(revoked)", err, keygate.ENOTFOUND)

	accepted := e.createInvitation(acme.ID, user.Email, e.now)
	_, _, err = e.store.AcceptInvitation(e.ctx, accepted.Hash, user.ID, e.at(time.Minute))
	must(t, "AcceptInvitation", err)
	wantCode(t, "RevokeInvitation(accepted)", e.store.RevokeInvitation(e.ctx, acme.ID, accepted.ID, e.at(2*time.Minute)), keygate.ENOTFOUND)
}

func testInvitationExpiry(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	user := e.createUser("new@example.com")
	inv := e.createInvitation(org.ID, user.Email, e.now)
	_, _, err := e.store.AcceptInvitation(e.ctx, inv.Hash, user.ID, inv.ExpiresAt)
	wantCode(t, "AcceptInvitation(at expiry)", err, keygate.ENOTFOUND)
	_, _, err = e.store.AcceptInvitation(e.ctx, inv.Hash, user.ID, inv.ExpiresAt.Add(time.Hour))
	wantCode(t, "AcceptInvitation(after expiry)", err, keygate.ENOTFOUND)
	ms, err := e.store.ListMemberships(e.ctx, keygate.MembershipFilter{OrganizationID: org.ID})
	must(t, "ListMemberships", err)
	if len(ms) != 0 {
		t.Errorf("%d memberships after expired accepts, want 0", len(ms))
	}
	_, _, err = e.store.AcceptInvitation(e.ctx, inv.Hash, user.ID, inv.ExpiresAt.Add(-time.Millisecond))
	must(t, "AcceptInvitation(just before expiry)", err)
}

func testInvitationList(t *testing.T, e *env) {
	acme, globex := e.createOrganization("acme"), e.createOrganization("globex")
	user := e.createUser("used@example.com")
	old := e.createInvitation(acme.ID, "old@example.com", e.at(-keygate.InvitationLifetime-time.Hour)) // expired
	used := e.createInvitation(acme.ID, user.Email, e.at(-3*time.Hour))
	revoked := e.createInvitation(acme.ID, "revoked@example.com", e.at(-2*time.Hour))
	first := e.createInvitation(acme.ID, "first@example.com", e.at(-time.Hour))
	second := e.createInvitation(acme.ID, "second@example.com", e.at(-time.Hour)) // same time, stored later
	theirs := e.createInvitation(globex.ID, "theirs@example.com", e.at(-time.Hour))
	_, _, err := e.store.AcceptInvitation(e.ctx, used.Hash, user.ID, e.now)
	must(t, "AcceptInvitation", err)
	must(t, "RevokeInvitation", e.store.RevokeInvitation(e.ctx, acme.ID, revoked.ID, e.now))

	ids := func(list []*keygate.Invitation) []string {
		out := []string{}
		for _, inv := range list {
			out = append(out, inv.ID)
		}
		return out
	}
	pending, err := e.store.ListInvitations(e.ctx, keygate.InvitationFilter{OrganizationID: acme.ID, PendingAt: e.now})
	must(t, "ListInvitations(pending)", err)
	equal(t, "ListInvitations(acme, pending)", ids(pending), []string{second.ID, first.ID})
	all, err := e.store.ListInvitations(e.ctx, keygate.InvitationFilter{OrganizationID: acme.ID})
	must(t, "ListInvitations(all)", err)
	equal(t, "ListInvitations(acme)", ids(all), []string{second.ID, first.ID, revoked.ID, used.ID, old.ID})
	everything, err := e.store.ListInvitations(e.ctx, keygate.InvitationFilter{PendingAt: e.now})
	must(t, "ListInvitations(every organization)", err)
	equal(t, "ListInvitations(pending anywhere)", ids(everything), []string{theirs.ID, second.ID, first.ID})
	recent, err := e.store.ListInvitations(e.ctx, keygate.InvitationFilter{OrganizationID: acme.ID, CreatedSince: e.at(-2 * time.Hour)})
	must(t, "ListInvitations(created since)", err)
	equal(t, "ListInvitations(acme, created in the last 2 hours)", ids(recent), []string{second.ID, first.ID, revoked.ID})
	recentPending, err := e.store.ListInvitations(e.ctx, keygate.InvitationFilter{OrganizationID: acme.ID, PendingAt: e.now, CreatedSince: e.at(-2 * time.Hour)})
	must(t, "ListInvitations(pending, created since)", err)
	equal(t, "ListInvitations(acme, pending, created in the last 2 hours)", ids(recentPending), []string{second.ID, first.ID})
}

func testInvitationOrganizationDeleted(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	user := e.createUser("new@example.com")
	inv := e.createInvitation(org.ID, user.Email, e.now)
	must(t, "DeleteOrganization", e.store.DeleteOrganization(e.ctx, org.ID))
	_, _, err := e.store.AcceptInvitation(e.ctx, inv.Hash, user.ID, e.at(time.Minute))
	wantCode(t, "AcceptInvitation(organization deleted)", err, keygate.ENOTFOUND)
	list, err := e.store.ListInvitations(e.ctx, keygate.InvitationFilter{OrganizationID: org.ID})
	must(t, "ListInvitations", err)
	if len(list) != 0 {
		t.Errorf("%d invitations of a deleted organization, want 0", len(list))
	}
}
