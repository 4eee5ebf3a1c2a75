package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/keygate/keygate"
)

// An organization's owners get a site administrator's entries with
// site_admin set and no address or user agent; site administrators and
// admin keys get them whole; the owner's own entries keep theirs.
func TestAuditLogHidesSiteAdministratorsAddressFromOwners(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	siteAdmin := keygate.Actor{Type: keygate.ActorUser, ID: f.sys.ID, Name: f.sys.Email, SiteAdmin: true,
		Address: "198.51.100.7", UserAgent: "AdminBrowser/1.0"}
	owner := keygate.Actor{Type: keygate.ActorUser, ID: f.owner.ID, Name: f.owner.Email,
		Address: "203.0.113.9", UserAgent: "OwnerBrowser/1.0"}
	for _, a := range []keygate.Actor{siteAdmin, owner} {
		if err := f.store.AppendAuditEntry(ctx, &keygate.AuditEntry{Action: keygate.AuditTokenCreated,
			OrganizationID: f.acme.ID, TargetID: "tok_1", Actor: a}); err != nil {
			t.Fatal(err)
		}
	}
	actors := func(c caller) []keygate.Actor {
		t.Helper()
		var page struct {
			Entries []struct {
				Actor keygate.Actor `json:"actor"`
			} `json:"entries"`
		}
		f.do(c, "GET", "/api/v1/orgs/acme/audit-log", "").expect(http.StatusOK, &page)
		var out []keygate.Actor
		for _, e := range page.Entries {
			out = append(out, e.Actor)
		}
		return out
	}
	hidden := siteAdmin
	hidden.Address, hidden.UserAgent = "", ""
	for name, tc := range map[string]struct {
		c    caller
		want []keygate.Actor
	}{
		"owner":      {f.login(f.owner), []keygate.Actor{owner, hidden}},
		"site admin": {f.login(f.sys), []keygate.Actor{owner, siteAdmin}},
		"admin key":  {f.key(), []keygate.Actor{owner, siteAdmin}},
	} {
		got := actors(tc.c)
		if len(got) != len(tc.want) || got[0] != tc.want[0] || got[1] != tc.want[1] {
			t.Errorf("%s sees actors %+v, want %+v", name, got, tc.want)
		}
	}
}
