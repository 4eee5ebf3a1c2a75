// Package postgres is keygate's store for several instances: one PostgreSQL
// database that every keygate process (servers and the CLI) shares. It
// implements keygate.Store and keygate.OAuthStore and passes the same
// storetest contract suite as the SQLite store.
//
// What several instances need from it:
//
//   - The active-token limit is checked and the token inserted while the
//     organization's row is locked (SELECT … FOR UPDATE), so concurrent
//     creates on any instance cannot pass the limit together. Demoting or
//     removing a member counts the owners under the same lock, so two
//     owners acting on each other at once cannot leave none.
//   - Every mutation that makes a cached token or organization stale writes
//     a row to the changes table and sends pg_notify in the same
//     transaction. WatchChanges LISTENs on a dedicated connection and reads
//     the table after the last change it delivered, so order and catch-up
//     come from the table and a missed notification costs at most one poll
//     interval. A prune records the highest seq it deleted, so a watcher
//     away longer than changes are kept knows it missed some.
//   - An audited change and its audit entries are one transaction:
//     RecordChange puts its transaction in the context it hands the
//     change, and write (and exec, for one statement) join it, as do
//     the reads (query, queryRow): they see the change's writes and hold
//     no second pooled connection.
//   - Migrations run under an advisory lock, so instances starting together
//     apply each one exactly once.
//
// Tables live in the connection's current schema (the first schema of
// search_path), so one database can hold several keygates, or test runs,
// side by side; notifications and advisory locks are named after the schema.
//
// The store never sees a token secret: only hashes and hints reach it. It
// never puts the database URL in an error or log line: it may hold a password.
package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate"
)

// Store is a keygate.Store backed by PostgreSQL.
type Store struct {
	pool    *pgxpool.Pool
	schema  string // where the tables are: current_schema() of the connections
	channel string // the NOTIFY channel of this schema's changes

	pollInterval time.Duration
	logger       *slog.Logger
	now          func() time.Time

	replicaURLs  []string
	replicas     []*replica
	replicaTurn  atomic.Uint64
	changesSeen  atomic.Int64 // newest change seq published or delivered here
	replicaStats replicaStats

	closeOnce sync.Once
}

var _ keygate.Store = (*Store)(nil)

// Option configures a Store at Open.
type Option func(*Store)

// WithPollInterval sets how often WatchChanges reads the changes table when
// no notification arrives (default 2s): the bound on how late a change is
// seen if a notification is lost.
func WithPollInterval(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.pollInterval = d
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

// defaultConnectTimeout bounds a connection attempt when the URL sets no
// connect_timeout, so a database host that drops packets fails requests in
// seconds instead of hanging them.
const defaultConnectTimeout = 5 * time.Second

// Open connects to the database at url (postgres://…; pool settings such as
// pool_max_conns and run-time parameters such as search_path may be given
// in its query) and applies every pending migration.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parser's message quotes the URL; keep it out of logs.
		return nil, errors.New("postgres: the database URL cannot be parsed")
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "keygate"
	}
	s := &Store{
		pollInterval: 2 * time.Second,
		logger:       slog.Default(),
		now:          time.Now,
	}
	for _, opt := range opts {
		opt(s)
	}
	if s.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	var schema *string
	if err := s.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("postgres: connecting: %w", err)
	}
	if schema == nil {
		s.pool.Close()
		return nil, errors.New("postgres: no schema to create tables in: search_path names no existing schema")
	}
	s.schema = *schema
	s.channel = channelName(s.schema)
	if err := s.Migrate(ctx); err != nil {
		s.pool.Close()
		return nil, err
	}
	if err := s.openReplicas(cfg); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Schema returns the schema the store's tables are in.
func (s *Store) Schema() string { return s.schema }

// Ping reports whether the database answers. Like the lookups, it looks
// past connections the database dropped, so /readyz does not flap after a
// database restart.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.retryRead(ctx, func() error { return s.pool.Ping(ctx) }); err != nil {
		return keygate.Errorf(keygate.EUNAVAILABLE, "The database is unavailable.")
	}
	return nil
}

// Close closes the connection pool; a running WatchChanges keeps its own
// connection until its context ends. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.pool.Close()
		s.closeReplicas()
	})
	return nil
}

