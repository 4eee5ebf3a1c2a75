package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/keygate/keygate"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestEmbeddedMigrationsAreNumberedInOrder(t *testing.T) {
	all, err := migrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 || all[0].Name != "0001_core.sql" {
		t.Fatalf("first migration = %+v, want 0001_core.sql", all)
	}
	for i, m := range all {
		if m.Version != i+1 {
			t.Errorf("migration %s has version %d, want %d: numbers must have no gaps", m.Name, m.Version, i+1)
		}
	}
}

func TestOpenAppliesEveryMigrationOnce(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	all, _ := migrations(migrationFiles)
	version, err := s.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if version != all[len(all)-1].Version {
		t.Errorf("SchemaVersion = %d, want %d", version, all[len(all)-1].Version)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate on a migrated file: %v", err)
	}
	var rows int
	if err := s.reader.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != len(all) {
		t.Errorf("schema_migrations has %d rows, want %d", rows, len(all))
	}
}

// migrationsWith returns the embedded migrations plus extra files.
func migrationsWith(t *testing.T, extra map[string]string) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	all, err := migrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		fsys["migrations/"+m.Name] = &fstest.MapFile{Data: []byte(m.SQL)}
	}
	for name, body := range extra {
		fsys["migrations/"+name] = &fstest.MapFile{Data: []byte(body)}
	}
	return fsys
}

func TestAddingAMigrationIsAddingAFile(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	fsys := migrationsWith(t, map[string]string{
		"9001_example_parents.sql": `CREATE TABLE example_parents (id TEXT PRIMARY KEY);
			INSERT INTO example_parents (id) VALUES ('parent_1');`,
		"9002_example_children.sql": `CREATE TABLE example_children (id TEXT PRIMARY KEY,
			parent_id TEXT NOT NULL REFERENCES example_parents (id));`,
	})
	for range 2 {
		if err := s.migrate(ctx, fsys); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	var parents int
	if err := s.reader.QueryRow(`SELECT COUNT(*) FROM example_parents`).Scan(&parents); err != nil {
		t.Fatal(err)
	}
	if parents != 1 {
		t.Errorf("example_parents has %d rows after migrating twice, want 1", parents)
	}
	if v, _ := s.SchemaVersion(ctx); v != 9002 {
		t.Errorf("SchemaVersion = %d, want 9002", v)
	}
}

func TestFailedMigrationLeavesNoTrace(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	before, _ := s.SchemaVersion(ctx)
	fsys := migrationsWith(t, map[string]string{
		"9001_broken.sql": `CREATE TABLE half_done (id TEXT); INSERT INTO no_such_table VALUES (1);`,
	})
	err := s.migrate(ctx, fsys)
	if err == nil || !strings.Contains(err.Error(), "9001_broken.sql") {
		t.Fatalf("migrate = %v, want an error naming 9001_broken.sql", err)
	}
	var tables int
	s.reader.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'half_done'`).Scan(&tables)
	if tables != 0 {
		t.Error("a failed migration left its first table behind")
	}
	if v, _ := s.SchemaVersion(ctx); v != before {
		t.Errorf("SchemaVersion = %d after a failed migration, want %d", v, before)
	}
}

// A watcher prunes the change rows older than an hour, never the newest,
// and records the highest seq it deleted.
func TestWatchPrunesOldChanges(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	now := time.Now()
	var seqs []int64
	for _, age := range []time.Duration{2 * time.Hour, 61 * time.Minute, 59 * time.Minute, 3 * time.Hour} {
		res, err := s.writer.Exec(`INSERT INTO changes (kind, id, created_at) VALUES ('token', 'tok_x', ?)`,
			millis(now.Add(-age)))
		if err != nil {
			t.Fatal(err)
		}
		seq, _ := res.LastInsertId()
		seqs = append(seqs, seq)
	}
	w := &watcher{store: s, last: seqs[len(seqs)-1], fn: func(keygate.Change) {}}
	if err := w.poll(ctx); err != nil {
		t.Fatal(err)
	}
	var left int
	var through int64
	s.reader.QueryRow(`SELECT COUNT(*) FROM changes`).Scan(&left)
	s.reader.QueryRow(`SELECT through FROM changes_pruned`).Scan(&through)
	if left != 2 {
		t.Errorf("%d change rows left after pruning, want the one younger than an hour and the newest", left)
	}
	if through != seqs[1] {
		t.Errorf("pruned through seq %d, want %d (the newest deleted)", through, seqs[1])
	}
}
