package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/sqlite"
)

// Even with the database file in hand, an audit entry cannot be changed or
// deleted: triggers refuse every UPDATE, and every DELETE but the
// retention purge's, which reaches only entries older than the cutoff it
// names in its own transaction.
func TestAuditEntriesCannotBeChangedOrDeleted(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keygate.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC().Truncate(time.Millisecond)
	old := &keygate.AuditEntry{At: now.Add(-48 * time.Hour), Action: keygate.AuditTokenCreated, Actor: keygate.Actor{Type: keygate.ActorCLI}}
	recent := &keygate.AuditEntry{At: now, Action: keygate.AuditTokenDeleted, Actor: keygate.Actor{Type: keygate.ActorCLI}}
	for _, e := range []*keygate.AuditEntry{old, recent} {
		if err := s.AppendAuditEntry(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct{ sql, refusal string }{
		{`UPDATE audit_log SET action = 'token.created' WHERE id = '` + recent.ID + `'`, "audit log entries cannot be changed"},
		{`DELETE FROM audit_log WHERE id = '` + recent.ID + `'`, "audit log entries cannot be deleted, except by the retention purge"},
		{`DELETE FROM audit_log`, "audit log entries cannot be deleted, except by the retention purge"},
	} {
		if _, err := db.ExecContext(ctx, c.sql); err == nil || !strings.Contains(err.Error(), c.refusal) {
			t.Errorf("%s: %v, want the trigger's refusal", c.sql, err)
		}
	}
	got, err := s.ListAuditEntries(ctx, keygate.AuditFilter{})
	if err != nil || len(got) != 2 || got[0].Action != keygate.AuditTokenDeleted {
		t.Fatalf("after the refused changes: %+v, %v", got, err)
	}

	n, err := s.PurgeAuditEntries(ctx, now.Add(-24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("PurgeAuditEntries: %d, %v; want the old entry purged", n, err)
	}
	if _, err := db.ExecContext(ctx, `DELETE FROM audit_log`); err == nil {
		t.Error("a DELETE after the purge went through: the purge's cutoff outlived its transaction")
	}
	if got, _ := s.ListAuditEntries(ctx, keygate.AuditFilter{}); len(got) != 1 || got[0].ID != recent.ID {
		t.Fatalf("left %+v, want the recent entry", got)
	}
}
