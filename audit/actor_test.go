package audit_test

import (
	"maps"
	"path/filepath"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/sqlite"
)

// An entry records whether its actor acted as a site administrator: a user
// who is one, or an admin key; not another user.
func TestEntriesRecordSiteAdministrators(t *testing.T) {
	ctx := t.Context()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	log := &audit.Log{Store: store}
	log.Record(audit.AsUser(ctx, &keygate.User{ID: "usr_root", Email: "root@keygate.test", IsAdmin: true}),
		keygate.AuditPlanChanged, "org_a", "org_a", nil)
	log.Record(audit.AsUser(ctx, &keygate.User{ID: "usr_ann", Email: "ann@acme.test"}),
		keygate.AuditTokenCreated, "org_a", "tok_1", nil)
	log.Record(audit.AsAdminKey(ctx, &keygate.AdminKey{ID: "adk_ci", Name: "ci"}),
		keygate.AuditTokenDeleted, "org_a", "tok_1", nil)

	entries, err := store.ListAuditEntries(ctx, keygate.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range entries {
		got[e.Actor.ID] = e.Actor.SiteAdmin
	}
	want := map[string]bool{"usr_root": true, "usr_ann": false, "adk_ci": true}
	if !maps.Equal(got, want) {
		t.Errorf("site administrator per actor %v, want %v", got, want)
	}
}
