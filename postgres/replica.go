package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate"
)

// replicaRestTime is how long a replica that failed a read is left alone
// before lookups try it again, so a replica that is down costs one failed
// read per rest, not one per request.
const replicaRestTime = 5 * time.Second

// replica is a streaming (hot standby) copy of the database that token
// lookups may read from. Everything else reads and writes the primary.
type replica struct {
	pool      *pgxpool.Pool
	restUntil atomic.Int64 // UnixNano before which the replica is not asked
}

// replicaStats counts where token lookups were answered, for tests and the
// operator's understanding of replica lag.
type replicaStats struct {
	hits      atomic.Int64 // answered by a replica
	fallbacks atomic.Int64 // replica behind, missing the token, or failing: asked the primary
}

// WithReplicas makes token lookups (the gateway's read on a cache miss) go
// to these read replicas of the database, round-robin. Each URL must reach
// the same schema as the primary's URL. See findTokenOnReplica for why a
// replica can never undo a revocation this store has seen.
func WithReplicas(urls ...string) Option {
	return func(s *Store) { s.replicaURLs = append(s.replicaURLs, urls...) }
}

// openReplicas creates a pool per replica URL. Pools connect lazily, so a
// replica that is down at start only costs fallbacks to the primary.
func (s *Store) openReplicas(primary *pgxpool.Config) error {
	for i, raw := range s.replicaURLs {
		cfg, err := pgxpool.ParseConfig(raw)
		if err != nil {
			// The parser's message quotes the URL; keep it out of logs.
			return fmt.Errorf("postgres: replica URL %d cannot be parsed", i+1)
		}
		if cfg.ConnConfig.ConnectTimeout == 0 {
			cfg.ConnConfig.ConnectTimeout = primary.ConnConfig.ConnectTimeout
		}
		if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
			cfg.ConnConfig.RuntimeParams["application_name"] = "keygate (replica reads)"
		}
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			return fmt.Errorf("postgres: replica %d: %w", i+1, err)
		}
		s.replicas = append(s.replicas, &replica{pool: pool})
	}
	if len(s.replicas) == 0 {
		return nil
	}
	// A replica far behind at start must not answer with what it has not
	// replayed: everything committed before now counts as seen.
	var newest int64
	if err := s.pool.QueryRow(context.Background(), `SELECT COALESCE(MAX(seq), 0) FROM changes`).Scan(&newest); err != nil {
		return fmt.Errorf("postgres: reading the newest change: %w", err)
	}
	s.sawChange(newest)
	return nil
}

// closeReplicas closes every replica pool.
func (s *Store) closeReplicas() {
	for _, r := range s.replicas {
		r.pool.Close()
	}
}

// sawChange records that a change with this seq exists (this store
// published it, or its change feed delivered it). Replica reads that have
// not replayed that far are not trusted.
func (s *Store) sawChange(seq int64) {
	for {
		cur := s.changesSeen.Load()
		if seq <= cur || s.changesSeen.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// nextReplica returns the next replica not resting after a failure, or nil.
func (s *Store) nextReplica() *replica {
	n := len(s.replicas)
	if n == 0 {
		return nil
	}
	start := s.replicaTurn.Add(1)
	now := time.Now().UnixNano()
	for i := range n {
		r := s.replicas[(int(start)+i)%n]
		if r.restUntil.Load() <= now {
			return r
		}
	}
	return nil
}

// findTokenOnReplica answers a token lookup from a replica when it can, and
// reports false when the primary must answer instead:
//
//   - the replica has no such token: it may have been created a moment ago
//     and not replayed yet (read-your-writes for new tokens);
//   - the replica has not replayed every change this store has seen: the
//     token it holds may be revoked or rotated since. The replica's newest
//     change seq comes back in the same query, and this store's own
//     revocations and everything its change feed delivered are counted
//     (sawChange) before any cache is told, so a revocation that reached
//     this instance is never undone by a replica behind it;
//   - the replica failed: it rests for replicaRestTime.
func (s *Store) findTokenOnReplica(ctx context.Context, hash string) (*keygate.Token, bool) {
	r := s.nextReplica()
	if r == nil {
		return nil, false
	}
	want := s.changesSeen.Load()
	var replayed int64
	row := r.pool.QueryRow(ctx, `SELECT `+tokenColumns+`,
		(SELECT COALESCE(MAX(seq), 0) FROM changes) FROM tokens
		WHERE hash = $1 OR previous_hash = $1 ORDER BY hash = $1 DESC LIMIT 1`, hash)
	tok, err := scanToken(rowWithSeq{Row: row, seq: &replayed})
	switch {
	case err == nil && replayed >= want:
		s.replicaStats.hits.Add(1)
		return tok, true
	case err != nil && !errors.Is(err, pgx.ErrNoRows) && ctx.Err() == nil:
		r.restUntil.Store(time.Now().Add(replicaRestTime).UnixNano())
		s.logger.Warn("postgres: a read replica failed; reading from the primary", "error", err,
			"rest", replicaRestTime)
	}
	s.replicaStats.fallbacks.Add(1)
	return nil, false
}

// rowWithSeq scans one extra trailing column into seq, so scanToken serves
// the replica query too.
type rowWithSeq struct {
	pgx.Row
	seq *int64
}

func (r rowWithSeq) Scan(dest ...any) error { return r.Row.Scan(append(dest, r.seq)...) }
