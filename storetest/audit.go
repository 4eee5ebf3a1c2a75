package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

var auditTests = []test{
	{"AppendAndList", testAuditAppendAndList},
	{"AdminKeyIsASiteAdministrator", testAuditAdminKeyIsASiteAdministrator},
	{"Filters", testAuditFilters},
	{"ActorFoldsASCIIOnly", testAuditActorFoldsASCIIOnly},
	{"CursorPages", testAuditCursor},
	{"Purge", testAuditPurge},
}

func (e *env) appendAudit(s keygate.Store, action, org, actorName string, at time.Time) *keygate.AuditEntry {
	e.t.Helper()
	entry := &keygate.AuditEntry{
		At: at, Action: action, OrganizationID: org, TargetID: "tok_1",
		Actor:   keygate.Actor{Type: keygate.ActorUser, ID: "usr_" + actorName, Name: actorName, Address: "203.0.113.9", UserAgent: "curl/8"},
		Details: json.RawMessage(`{"name":"Production"}`),
	}
	must(e.t, "AppendAuditEntry", s.AppendAuditEntry(e.ctx, entry))
	return entry
}

func testAuditAppendAndList(t *testing.T, e *env) {
	first := e.appendAudit(e.store, keygate.AuditTokenCreated, "org_a", "ann@acme.test", e.at(-time.Minute))
	// Another handle, as another instance.
	second := e.appendAudit(e.open(), keygate.AuditTokenDeleted, "org_a", "ann@acme.test", e.now)
	if first.ID == "" || first.Seq <= 0 || second.Seq <= first.Seq {
		t.Fatalf("ids and seqs: %q %d, %q %d; want set and increasing", first.ID, first.Seq, second.ID, second.Seq)
	}
	noDetails := &keygate.AuditEntry{Action: keygate.AuditLoginFailed, Actor: keygate.Actor{Type: keygate.ActorSystem}}
	must(t, "AppendAuditEntry without details or time", e.store.AppendAuditEntry(e.ctx, noDetails))
	if noDetails.At.IsZero() {
		t.Error("a zero At was not filled in")
	}

	got, err := e.store.ListAuditEntries(e.ctx, keygate.AuditFilter{})
	must(t, "ListAuditEntries", err)
	if len(got) != 3 || got[0].ID != noDetails.ID || got[1].ID != second.ID || got[2].ID != first.ID {
		t.Fatalf("ListAuditEntries = %d entries, want the three newest first", len(got))
	}
	var details map[string]any
	if err := json.Unmarshal(got[2].Details, &details); err != nil || details["name"] != "Production" {
		t.Errorf("details %s, %v", got[2].Details, err)
	}
	if string(got[0].Details) != "{}" {
		t.Errorf("empty details read back as %q, want {}", got[0].Details)
	}
	got[2].Details = first.Details
	equal(t, "first entry", got[2], first)

	byAdmin := &keygate.AuditEntry{Action: keygate.AuditPlanChanged, OrganizationID: "org_a",
		Actor: keygate.Actor{Type: keygate.ActorAdminKey, ID: "adk_ci", Name: "ci", SiteAdmin: true, Address: "198.51.100.7"}}
	must(t, "AppendAuditEntry by a site administrator", e.store.AppendAuditEntry(e.ctx, byAdmin))
	got, err = e.store.ListAuditEntries(e.ctx, keygate.AuditFilter{Limit: 1})
	must(t, "ListAuditEntries", err)
	equal(t, "site administrator's actor", got[0].Actor, byAdmin.Actor)
}

// An admin key acts as a site administrator, also in the entries stored
// before actor_site_admin existed, which all carry false: read back, such
// an entry is a site administrator's, so an organization's owners do not
// see the key's address and user agent. A user's old entry stays as
// stored: whether the user was a site administrator then is not known.
func testAuditAdminKeyIsASiteAdministrator(t *testing.T, e *env) {
	old := func(typ, id string) *keygate.AuditEntry {
		return &keygate.AuditEntry{Action: keygate.AuditTokenDeleted, OrganizationID: "org_a", TargetID: "tok_1",
			Actor: keygate.Actor{Type: typ, ID: id, Address: "198.51.100.7", UserAgent: "ci/1"}}
	}
	byKey, byUser := old(keygate.ActorAdminKey, "adk_ci"), old(keygate.ActorUser, "usr_ann")
	must(t, "AppendAuditEntry", e.store.AppendAuditEntry(e.ctx, byKey))
	must(t, "AppendAuditEntry", e.store.AppendAuditEntry(e.ctx, byUser))
	got, err := e.store.ListAuditEntries(e.ctx, keygate.AuditFilter{})
	must(t, "ListAuditEntries", err)
	if len(got) != 2 {
		t.Fatalf("ListAuditEntries = %d entries, want 2", len(got))
	}
	if a := got[1].Actor; a.ID != "adk_ci" || !a.SiteAdmin || a.ForOrganization().Address != "" {
		t.Errorf("an admin key's entry stored as not a site administrator's reads back as %+v; want a site administrator's", a)
	}
	if a := got[0].Actor; a.ID != "usr_ann" || a.SiteAdmin {
		t.Errorf("a user's entry stored as not a site administrator's reads back as %+v", a)
	}
}

