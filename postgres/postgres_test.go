package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/postgres"
	"github.com/keygate/keygate/postgres/pgtest"
	"github.com/keygate/keygate/storetest"
)

// schemas is the storetest.Factory for PostgreSQL: a new schema per
// subtest in the test database.
type schemas struct{}

func (schemas) NewDatabase(t *testing.T) string {
	return pgtest.NewSchema(t)
}

func (schemas) Open(t *testing.T, url string) keygate.Store {
	t.Helper()
	return open(t, url)
}

func open(t testing.TB, url string) *postgres.Store {
	t.Helper()
	// A short poll interval keeps the tests of missed notifications fast.
	s, err := postgres.Open(context.Background(), url, postgres.WithPollInterval(100*time.Millisecond))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// OpenOneConnection opens a handle whose pool holds one connection.
func (schemas) OpenOneConnection(t *testing.T, url string) keygate.Store {
	t.Helper()
	return open(t, pgtest.WithParam(t, url, "pool_max_conns", "1"))
}

// RefuseAuditEntries adds a trigger to the schema's audit log that fails
// every insert.
func (schemas) RefuseAuditEntries(t *testing.T, url string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `
		CREATE FUNCTION audit_log_refused() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			RAISE EXCEPTION 'the audit log refuses entries';
		END;
		$$;
		CREATE TRIGGER audit_log_refused BEFORE INSERT ON audit_log
			FOR EACH ROW EXECUTE FUNCTION audit_log_refused();`); err != nil {
		t.Fatalf("creating the refusing trigger: %v", err)
	}
}

func TestStoreContract(t *testing.T) {
	storetest.Run(t, schemas{})
}
