package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/sqlite"
	"github.com/keygate/keygate/storetest"
)

// files is the storetest.Factory for SQLite: a new file per subtest.
type files struct{}

func (files) NewDatabase(t *testing.T) string {
	return filepath.Join(t.TempDir(), "keygate.db")
}

func (files) Open(t *testing.T, path string) keygate.Store {
	t.Helper()
	return open(t, path)
}

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	// A short poll interval keeps the change-feed tests fast.
	s, err := sqlite.Open(context.Background(), path, sqlite.WithPollInterval(10*time.Millisecond))
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// OpenOneConnection is Open: reads have a pool of their own, but a
// change's transaction is on the one writer connection.
func (f files) OpenOneConnection(t *testing.T, path string) keygate.Store {
	return f.Open(t, path)
}

// RefuseAuditEntries adds a trigger to the file that fails every insert
// into the audit log; the store's connections see it at their next
// statement.
func (files) RefuseAuditEntries(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER audit_log_refused BEFORE INSERT ON audit_log
		BEGIN SELECT RAISE(ABORT, 'the audit log refuses entries'); END`); err != nil {
		t.Fatalf("creating the refusing trigger: %v", err)
	}
}

func TestStoreContract(t *testing.T) {
	storetest.Run(t, files{})
}

func TestOpenUsesWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keygate.db")
	open(t, path)
	// A separate connection reads what the file itself says.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
}

func TestOpenOddPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data dir #1")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "key?gate%20.db")
	s := open(t, path)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file not at %q: %v", path, err)
	}
}

// A configured absolute path may start with "//" (POSIX reads it as "/");
// it names a file, not a URI authority.
func TestOpenPathStartingWithTwoSlashes(t *testing.T) {
	path := "/" + filepath.Join(t.TempDir(), "keygate.db")
	s := open(t, path)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file not at %q: %v", path, err)
	}
}

func TestOpenRefusesMemory(t *testing.T) {
	for _, path := range []string{"", ":memory:"} {
		if s, err := sqlite.Open(context.Background(), path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", path)
		}
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keygate.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free"}
	if err := s.CreateOrganization(ctx, org); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close twice: %v", err)
	}
	if err := s.Ping(ctx); keygate.ErrorCode(err) != keygate.EUNAVAILABLE {
		t.Errorf("Ping after Close = %v, want EUNAVAILABLE", err)
	}

	s = open(t, path)
	if _, err := s.FindOrganizationBySlug(ctx, "acme"); err != nil {
		t.Errorf("FindOrganizationBySlug after reopening: %v", err)
	}
}

func TestConcurrentOpenOfANewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keygate.db")
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := sqlite.Open(context.Background(), path)
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("Open: %v", err)
		}
	}
}