// channelName is the NOTIFY channel for a schema's changes. Channels are
// database-wide, so the schema is part of the name; identifiers are cut at
// 63 bytes, so a long schema name is shortened with a hash.
func channelName(schema string) string {
	name := "keygate_changes." + schema
	if len(name) > 63 {
		sum := sha256.Sum256([]byte(schema))
		name = name[:46] + "." + hex.EncodeToString(sum[:8])
	}
	return name
}

// lockKey is the advisory lock key for one purpose in this schema. Advisory
// locks are database-wide too, so keygates in other schemas never wait on
// each other.
func (s *Store) lockKey(purpose string) int64 {
	sum := sha256.Sum256([]byte("keygate/" + purpose + "/" + s.schema))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// Advisory lock purposes.
const (
	lockMigrate    = "migrate"
	lockChanges    = "changes"
	lockSigningKey = "signing-key"
)

// write runs fn in one transaction and commits it when fn returns nil.
// Within RecordChange's change, fn joins RecordChange's transaction
// instead, which commits it with the audit entries.
func (s *Store) write(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if tx, ok := s.openTx(ctx); ok {
		return fn(tx)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return dbError(err)
	}
	defer func() {
		// After Commit this does nothing; after a failure it must not wait
		// on the caller's ended context, nor forever on a dead host.
		rctx, cancel := cleanupContext(ctx)
		defer cancel()
		tx.Rollback(rctx)
	}()
	if err := fn(tx); err != nil {
		return err
	}
	return dbError(tx.Commit(ctx))
}

// openTx is the context key of the transaction a RecordChange has open on
// the store: writes and reads through that context join it. The store is
// part of the key, so another store's writes and reads never join it.
type openTx struct{ store *Store }

// openTx returns the RecordChange transaction ctx carries, if any.
func (s *Store) openTx(ctx context.Context) (pgx.Tx, bool) {
	tx, ok := ctx.Value(openTx{s}).(pgx.Tx)
	return tx, ok
}

// exec runs one statement that changes something: in the transaction a
// RecordChange has open, when ctx carries one, or else on its own.
func (s *Store) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if tx, ok := s.openTx(ctx); ok {
		return tx.Exec(ctx, sql, args...)
	}
	return s.pool.Exec(ctx, sql, args...)
}

// query runs a query that reads rows: within RecordChange's change (ctx
// carries its transaction) in that transaction, so the change reads its
// own writes and holds no second pooled connection while the transaction
// holds one; else on a pooled connection.
func (s *Store) query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if tx, ok := s.openTx(ctx); ok {
		return tx.Query(ctx, sql, args...)
	}
	return s.pool.Query(ctx, sql, args...)
}

// queryRow is query for one row.
func (s *Store) queryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if tx, ok := s.openTx(ctx); ok {
		return tx.QueryRow(ctx, sql, args...)
	}
	return s.pool.QueryRow(ctx, sql, args...)
}

// writeRetrying is write for transactions that may deadlock with the same
// transaction on another instance (batches of rows): a deadlock or
// serialization failure rolls everything back, so running it again is
// safe. It tries three times.
func (s *Store) writeRetrying(ctx context.Context, fn func(tx pgx.Tx) error) error {
	var err error
	for range 3 {
		err = s.write(ctx, fn)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || (pgErr.Code != "40P01" && pgErr.Code != "40001") {
			return err
		}
	}
	return err
}

// cleanupContext is for closing and rolling back: it outlives ctx's
// cancellation but not by more than a few seconds.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
}

// publish records changes and notifies the watchers of every instance, in
// the caller's transaction, so watchers see them exactly when the mutation
// is visible. Call it last in the transaction: the lock it takes makes
// change rows commit in seq order, which watchers rely on to resume after
// the last seq they saw without skipping one that committed late. (Within
// RecordChange only the change's audit entries follow it: one insert
// each.)
func (s *Store) publish(ctx context.Context, tx pgx.Tx, changes ...keygate.Change) error {
	if len(changes) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, s.lockKey(lockChanges))
	at := ts(s.now())
	for _, c := range changes {
		// Counted as seen before commit: at worst a replica read falls back
		// to the primary for a change that then rolled back.
		b.Queue(`INSERT INTO changes (kind, id, created_at) VALUES ($1, $2, $3) RETURNING seq`, c.Kind, c.ID, at).
			QueryRow(func(row pgx.Row) error {
				var seq int64
				if err := row.Scan(&seq); err != nil {
					return err
				}
				s.sawChange(seq)
				return nil
			})
	}
	b.Queue(`SELECT pg_notify($1, '')`, s.channel)
	return dbError(tx.SendBatch(ctx, b).Close())
}

