package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/schema"
)

// migrationFiles holds the schema's history. Adding a migration is adding a
// file named NNNN_what.sql with the next number; applied ones never change.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered SQL file.
type migration = schema.Migration

// migrations returns the migrations in fsys's migrations folder in version
// order.
func migrations(fsys fs.FS) ([]migration, error) {
	all, err := schema.Load(fsys)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return all, nil
}

// Migrate applies every migration not yet recorded in schema_migrations,
// in order, each in its own transaction. Open calls it; `keygate migrate`
// calls it explicitly. Processes migrating the same file at once are safe:
// each migration is checked and applied under the write lock.
func (s *Store) Migrate(ctx context.Context) error {
	return s.migrate(ctx, migrationFiles)
}

func (s *Store) migrate(ctx context.Context, fsys fs.FS) error {
	// Processes opening a new file at once race to switch it to WAL and
	// create the schema; SQLite answers some of those races busy at once,
	// without waiting busy_timeout. Retry them for as long.
	deadline := time.Now().Add(s.busyTimeout)
	for {
		err := s.migrateOnce(ctx, fsys)
		if err == nil || !busy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// busy reports whether err is SQLite saying another connection holds the
// database.
func busy(err error) bool {
	var e *sqlite.Error
	if errors.As(err, &e) {
		switch e.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
	}
	return keygate.ErrorCode(err) == keygate.EUNAVAILABLE
}

func (s *Store) migrateOnce(ctx context.Context, fsys fs.FS) error {
	all, err := migrations(fsys)
	if err != nil {
		return err
	}
	if _, err := s.writer.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("sqlite: create schema_migrations: %w", err)
	}
	for _, m := range all {
		if err := s.apply(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// apply runs one migration unless it is already recorded.
func (s *Store) apply(ctx context.Context, m migration) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var applied int
		err := tx.QueryRowContext(ctx,
			`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&applied)
		if err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", m.Name, err)
		} else if applied > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", m.Name, err)
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, millis(s.now()))
		if err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", m.Name, err)
		}
		return nil
	})
}

// SchemaVersion returns the highest applied migration, 0 for a new file.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.reader.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("sqlite: schema version: %w", err)
	}
	return int(v.Int64), nil
}
