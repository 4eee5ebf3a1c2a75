package manage_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/sqlite"
)

func invitationStore(t *testing.T) (*sqlite.Store, *keygate.Organization) {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	org := &keygate.Organization{ID: keygate.NewID("org"), Slug: "acme"}
	if err := manage.CreateOrganization(ctx, store, org, time.Now()); err != nil {
		t.Fatal(err)
	}
	return store, org
}

// An invitation is accepted only by the account of the invited address as
// keygate stores addresses (lower-cased), never by one that merely folds
// to it under Unicode's case rules: "ſam" (long s) is another mailbox
// than "sam", and so are the Kelvin sign and "k", micro and mu.
func TestInvitationIsAcceptedOnlyByTheInvitedAddress(t *testing.T) {
	ctx := context.Background()
	store, org := invitationStore(t)
	now := time.Now()
	for _, c := range []struct{ invited, other string }{
		{"sam@example.com", "ſam@example.com"},
		{"mu@example.com", "µu@example.com"},
		{"μx@example.com", "µx@example.com"},
	} {
		other, err := manage.CreateUser(ctx, store, manage.NewUser{Email: c.other, Password: "correct horse battery"}, now)
		if err != nil {
			t.Fatalf("account %q: %v", c.other, err)
		}
		if other.Email == c.invited {
			t.Fatalf("account %q stored as %q", c.other, other.Email)
		}
		created, err := manage.Invitations{Store: store}.Invite(ctx, manage.Caller{}, org,
			manage.NewInvitation{Email: c.invited, Role: keygate.RoleMember}, "http://keygate.test", now)
		if err != nil {
			t.Fatal(err)
		}
		secret := created.Link[strings.LastIndexByte(created.Link, '/')+1:]
		_, _, err = manage.AcceptInvitation(ctx, store, other, secret, now)
		if keygate.ErrorCode(err) != keygate.EFORBIDDEN {
			t.Errorf("invitation to %q accepted by %q: %v, want EFORBIDDEN", c.invited, other.Email, err)
		}
		if _, err := manage.DeclineInvitation(ctx, store, other, secret, now); keygate.ErrorCode(err) != keygate.EFORBIDDEN {
			t.Errorf("invitation to %q declined by %q: %v, want EFORBIDDEN", c.invited, other.Email, err)
		}
		ms, err := store.ListMemberships(ctx, keygate.MembershipFilter{OrganizationID: org.ID, UserID: other.ID})
		if err != nil || len(ms) != 0 {
			t.Errorf("%q's memberships: %v, %v", other.Email, ms, err)
		}
	}

	// The invited address itself, typed in any ASCII case, accepts.
	sam, err := manage.CreateUser(ctx, store, manage.NewUser{Email: "Sam@Example.COM", Password: "correct horse battery"}, now)
	if err != nil {
		t.Fatal(err)
	}
	created, err := manage.Invitations{Store: store}.Invite(ctx, manage.Caller{}, org,
		manage.NewInvitation{Email: " SAM@example.com", Role: keygate.RoleMember}, "http://keygate.test", now)
	if err != nil {
		t.Fatal(err)
	}
	secret := created.Link[strings.LastIndexByte(created.Link, '/')+1:]
	if _, added, err := manage.AcceptInvitation(ctx, store, sam, secret, now); err != nil || !added {
		t.Errorf("the invited address: added %v, %v", added, err)
	}
}

