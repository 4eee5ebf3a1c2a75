package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/sqlite"
)

// Even with the database file in hand, an audit entry cannot be changed:
// a trigger refuses every UPDATE.
func TestAuditEntriesCannotBeUpdated(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keygate.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := &keygate.AuditEntry{Action: keygate.AuditTokenDeleted, Actor: keygate.Actor{Type: keygate.ActorCLI}}
	if err := s.AppendAuditEntry(ctx, e); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, `UPDATE audit_log SET action = 'token.created' WHERE id = ?`, e.ID)
	if err == nil || !strings.Contains(err.Error(), "audit log entries cannot be changed") {
		t.Fatalf("UPDATE audit_log: %v, want the trigger's refusal", err)
	}
	got, err := s.ListAuditEntries(ctx, keygate.AuditFilter{})
	if err != nil || len(got) != 1 || got[0].Action != keygate.AuditTokenDeleted {
		t.Fatalf("after the refused update: %+v, %v", got, err)
	}
}
