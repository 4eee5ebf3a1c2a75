package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"slices"

	"github.com/jackc/pgx/v5"
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
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return all, nil
}

// Migrate applies every migration not yet recorded in schema_migrations,
// in order, each in its own transaction (PostgreSQL's DDL is
// transactional, so a failed migration leaves nothing behind). Open calls
// it; `keygate migrate` calls it explicitly. Every step holds an advisory
// lock, so instances starting together wait for each other and each
// migration runs once.
func (s *Store) Migrate(ctx context.Context) error {
	return s.migrate(ctx, migrationFiles)
}

func (s *Store) migrate(ctx context.Context, fsys fs.FS) error {
	all, err := migrations(fsys)
	if err != nil {
		return err
	}
	if s.upToDate(ctx, all) {
		// The common case, every start after the first: no lock, no
		// transaction.
		return nil
	}
	err = s.locked(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT NOT NULL,
			applied_at TIMESTAMPTZ NOT NULL
		)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: create schema_migrations: %w", dbError(err))
	}
	for _, m := range all {
		if err := s.apply(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// upToDate reports whether every migration is recorded as applied. Any
// failure (no schema_migrations table yet) means "not known to be": the
// locked path decides.
func (s *Store) upToDate(ctx context.Context, all []migration) bool {
	rows, err := s.pool.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return false
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return false
	}
	for _, m := range all {
		if !slices.Contains(applied, int32(m.Version)) {
			return false
		}
	}
	return true
}

// locked runs fn in a transaction holding the migration lock.
func (s *Store) locked(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, s.lockKey(lockMigrate)); err != nil {
			return err
		}
		return fn(tx)
	})
}

// apply runs one migration unless it is already recorded.
func (s *Store) apply(ctx context.Context, m migration) error {
	err := s.locked(ctx, func(tx pgx.Tx) error {
		var applied bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, m.Version).Scan(&applied)
		if err != nil || applied {
			return err
		}
		// The simple protocol lets one Exec run a file of statements.
		if _, err := tx.Exec(ctx, m.SQL, pgx.QueryExecModeSimpleProtocol); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			m.Version, m.Name, ts(s.now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: migration %s: %w", m.Name, err)
	}
	return nil
}

// SchemaVersion returns the highest applied migration, 0 for a new schema.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v *int
	if err := s.pool.QueryRow(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres: schema version: %w", dbError(err))
	}
	if v == nil {
		return 0, nil
	}
	return *v, nil
}