// dbError turns driver errors into keygate errors where the caller can act
// on them; anything else is returned wrapped and becomes EINTERNAL.
func dbError(err error) error {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pgErr):
		switch {
		case pgErr.Code == "23505": // unique_violation
			return keygate.Errorf(keygate.ECONFLICT, "It already exists.")
		case pgErr.Code == "23503": // foreign_key_violation
			return keygate.Errorf(keygate.ENOTFOUND, "A record it refers to does not exist.")
		case pgErr.Code == "40001" || pgErr.Code == "40P01" || pgErr.Code == "55P03":
			// serialization failure, deadlock, lock not available
			return fmt.Errorf("postgres: %w: %w", keygate.Errorf(keygate.EUNAVAILABLE, "The database is busy; try again."), err)
		case pgErr.Code[:2] == "08" || pgErr.Code[:2] == "53" || pgErr.Code[:2] == "57":
			// connection exceptions, insufficient resources, operator
			// intervention (shutdown, terminated backend)
			return unavailable(err)
		}
	case isConnectionError(err):
		return unavailable(err)
	}
	return fmt.Errorf("postgres: %w", err)
}

// unavailable is the error for a database that cannot be reached. It wraps
// the cause for logs; the cause names host and user, never the password.
func unavailable(err error) error {
	return fmt.Errorf("postgres: %w: %w", keygate.Errorf(keygate.EUNAVAILABLE, "The database is unavailable."), err)
}

// isConnectionError reports whether err means the connection, not the
// query, failed.
func isConnectionError(err error) bool {
	var (
		connectErr *pgconn.ConnectError
		netErr     net.Error
	)
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}

// retryRead runs a read once more when it failed because its connection
// had died: after a database restart, or an operator's
// pg_terminate_backend, the pool still holds connections that were idle
// when it happened, and each would fail one request. The pool is reset so
// the retry, and the requests after it, get fresh connections. Reads only:
// a write that failed this way may have committed.
func (s *Store) retryRead(ctx context.Context, read func() error) error {
	err := read()
	if err != nil && ctx.Err() == nil && deadConnection(err) {
		s.pool.Reset()
		err = read()
	}
	return err
}

// deadConnection reports whether err means an established connection was
// lost (not that a new one could not be made: then retrying only delays
// the answer).
func deadConnection(err error) bool {
	var (
		pgErr      *pgconn.PgError
		connectErr *pgconn.ConnectError
	)
	switch {
	case errors.As(err, &connectErr):
		return false
	case errors.As(err, &pgErr):
		// admin_shutdown (pg_terminate_backend, fast shutdown), crash_shutdown
		return pgErr.Code == "57P01" || pgErr.Code == "57P02"
	}
	return isConnectionError(err)
}

// constraintViolated reports whether err is a unique violation of the named
// constraint.
func constraintViolated(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}

// ts is how every time is stored: UTC, to the millisecond, the precision
// both stores keep.
func ts(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// nullTS stores an optional time; nil is NULL.
func nullTS(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := ts(*t)
	return &v
}

// utc returns a stored optional time in UTC.
func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC()
	return &v
}

// createdAt returns t, or now when t is unset, so callers may leave
// CreatedAt to the store. It is what the store keeps: to the millisecond.
func (s *Store) createdAt(t time.Time) time.Time {
	if t.IsZero() {
		return ts(s.now())
	}
	return ts(t)
}

// notFound turns pgx.ErrNoRows into ENOTFOUND with the caller's message.
func notFound(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return keygate.Errorf(keygate.ENOTFOUND, "%s not found.", what)
	}
	return dbError(err)
}

// affectedOne returns ENOTFOUND unless the command changed a row.
func affectedOne(tag pgconn.CommandTag, err error, what string) error {
	if err != nil {
		return dbError(err)
	}
	if tag.RowsAffected() == 0 {
		return keygate.Errorf(keygate.ENOTFOUND, "%s not found.", what)
	}
	return nil
}

// nonNil makes a nil slice an empty one: a nil []string is stored as NULL,
// and the array columns are NOT NULL.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// nullText stores an optional string; "" is NULL, so unique indexes ignore
// it.
func nullText(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