// An owner invites at most MaxInvitationsPerDay people a day, and the same
// email at most MaxInvitationsPerEmailPerDay times: every invitation may be
// an email keygate sends, so without a bound an owner could fill the
// outbox and the database, or flood one inbox by inviting it again and
// again (each new invitation revokes the last and sends a new link).
// Invitations sent at once count as exactly that many. Site
// administrators, who run keygate, are not limited.
func TestInvitationsPerOrganizationAreBounded(t *testing.T) {
	ctx := context.Background()
	store, org := invitationStore(t)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	owner, err := manage.CreateUser(ctx, store, manage.NewUser{Email: "owner@example.com", Password: "correct horse battery"}, now)
	if err != nil {
		t.Fatal(err)
	}
	invitations := manage.Invitations{Store: store}
	invite := func(c manage.Caller, email string, at time.Time) error {
		_, err := invitations.Invite(ctx, c, org, manage.NewInvitation{Email: email, Role: keygate.RoleMember}, "http://keygate.test", at)
		return err
	}
	byOwner := manage.Caller{User: owner}

	// One inbox, again and again.
	for i := range manage.MaxInvitationsPerEmailPerDay {
		if err := invite(byOwner, "victim@example.com", now.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatalf("invitation %d of one email: %v", i+1, err)
		}
	}
	err = invite(byOwner, "Victim@Example.com", now.Add(time.Hour))
	if keygate.ErrorCode(err) != keygate.ECONFLICT || keygate.ErrorMessage(err) != fmt.Sprintf(
		"victim@example.com was invited %d times in the last 24 hours, the most allowed; its latest link still works. Try again tomorrow.", manage.MaxInvitationsPerEmailPerDay) {
		t.Fatalf("one more invitation of one email: %v", err)
	}

	// Many inboxes, all at once.
	var wg sync.WaitGroup
	errs := make(chan error, manage.MaxInvitationsPerDay+50)
	for i := range manage.MaxInvitationsPerDay + 50 {
		wg.Go(func() { errs <- invite(byOwner, fmt.Sprintf("person%d@example.com", i), now.Add(2*time.Hour)) })
	}
	wg.Wait()
	close(errs)
	codes := map[string]int{}
	for err := range errs {
		codes[keygate.ErrorCode(err)]++
	}
	wantCreated := manage.MaxInvitationsPerDay - manage.MaxInvitationsPerEmailPerDay
	if codes[""] != wantCreated || codes[keygate.ECONFLICT] != 50+manage.MaxInvitationsPerEmailPerDay {
		t.Fatalf("%d invitations at once after %d: %v, want %d created and the rest refused", manage.MaxInvitationsPerDay+50,
			manage.MaxInvitationsPerEmailPerDay, codes, wantCreated)
	}
	err = invite(byOwner, "late@example.com", now.Add(3*time.Hour))
	if keygate.ErrorCode(err) != keygate.ECONFLICT || keygate.ErrorMessage(err) != fmt.Sprintf(
		"This organization sent %d invitations in the last 24 hours, the most allowed. Try again later, or ask a site administrator.", manage.MaxInvitationsPerDay) {
		t.Fatalf("invitation past the daily bound: %v", err)
	}
	all, err := store.ListInvitations(ctx, keygate.InvitationFilter{OrganizationID: org.ID})
	if err != nil || len(all) != manage.MaxInvitationsPerDay {
		t.Fatalf("%d invitations stored (%v), want %d", len(all), err, manage.MaxInvitationsPerDay)
	}

	// A site administrator is not limited; the owner is again a day later.
	admin, err := manage.CreateUser(ctx, store, manage.NewUser{Email: "admin@example.com", Password: "correct horse battery", IsAdmin: true}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := invite(manage.Caller{User: admin}, "victim@example.com", now.Add(4*time.Hour)); err != nil {
		t.Errorf("a site administrator's invitation: %v", err)
	}
	if err := invite(manage.Caller{}, "cli@example.com", now.Add(4*time.Hour)); err != nil {
		t.Errorf("the CLI's invitation: %v", err)
	}
	if err := invite(byOwner, "victim@example.com", now.Add(24*time.Hour+5*time.Minute)); err != nil {
		t.Errorf("the owner's invitation a day later: %v", err)
	}
}

// The name chosen when an invitation's link creates the account is shown
// to other people (in the emails the new user's invitations send, on
// pages, in the CLI's lists): it may not hold line breaks, escapes or
// marks that reorder text, and nothing is created when it does.
func TestInvitationAccountNameHoldsNoHiddenCharacters(t *testing.T) {
	ctx := context.Background()
	store, org := invitationStore(t)
	now := time.Now()
	created, err := manage.Invitations{Store: store}.Invite(ctx, manage.Caller{}, org,
		manage.NewInvitation{Email: "new@example.com", Role: keygate.RoleOwner}, "http://keygate.test", now)
	if err != nil {
		t.Fatal(err)
	}
	secret := created.Link[strings.LastIndexByte(created.Link, '/')+1:]
	for _, name := range []string{
		"Ann\r\n\r\nYour keygate password expired: reset it at https://evil.example/",
		"Ann\x1b]8;;https://evil.example/\x1b\\",
		"Ann \u202eevil",
	} {
		_, _, err := manage.AcceptInvitationAsNewUser(ctx, store, secret, name, "correct horse battery", now)
		if keygate.ErrorCode(err) != keygate.EINVALID || keygate.ErrorMessage(err) != "Name must not hold control characters (line breaks, tabs, escapes) or marks that reorder text." {
			t.Errorf("account named %q: %v", name, err)
		}
	}
	if _, err := store.FindUserByEmail(ctx, "new@example.com"); keygate.ErrorCode(err) != keygate.ENOTFOUND {
		t.Fatalf("an account was created: %v", err)
	}
	if _, _, err := manage.AcceptInvitationAsNewUser(ctx, store, secret, "Ann Ünal", "correct horse battery", now); err != nil {
		t.Errorf("a plain name: %v", err)
	}
}

// An owner removed from an organization, or made a member, leaves no
// pending invitation behind: otherwise an owner about to be removed could
// invite an address of their own as an owner and come back through it
// after the removal. Other owners' invitations stay.
func TestInvitationsOfAnOwnerRemovedOrDemotedAreRevoked(t *testing.T) {
	ctx := context.Background()
	store, org := invitationStore(t)
	now := time.Now()
	user := func(email string) *keygate.User {
		u, err := manage.CreateUser(ctx, store, manage.NewUser{Email: email, Password: "correct horse battery"}, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.SetMembership(ctx, &keygate.Membership{OrganizationID: org.ID, UserID: u.ID, Role: keygate.RoleOwner, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		return u
	}
	ann, mallory, eve := user("ann@example.com"), user("mallory@example.com"), user("eve@example.com")
	invite := func(by *keygate.User, email string) string {
		created, err := manage.Invitations{Store: store}.Invite(ctx, manage.Caller{User: by}, org,
			manage.NewInvitation{Email: email, Role: keygate.RoleOwner}, "http://keygate.test", now)
		if err != nil {
			t.Fatal(err)
		}
		return created.Link[strings.LastIndexByte(created.Link, '/')+1:]
	}
	annsInvitation := invite(ann, "bob@example.com")
	mallorysInvitation := invite(mallory, "mallory.again@example.net")
	evesInvitation := invite(eve, "eve.again@example.net")

	if err := manage.RemoveMember(ctx, store, org, mallory.ID, now); err != nil {
		t.Fatal(err)
	}
	if _, err := manage.SetRole(ctx, store, org, eve.ID, keygate.RoleMember, now); err != nil {
		t.Fatal(err)
	}
	for name, secret := range map[string]string{"the removed owner's": mallorysInvitation, "the demoted owner's": evesInvitation} {
		if _, err := manage.FindInvitation(ctx, store, secret, now); keygate.ErrorCode(err) != keygate.ENOTFOUND {
			t.Errorf("%s invitation still opens: %v", name, err)
		}
	}
	if _, err := manage.FindInvitation(ctx, store, annsInvitation, now); err != nil {
		t.Errorf("another owner's invitation: %v", err)
	}
}
