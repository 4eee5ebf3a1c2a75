package dashboard_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

// Owners read the organization's audit log, filtered and in pages; members
// may not; other organizations' entries never show.
func TestAuditLogPageForOwners(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for i, action := range []string{keygate.AuditTokenCreated, keygate.AuditMemberAdded, keygate.AuditTokenDeleted} {
		e := &keygate.AuditEntry{Action: action, OrganizationID: f.acme.ID, TargetID: "tok_" + action,
			At:    time.Now().Add(time.Duration(i) * time.Second),
			Actor: keygate.Actor{Type: keygate.ActorUser, Name: "ann@acme.test", Address: "203.0.113.9"}, Details: json.RawMessage(`{"name":"Prod"}`)}
		if err := f.store.AppendAuditEntry(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.store.AppendAuditEntry(ctx, &keygate.AuditEntry{Action: keygate.AuditTokenCreated, OrganizationID: "org_other",
		TargetID: "tok_elsewhere", Actor: keygate.Actor{Type: keygate.ActorSystem}}); err != nil {
		t.Fatal(err)
	}
	b := f.browser()
	b.login(f.owner)
	b.get("/orgs/acme/tokens").expect(t, http.StatusOK, `href="/orgs/acme/audit-log"`)
	b.get("/orgs/acme/audit-log").expect(t, http.StatusOK, "tok_token.created", "tok_member.added", "203.0.113.9", "user: ann@acme.test").
		lacks(t, "tok_elsewhere")
	b.get("/orgs/acme/audit-log?action=member.added").expect(t, http.StatusOK, "tok_member.added").lacks(t, "tok_token.created")
	b.get("/orgs/acme/audit-log?from=not-a-date").expect(t, http.StatusBadRequest, "from must be a date")

	m := f.browser()
	m.login(f.member)
	m.get("/orgs/acme/tokens").expect(t, http.StatusOK).lacks(t, `href="/orgs/acme/audit-log"`)
	m.get("/orgs/acme/audit-log").expect(t, http.StatusForbidden).lacks(t, "tok_token.created")
}

// A site administrator's entries show to the organization's owners as a
// site administrator's, without the address and user agent it acted
// from; site administrators still see them whole, and an owner's own
// address stays on its entries.
func TestAuditLogPageHidesSiteAdministratorsAddress(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, e := range []*keygate.AuditEntry{
		{Action: keygate.AuditPlanChanged, OrganizationID: f.acme.ID, TargetID: "org_plan",
			Actor: keygate.Actor{Type: keygate.ActorUser, ID: f.sys.ID, Name: f.sys.Email, SiteAdmin: true,
				Address: "198.51.100.7", UserAgent: "AdminBrowser/1.0"}},
		{Action: keygate.AuditTokenCreated, OrganizationID: f.acme.ID, TargetID: "tok_owner",
			Actor: keygate.Actor{Type: keygate.ActorUser, ID: f.owner.ID, Name: f.owner.Email,
				Address: "203.0.113.9", UserAgent: "OwnerBrowser/1.0"}},
	} {
		if err := f.store.AppendAuditEntry(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	owner := f.browser()
	owner.login(f.owner)
	owner.get("/orgs/acme/audit-log").expect(t, http.StatusOK,
		"user: root@keygate.test <span class=\"muted\">(site administrator)</span>",
		"203.0.113.9", "OwnerBrowser/1.0").
		lacks(t, "198.51.100.7", "AdminBrowser/1.0")

	admin := f.browser()
	admin.login(f.sys)
	admin.get("/orgs/acme/audit-log").expect(t, http.StatusOK,
		"(site administrator)", "198.51.100.7", "AdminBrowser/1.0", "203.0.113.9", "OwnerBrowser/1.0")
}