func testAuditFilters(t *testing.T, e *env) {
	a := e.appendAudit(e.store, keygate.AuditTokenCreated, "org_a", "ann@acme.test", e.at(-2*time.Hour))
	b := e.appendAudit(e.store, keygate.AuditTokenDeleted, "org_a", "bob@acme.test", e.at(-time.Hour))
	c := e.appendAudit(e.store, keygate.AuditTokenCreated, "org_b", "ann@acme.test", e.now)
	site := e.appendAudit(e.store, keygate.AuditAdminKeyCreated, "", "ci", e.now)
	ids := func(f keygate.AuditFilter) []string {
		t.Helper()
		got, err := e.store.ListAuditEntries(e.ctx, f)
		must(t, "ListAuditEntries", err)
		out := []string{}
		for _, g := range got {
			out = append(out, g.ID)
		}
		return out
	}
	equal(t, "organization", ids(keygate.AuditFilter{OrganizationID: "org_a"}), []string{b.ID, a.ID})
	equal(t, "action", ids(keygate.AuditFilter{Action: keygate.AuditTokenCreated}), []string{c.ID, a.ID})
	equal(t, "actor by email, any case", ids(keygate.AuditFilter{Actor: "ANN@acme.test"}), []string{c.ID, a.ID})
	equal(t, "actor by id", ids(keygate.AuditFilter{Actor: "usr_bob@acme.test"}), []string{b.ID})
	equal(t, "actor by key name", ids(keygate.AuditFilter{Actor: "ci"}), []string{site.ID})
	equal(t, "from", ids(keygate.AuditFilter{From: e.at(-time.Hour)}), []string{site.ID, c.ID, b.ID})
	equal(t, "to", ids(keygate.AuditFilter{To: e.at(-time.Hour)}), []string{a.ID})
	equal(t, "everything at once", ids(keygate.AuditFilter{OrganizationID: "org_a", Action: keygate.AuditTokenDeleted,
		Actor: "bob@acme.test", From: e.at(-90 * time.Minute), To: e.now}), []string{b.ID})
	equal(t, "nothing matches", ids(keygate.AuditFilter{OrganizationID: "org_c"}), []string{})
}

// The actor filter folds ASCII letters and nothing else, on every store:
// PostgreSQL's lower() would fold Ü to ü under the database's collation
// while SQLite's does not. An email is normalized as sign-in normalizes it
// before the comparison, so it still matches in any case.
func testAuditActorFoldsASCIIOnly(t *testing.T, e *env) {
	byKey := func(name string) *keygate.AuditEntry {
		t.Helper()
		entry := &keygate.AuditEntry{Action: keygate.AuditAdminKeyCreated,
			Actor: keygate.Actor{Type: keygate.ActorAdminKey, ID: keygate.NewID("adk"), Name: name}}
		must(t, "AppendAuditEntry", e.store.AppendAuditEntry(e.ctx, entry))
		return entry
	}
	unal := byKey("Ünal")
	strasse := byKey("straße")
	email := e.appendAudit(e.store, keygate.AuditTokenCreated, "org_a", "ünal@acme.test", e.now)
	for _, tc := range []struct {
		actor string
		want  []string
	}{
		{"Ünal", []string{unal.ID}},
		{"ÜNAL", []string{unal.ID}},
		{"ünal", []string{}},
		{"STRAßE", []string{strasse.ID}},
		{"STRASSE", []string{}},
		{"strasse", []string{}},
		{"ünal@acme.test", []string{email.ID}},
		{"ÜNAL@ACME.TEST", []string{email.ID}},
	} {
		got, err := e.store.ListAuditEntries(e.ctx, keygate.AuditFilter{Actor: tc.actor})
		must(t, "ListAuditEntries", err)
		ids := []string{}
		for _, g := range got {
			ids = append(ids, g.ID)
		}
		equal(t, "actor "+tc.actor, ids, tc.want)
	}
}

func testAuditCursor(t *testing.T, e *env) {
	var all []*keygate.AuditEntry
	for i := range 7 {
		all = append(all, e.appendAudit(e.store, keygate.AuditTokenCreated, "org_a", "ann@acme.test", e.at(time.Duration(i)*time.Second)))
	}
	var seen []string
	f := keygate.AuditFilter{OrganizationID: "org_a", Limit: 3}
	for page := 0; ; page++ {
		got, err := e.store.ListAuditEntries(e.ctx, f)
		must(t, "ListAuditEntries", err)
		if len(got) == 0 {
			break
		}
		if len(got) > 3 || page > 3 {
			t.Fatalf("page %d has %d entries", page, len(got))
		}
		for _, g := range got {
			seen = append(seen, g.ID)
		}
		f.Before = got[len(got)-1].Seq
	}
	want := []string{}
	for i := len(all) - 1; i >= 0; i-- {
		want = append(want, all[i].ID)
	}
	equal(t, "entries over every page", seen, want)

	big, err := e.store.ListAuditEntries(e.ctx, keygate.AuditFilter{Limit: 10 * keygate.MaxAuditPage})
	must(t, "ListAuditEntries with a big limit", err)
	if len(big) != 7 {
		t.Errorf("got %d entries", len(big))
	}
}

func testAuditPurge(t *testing.T, e *env) {
	old := e.appendAudit(e.store, keygate.AuditTokenCreated, "org_a", "ann@acme.test", e.at(-400*24*time.Hour))
	keep := e.appendAudit(e.store, keygate.AuditTokenCreated, "org_a", "ann@acme.test", e.at(-300*24*time.Hour))
	n, err := e.store.PurgeAuditEntries(e.ctx, e.at(-365*24*time.Hour))
	must(t, "PurgeAuditEntries", err)
	if n != 1 {
		t.Errorf("purged %d entries, want 1 (%s)", n, old.ID)
	}
	got, err := e.store.ListAuditEntries(e.ctx, keygate.AuditFilter{})
	must(t, "ListAuditEntries", err)
	if len(got) != 1 || got[0].ID != keep.ID {
		t.Errorf("after purge: %d entries", len(got))
	}
}
