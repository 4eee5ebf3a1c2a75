// Package sqlite is keygate's embedded store: one SQLite file, in WAL mode,
// that a server and the CLI may open at the same time. It implements
// keygate.Store and passes the storetest contract suite.
//
// Writes go through a single connection and every write transaction starts
// with BEGIN IMMEDIATE, so a check-then-write (the active-token limit; the
// only owner, who may be neither demoted nor removed) holds the database's
// write lock from the check to the commit, in this process and against any
// other process using the file. Reads use a separate pool
// and never block on writers.
//
// Times are stored as INTEGER milliseconds since the Unix epoch and read
// back in UTC. The schema is the numbered files in migrations/, applied in
// order by Open (and Migrate) and recorded in schema_migrations.
//
// RecordChange opens one write transaction and puts it in the context it
// hands the change: write (and exec, for one statement) join a transaction
// the context carries, so an audited change and its audit entries commit
// together, and so do the reads (query, queryRow), which then see the
// change's own writes.
//
// Changes that other instances must hear about (a token revoked, an
// organization updated or deleted) are rows in the changes table, written in
// the transaction of the change itself; WatchChanges polls that table.
//
// The store never sees a token secret: only hashes and hints reach it.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/keygate/keygate"
)

// Store is a keygate.Store backed by an SQLite file.
type Store struct {
	path   string
	writer *sql.DB // one connection; every transaction is BEGIN IMMEDIATE
	reader *sql.DB // read-only connections

	pollInterval time.Duration
	busyTimeout  time.Duration
	logger       *slog.Logger
	now          func() time.Time

	closeOnce sync.Once
	closeErr  error
}

var _ keygate.Store = (*Store)(nil)

// Option configures a Store at Open.
type Option func(*Store)

// WithPollInterval sets how often WatchChanges looks for new changes
// (default 200ms). It bounds how long another process's token revocation
// takes to reach this one.
func WithPollInterval(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.pollInterval = d
		}
	}
}

// WithBusyTimeout sets how long a statement waits for another process's
// write lock before failing with EUNAVAILABLE (default 5s).
func WithBusyTimeout(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.busyTimeout = d
		}
	}
}

// WithLogger sets the logger for problems WatchChanges retries through.
func WithLogger(l *slog.Logger) Option {
	return func(s *Store) {
		if l != nil {
			s.logger = l
		}
	}
}

// Open opens (creating if needed) the database file at path and applies
// every pending migration.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	if path == "" || path == ":memory:" {
		// Each pooled connection would get its own empty in-memory database.
		return nil, fmt.Errorf("sqlite: a database file path is required, got %q", path)
	}
	s := &Store{
		path:         path,
		pollInterval: 200 * time.Millisecond,
		busyTimeout:  5 * time.Second,
		logger:       slog.Default(),
		now:          time.Now,
	}
	for _, opt := range opts {
		opt(s)
	}
	var err error
	if s.writer, err = sql.Open("sqlite", s.dsn(false)); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s.writer.SetMaxOpenConns(1)
	if s.reader, err = sql.Open("sqlite", s.dsn(true)); err != nil {
		s.writer.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s.reader.SetMaxOpenConns(max(4, runtime.NumCPU()))
	if err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// dsn builds the driver's connection string. The path is escaped so a file
// name containing '?' or '#' is not read as URI syntax, and an absolute
// path gets the URI's empty authority ("file:///…"), so one starting with
// "//" is not read as a host.
func (s *Store) dsn(readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", s.busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	// NORMAL is durable across application crashes in WAL mode; only a power
	// loss can drop the last commits.
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
	}
	prefix := "file:"
	if strings.HasPrefix(s.path, "/") {
		prefix = "file://"
	}
	return prefix + (&url.URL{Path: s.path}).EscapedPath() + "?" + q.Encode()
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Ping reports whether the database file can be read. It reads a table,
// not a constant, so a file that went missing or unreadable is noticed.
func (s *Store) Ping(ctx context.Context) error {
	var version sql.NullInt64
	err := s.reader.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version)
	if err != nil {
		return fmt.Errorf("%w (%v)", keygate.Errorf(keygate.EUNAVAILABLE, "The database is unavailable."), err)
	}
	return nil
}

