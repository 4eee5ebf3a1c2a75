package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/postgres/pgtest"
)

// Even with a connection to the database, an audit entry cannot be changed
// or deleted: triggers refuse UPDATE, DELETE and TRUNCATE. Only the
// retention purge deletes, and only entries older than the cutoff it
// names in its own transaction.
func TestAuditEntriesCannotBeChangedOrDeleted(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewSchema(t)
	s := open(t, url)
	now := time.Now().UTC().Truncate(time.Millisecond)
	old := &keygate.AuditEntry{At: now.Add(-48 * time.Hour), Action: keygate.AuditTokenCreated, Actor: keygate.Actor{Type: keygate.ActorCLI}}
	recent := &keygate.AuditEntry{At: now, Action: keygate.AuditTokenDeleted, Actor: keygate.Actor{Type: keygate.ActorCLI}}
	for _, e := range []*keygate.AuditEntry{old, recent} {
		if err := s.AppendAuditEntry(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	conn := pgtest.Conn(t, url)
	for _, c := range []struct{ sql, refusal string }{
		{`UPDATE audit_log SET action = 'token.created' WHERE id = '` + recent.ID + `'`, "audit log entries cannot be changed"},
		{`DELETE FROM audit_log WHERE id = '` + recent.ID + `'`, "audit log entries cannot be deleted, except by the retention purge"},
		{`DELETE FROM audit_log`, "audit log entries cannot be deleted, except by the retention purge"},
		{`TRUNCATE audit_log`, "audit log entries cannot be deleted, except by the retention purge"},
	} {
		if _, err := conn.Exec(ctx, c.sql); err == nil || !strings.Contains(err.Error(), c.refusal) {
			t.Errorf("%s: %v, want the trigger's refusal", c.sql, err)
		}
	}
	// A transaction naming a cutoff deletes only what is older than it.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('keygate.audit_purge_before', $1, true)`, now.Add(-24*time.Hour).Format(time.RFC3339Nano)); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM audit_log WHERE id = $1`, recent.ID); err == nil || !strings.Contains(err.Error(), "cannot be deleted") {
		t.Errorf("deleting an entry newer than the named cutoff: %v, want the refusal", err)
	}
	tx.Rollback(ctx)
	got, err := s.ListAuditEntries(ctx, keygate.AuditFilter{})
	if err != nil || len(got) != 2 || got[0].Action != keygate.AuditTokenDeleted {
		t.Fatalf("after the refused changes: %+v, %v", got, err)
	}

	n, err := s.PurgeAuditEntries(ctx, now.Add(-24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("PurgeAuditEntries: %d, %v; want the old entry purged", n, err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM audit_log`); err == nil {
		t.Error("a DELETE after the purge went through: the purge's cutoff outlived its transaction")
	}
	if got, _ := s.ListAuditEntries(ctx, keygate.AuditFilter{}); len(got) != 1 || got[0].ID != recent.ID {
		t.Fatalf("left %+v, want the recent entry", got)
	}
}
