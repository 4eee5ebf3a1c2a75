package sqlite_test

import (
	"context"
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

func TestStoreContract(t *testing.T) {
	storetest.Run(t, files{})
}
