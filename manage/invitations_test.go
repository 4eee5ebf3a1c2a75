package manage_test

import (
	"context"
	"path/filepath"
	"strings"
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