// Close closes both connection pools. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.reader != nil {
			errs = append(errs, s.reader.Close())
		}
		if s.writer != nil {
			errs = append(errs, s.writer.Close())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// write runs fn in one write transaction, holding the database's write lock
// from its first statement to the commit. Within RecordChange's change, fn
// joins RecordChange's transaction instead, which commits it with the
// audit entries.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if tx, ok := s.openTx(ctx); ok {
		return fn(tx)
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return dbError(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return dbError(err)
	}
	return nil
}

// openTx is the context key of the transaction a RecordChange has open on
// the store: writes and reads through that context join it. The store is
// part of the key, so another store's writes and reads never join it.
type openTx struct{ store *Store }

// openTx returns the RecordChange transaction ctx carries, if any.
func (s *Store) openTx(ctx context.Context) (*sql.Tx, bool) {
	tx, ok := ctx.Value(openTx{s}).(*sql.Tx)
	return tx, ok
}

// exec runs one statement that changes something: in the transaction a
// RecordChange has open, when ctx carries one, or else on its own.
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if tx, ok := s.openTx(ctx); ok {
		return tx.ExecContext(ctx, query, args...)
	}
	return s.writer.ExecContext(ctx, query, args...)
}

// query runs a query that reads rows: within RecordChange's change (ctx
// carries its transaction) in that transaction, so the change reads its
// own writes, which no reader connection sees before the commit; else on
// a reader connection.
func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if tx, ok := s.openTx(ctx); ok {
		return tx.QueryContext(ctx, query, args...)
	}
	return s.reader.QueryContext(ctx, query, args...)
}

// queryRow is query for one row.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if tx, ok := s.openTx(ctx); ok {
		return tx.QueryRowContext(ctx, query, args...)
	}
	return s.reader.QueryRowContext(ctx, query, args...)
}

// publish records a change in the same transaction as the mutation it
// describes, so watchers see it exactly when the mutation is visible.
func (s *Store) publish(ctx context.Context, tx *sql.Tx, kind, id string) error {
	_, err := tx.ExecContext(ctx,
		`INSERT INTO changes (kind, id, created_at) VALUES (?, ?, ?)`,
		kind, id, millis(s.now()))
	return dbError(err)
}

// dbError turns driver errors into keygate errors where the caller can act
// on them; anything else is returned wrapped and becomes EINTERNAL.
func dbError(err error) error {
	var e *sqlite.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		switch e.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return keygate.Errorf(keygate.ECONFLICT, "It already exists.")
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return keygate.Errorf(keygate.ENOTFOUND, "A record it refers to does not exist.")
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_BUSY_SNAPSHOT, sqlite3.SQLITE_BUSY_TIMEOUT,
			sqlite3.SQLITE_LOCKED:
			return keygate.Errorf(keygate.EUNAVAILABLE, "The database is busy; try again.")
		}
	}
	return fmt.Errorf("sqlite: %w", err)
}

// violatesUnique reports whether err is a UNIQUE constraint failure on
// column, written as SQLite names it: "table.column".
func violatesUnique(err error, column string) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE &&
		strings.Contains(e.Error(), column)
}

// millis is how every time is stored: milliseconds since the Unix epoch.
func millis(t time.Time) int64 { return t.UnixMilli() }

// fromMillis returns a stored time in UTC.
func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// nullMillis stores an optional time; nil is NULL.
func nullMillis(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// fromNullMillis reads an optional time.
func fromNullMillis(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromMillis(n.Int64)
	return &t
}

// createdAt returns t, or now when t is unset, so callers may leave
// CreatedAt to the store.
func (s *Store) createdAt(t time.Time) time.Time {
	if t.IsZero() {
		return s.now().UTC()
	}
	return t.UTC()
}

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

// notFound turns sql.ErrNoRows into ENOTFOUND with the caller's message.
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return keygate.Errorf(keygate.ENOTFOUND, "%s not found.", what)
	}
	return dbError(err)
}

// affectedOne returns ENOTFOUND unless res changed a row.
func affectedOne(res sql.Result, err error, what string) error {
	if err != nil {
		return dbError(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return dbError(err)
	}
	if n == 0 {
		return keygate.Errorf(keygate.ENOTFOUND, "%s not found.", what)
	}
	return nil
}

// nullString stores an optional string; "" is NULL, so unique indexes
// ignore it.
func nullString(s string) sql.NullString {
	return sql.NullString{String: s, Valid: s != ""}
}
