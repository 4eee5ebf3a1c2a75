package postgres

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/keygate/keygate/postgres/pgtest"
)

func openSchema(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func count(t *testing.T, s *Store, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := s.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
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

// The two stores keep the same history: a migration added to one is added
// to the other under the same number and name.
func TestMigrationsMatchTheSQLiteStore(t *testing.T) {
	all, err := migrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	sqliteFiles, err := filepath.Glob("../sqlite/migrations/*.sql")
	if err != nil || len(sqliteFiles) == 0 {
		t.Fatalf("reading the SQLite store's migrations: %v", err)
	}
	var got, want []string
	for _, m := range all {
		got = append(got, m.Name)
	}
	for _, f := range sqliteFiles {
		want = append(want, filepath.Base(f))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("migrations = %v, the SQLite store has %v", got, want)
	}
}

func TestOpenAppliesEveryMigrationOnce(t *testing.T) {
	s := openSchema(t, pgtest.NewSchema(t))
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
		t.Fatalf("Migrate on a migrated schema: %v", err)
	}
	if rows := count(t, s, `SELECT COUNT(*) FROM schema_migrations`); rows != len(all) {
		t.Errorf("schema_migrations has %d rows, want %d", rows, len(all))
	}
}

// Instances started together on an empty database take turns on the
// migration lock: every Open succeeds and each migration runs once.
func TestConcurrentOpenOfAnEmptySchema(t *testing.T) {
	url := pgtest.NewSchema(t)
	const n = 5
	errs := make([]error, n)
	stores := make([]*Store, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(context.Background(), url) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		} else {
			defer stores[i].Close()
		}
	}
	if t.Failed() {
		return
	}
	all, _ := migrations(migrationFiles)
	if rows := count(t, stores[0], `SELECT COUNT(*) FROM schema_migrations`); rows != len(all) {
		t.Errorf("schema_migrations has %d rows after %d concurrent opens, want %d", rows, n, len(all))
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
	s := openSchema(t, pgtest.NewSchema(t))
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
	if parents := count(t, s, `SELECT COUNT(*) FROM example_parents`); parents != 1 {
		t.Errorf("example_parents has %d rows after migrating twice, want 1", parents)
	}
	if v, _ := s.SchemaVersion(ctx); v != 9002 {
		t.Errorf("SchemaVersion = %d, want 9002", v)
	}
}

func TestFailedMigrationLeavesNoTrace(t *testing.T) {
	s := openSchema(t, pgtest.NewSchema(t))
	ctx := context.Background()
	before, _ := s.SchemaVersion(ctx)
	fsys := migrationsWith(t, map[string]string{
		"9001_broken.sql": `CREATE TABLE half_done (id TEXT); INSERT INTO no_such_table VALUES (1);`,
	})
	err := s.migrate(ctx, fsys)
	if err == nil || !strings.Contains(err.Error(), "9001_broken.sql") {
		t.Fatalf("migrate = %v, want an error naming 9001_broken.sql", err)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'half_done'`, s.schema); n != 0 {
		t.Error("a failed migration left its first table behind")
	}
	if v, _ := s.SchemaVersion(ctx); v != before {
		t.Errorf("SchemaVersion = %d after a failed migration, want %d", v, before)
	}
}

// Pruning deletes the change rows older than the cut-off, never the
// newest, and records the highest seq it deleted.
func TestPruneChangesRecordsHowFarItPruned(t *testing.T) {
	s := openSchema(t, pgtest.NewSchema(t))
	ctx := context.Background()
	now := time.Now()
	var seqs []int64
	for _, age := range []time.Duration{2 * time.Hour, 61 * time.Minute, 59 * time.Minute, 3 * time.Hour} {
		var seq int64
		err := s.pool.QueryRow(ctx, `INSERT INTO changes (kind, id, created_at) VALUES ('token', 'tok_x', $1) RETURNING seq`, now.Add(-age)).Scan(&seq)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	if err := s.PruneChanges(ctx, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if left := count(t, s, `SELECT COUNT(*) FROM changes`); left != 2 {
		t.Errorf("%d change rows left after pruning, want the one younger than an hour and the newest", left)
	}
	if through := count(t, s, `SELECT through FROM changes_pruned`); int64(through) != seqs[1] {
		t.Errorf("pruned through seq %d, want %d (the newest deleted)", through, seqs[1])
	}
	// A prune that deletes nothing leaves the mark where it is.
	if err := s.PruneChanges(ctx, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if through := count(t, s, `SELECT through FROM changes_pruned`); int64(through) != seqs[1] {
		t.Errorf("pruned through seq %d after pruning nothing, want %d", through, seqs[1])
	}
}

// Two keygates in different schemas of one database never hear each
// other's changes or wait on each other's locks.
func TestSchemasAreNamedApart(t *testing.T) {
	a, b := openSchema(t, pgtest.NewSchema(t)), openSchema(t, pgtest.NewSchema(t))
	if a.channel == b.channel {
		t.Errorf("both schemas notify on %q", a.channel)
	}
	if a.lockKey(lockChanges) == b.lockKey(lockChanges) {
		t.Error("both schemas share the change lock")
	}
	long := channelName(strings.Repeat("s", 80))
	if len(long) > 63 || long == channelName(strings.Repeat("s", 81)) {
		t.Errorf("channel for a long schema name = %q (%d bytes), want at most 63 and distinct", long, len(long))
	}
}
