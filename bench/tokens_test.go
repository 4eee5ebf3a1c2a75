package bench_test

// Benchmarks of token verification with a million stored tokens, in
// SQLite and in PostgreSQL (skipped when KEYGATE_TEST_POSTGRES_URL is
// unset), against the same figures with a thousand:
//
//	go test -run '^$' -bench . -benchtime 2s ./bench/
//
// The stores are filled once, in bulk, and kept: the SQLite file under
// $KEYGATE_BENCH_DIR (default $TMPDIR/keygate-bench), the PostgreSQL
// tokens in a schema of the test database, both named after the
// migrations and the fill's own version, so a schema change fills anew.
// The first run spends a minute or two filling; later ones start at once.

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/postgres"
	"github.com/keygate/keygate/postgres/pgtest"
	"github.com/keygate/keygate/sqlite"
)

const (
	// tokensPerOrg spreads the tokens over organizations, as a real
	// deployment does: a million tokens are 10,000 organizations'.
	tokensPerOrg = 100
	// fillVersion names the fill's shape; change it when the rows change.
	fillVersion = "1"
	// defaultCacheEntries is gateway.TokensOptions' default MaxEntries.
	defaultCacheEntries = 100_000
	// childEnv, when set, makes the test binary the process whose memory
	// BenchmarkMemoryWithDefaultCache measures.
	childEnv = "KEYGATE_BENCH_MEMORY_CHILD"
)

var sizes = []int{1_000, 1_000_000}

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(memoryChild(spec))
	}
	os.Exit(m.Run())
}

// The i-th stored token: its secret (which only the benchmark knows; the
// store holds its SHA-256, as for every token), a random-looking id and
// its organization.
func secret(i int) string  { return string(appendSecret(nil, i)) }
func tokenID(i int) string { return "tok_" + digest("token", i) }
func orgID(j int) string   { return "org_" + digest("org", j) }
func orgCount(n int) int   { return max(1, n/tokensPerOrg) }

// appendSecret appends the i-th secret to dst without allocating, so a
// benchmark can make the secret it verifies in the loop (as a request
// brings it, in a header just read) rather than read it from a table of
// as many secrets as it verifies.
func appendSecret(dst []byte, i int) []byte {
	dst = append(dst, "cm_live_bench"...)
	var digits [12]byte
	for k := len(digits) - 1; k >= 0; k-- {
		digits[k] = '0' + byte(i%10)
		i /= 10
	}
	return append(append(dst, digits[:]...), 'X')
}

// The stores were filled with the secrets' hashes: appendSecret must
// keep writing the text they were made from.
func TestSecretsAreTheFilledOnes(t *testing.T) {
	for _, i := range []int{0, 7, 999, 999_999, 123_456_789_012} {
		if got, want := secret(i), fmt.Sprintf("cm_live_bench%012dX", i); got != want {
			t.Errorf("secret(%d) = %q, want %q", i, got, want)
		}
	}
}

func digest(kind string, i int) string {
	sum := sha256.Sum256([]byte(kind + strconv.Itoa(i)))
	return hex.EncodeToString(sum[:12])
}

// fillKey names a filled store: the fill's version, its size and every
// migration of both stores.
func fillKey(tb testing.TB, n int) string {
	h := sha256.New()
	fmt.Fprintf(h, "fill %s tokens %d\n", fillVersion, n)
	for _, dir := range []string{"../sqlite/migrations", "../postgres/migrations"} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			tb.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				tb.Fatal(err)
			}
			fmt.Fprintf(h, "%s %d\n", e.Name(), len(b))
			h.Write(b)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// backend opens a store of n tokens, filling it first when no earlier run
// left one.
type backend struct {
	name string
	open func(tb testing.TB, n int) (store, string) // the store and what reopens it in a child
}

type store interface {
	gateway.TokenStore
	Close() error
}

var backends = []backend{
	{"sqlite", func(tb testing.TB, n int) (store, string) {
		path := sqliteFile(tb, n)
		return openSQLite(tb, path), "sqlite " + path
	}},
	{"postgres", func(tb testing.TB, n int) (store, string) {
		url := postgresURL(tb, n)
		return openPostgres(tb, url), "postgres " + url
	}},
}

func openSQLite(tb testing.TB, path string) store {
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func openPostgres(tb testing.TB, url string) store {
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// sqliteFile returns the path of an SQLite database holding n tokens,
// filling it in one transaction when it is not there yet.
func sqliteFile(tb testing.TB, n int) string {
	dir := os.Getenv("KEYGATE_BENCH_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "keygate-bench")
	}
	path := filepath.Join(dir, fmt.Sprintf("tokens-%d-%s.db", n, fillKey(tb, n)))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	ctx := context.Background()
	tmp := path + ".filling"
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(tmp + suffix)
	}
	s, err := sqlite.Open(ctx, tmp) // the schema, by the store's own migrations
	if err != nil {
		tb.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", "file:"+tmp+"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	created := time.Now().Add(-24 * time.Hour).UnixMilli()
	expires := time.Now().Add(3 * 365 * 24 * time.Hour).UnixMilli()
	for j := range orgCount(n) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO organizations (id, slug, name, plan, created_at)
			VALUES (?, ?, ?, 'free', ?)`, orgID(j), fmt.Sprintf("org-%d", j), fmt.Sprintf("Organization %d", j), created); err != nil {
			tb.Fatal(err)
		}
	}
	// Rows go in 100 at a time: one statement per row would spend most of
	// the fill in the driver.
	const batch = 100
	row := "(?, ?, 'cannmenus', ?, '[\"products:read\"]', 'live', ?, ?, ?, 'usr_bench', ?)"
	insert := func(rows int) *sql.Stmt {
		st, err := tx.PrepareContext(ctx, `INSERT INTO tokens (id, organization_id, api, name, scopes,
			environment, hash, hint, created_at, created_by, expires_at) VALUES `+strings.TrimSuffix(strings.Repeat(row+",", rows), ","))
		if err != nil {
			tb.Fatal(err)
		}
		return st
	}
	full := insert(batch)
	args := make([]any, 0, batch*8)
	for i := 0; i < n; i += batch {
		rows := min(batch, n-i)
		args = args[:0]
		for k := i; k < i+rows; k++ {
			sec := secret(k)
			args = append(args, tokenID(k), orgID(k%orgCount(n)), fmt.Sprintf("token %d", k),
				keygate.HashToken(sec), keygate.TokenHint("cm_live_", sec), created, expires)
		}
		st := full
		if rows < batch {
			st = insert(rows)
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		tb.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `ANALYZE`); err != nil {
		tb.Fatal(err)
	}
	db.Close()
	for _, suffix := range []string{"-wal", "-shm"} {
		os.Remove(tmp + suffix)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("filled %s with %d tokens in %s", path, n, time.Since(start).Round(time.Second))
	return path
}

// postgresURL returns the test database's URL with search_path set to a
// schema holding n tokens, filling it with COPY when it is not there yet.
// The schema is kept for later runs; drop kgbench_* schemas to reclaim
// the space.
func postgresURL(tb testing.TB, n int) string {
	base := pgtest.URL(tb) // skips without KEYGATE_TEST_POSTGRES_URL
	ctx := context.Background()
	schema := fmt.Sprintf("kgbench_%d_%s", n, fillKey(tb, n))
	url := pgtest.WithParam(tb, base, "search_path", schema)
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
		tb.Fatal(err)
	}
	if exists {
		return url
	}
	// Filled under another name and renamed at the end: a schema with the
	// final name is always complete.
	start := time.Now()
	filling := schema + "_filling"
	exec := func(sql string) {
		if _, err := conn.Exec(ctx, sql); err != nil {
			tb.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`DROP SCHEMA IF EXISTS ` + filling + ` CASCADE`)
	exec(`CREATE SCHEMA ` + filling)
	s := openPostgres(tb, pgtest.WithParam(tb, base, "search_path", filling)) // the schema, by the store's migrations
	s.Close()
	exec(`SET search_path TO ` + filling)
	created := time.Now().Add(-24 * time.Hour)
	expires := time.Now().Add(3 * 365 * 24 * time.Hour)
	orgs := orgCount(n)
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"organizations"}, []string{"id", "slug", "name", "plan", "created_at"},
		pgx.CopyFromSlice(orgs, func(j int) ([]any, error) {
			return []any{orgID(j), fmt.Sprintf("org-%d", j), fmt.Sprintf("Organization %d", j), "free", created}, nil
		})); err != nil {
		tb.Fatal(err)
	}
	scopes := []string{"products:read"}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"tokens"}, []string{"id", "organization_id", "api", "name", "scopes",
		"environment", "hash", "hint", "created_at", "created_by", "expires_at"},
		pgx.CopyFromSlice(n, func(i int) ([]any, error) {
			sec := secret(i)
			return []any{tokenID(i), orgID(i % orgs), "cannmenus", fmt.Sprintf("token %d", i), scopes, "live",
				keygate.HashToken(sec), keygate.TokenHint("cm_live_", sec), created, "usr_bench", expires}, nil
		})); err != nil {
		tb.Fatal(err)
	}
	exec(`ANALYZE`)
	exec(`ALTER SCHEMA ` + filling + ` RENAME TO ` + schema)
	tb.Logf("filled schema %s with %d tokens in %s", schema, n, time.Since(start).Round(time.Second))
	return url
}

// opened keeps each store and warmed cache for the whole run: the testing
// package calls a benchmark several times, and a million-token warm-up
// per call would dwarf what it measures.
var opened = struct {
	sync.Mutex
	m map[string]*onceValue
}{m: map[string]*onceValue{}}

type onceValue struct {
	once sync.Once
	v    any
	done bool
}

func once[T any](key string, make func() T) T {
	opened.Lock()
	e := opened.m[key]
	if e == nil {
		e = &onceValue{}
		opened.m[key] = e
	}
	opened.Unlock()
	e.once.Do(func() {
		e.v = make() // a make that skips or fails leaves done false
		e.done = true
	})
	if !e.done {
		// An earlier make skipped (no PostgreSQL) or failed: so does this.
		opened.Lock()
		delete(opened.m, key)
		opened.Unlock()
		return once(key, make)
	}
	return e.v.(T)
}

type openedStore struct {
	s    store
	spec string
}

func openStore(b *testing.B, be backend, n int) openedStore {
	return once(fmt.Sprintf("store %s %d", be.name, n), func() openedStore {
		s, spec := be.open(b, n)
		return openedStore{s, spec}
	})
}

// warm looks up the tokens given by index(k) for k < count from several
// goroutines, as a busy instance fills its cache.
func warm(tb testing.TB, tokens *gateway.Tokens, count int, index func(k int) int) {
	ctx := context.Background()
	var wg sync.WaitGroup
	workers := 2 * runtime.GOMAXPROCS(0)
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for k := w; k < count; k += workers {
				if _, _, err := tokens.Lookup(ctx, keygate.DigestToken(secret(index(k)))); err != nil {
					errs <- fmt.Errorf("token %d: %w", index(k), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
}

// BenchmarkVerifyCachedToken is the verification of a token the cache
// holds, as the gateway makes it for every request: the secret's SHA-256,
// the cache lookup of the token and its organization, and the request's
// checks of the token (its API, revocation, secret and expiry, read from
// the cache's entry). With a million
// stored tokens the cache holds its default 100,000 of them, or (cached=)
// as few as with a thousand; with a thousand, all. The goal: a million
// within 1.1× of a thousand.
//
// Each secret is written into a stack buffer from its index in the loop,
// the same work in every case. Read from a slice of one string per cached
// token, the input itself cost the 100,000-entry case two misses to
// memory per lookup (the slice's string header and the string's bytes,
// 4 MB of them, strided over) that the 1,000-entry case, whose 40 KB stay
// in the CPU's caches, did not pay: a cost of the benchmark, not of
// keygate, whose requests bring the secret in a header just read.
func BenchmarkVerifyCachedToken(b *testing.B) {
	for _, be := range backends {
		for _, c := range []struct{ stored, cached int }{
			{1_000, 1_000},
			{1_000_000, defaultCacheEntries},
			// The store's size alone, the cache as small as with a
			// thousand tokens: what a million costs a verification that
			// does not come from the cache's own size.
			{1_000_000, 1_000},
		} {
			name := fmt.Sprintf("%s/tokens=%d", be.name, c.stored)
			if c.stored != c.cached && c.cached != defaultCacheEntries {
				name += fmt.Sprintf("/cached=%d", c.cached)
			}
			b.Run(name, func(b *testing.B) {
				type warmed struct {
					tokens *gateway.Tokens
					step   int
				}
				w := once("cached "+name, func() warmed {
					s := openStore(b, be, c.stored)
					// A TTL longer than the run: every lookup below is a
					// hit. The store timeout is the warm-up's only: on a
					// busy machine a store read can take longer than the
					// default, and the warm-up is not what is measured.
					tokens := gateway.NewTokens(s.s, gateway.TokensOptions{TTL: time.Hour, StoreTimeout: time.Minute})
					step := c.stored / c.cached
					warm(b, tokens, c.cached, func(k int) int { return k * step })
					if got := tokens.Len(); got != c.cached {
						b.Fatalf("the cache holds %d tokens after warming %d", got, c.cached)
					}
					return warmed{tokens, step}
				})
				api := w.tokens.APIRef("cannmenus")
				hits0, misses0, _ := w.tokens.CacheStats()
				i := 0
				var buf [32]byte
				b.ReportAllocs()
				for b.Loop() {
					sec := appendSecret(buf[:0], i*w.step)
					if _, _, ok, err := w.tokens.CachedFor(api, keygate.DigestToken(string(sec)), time.Now()); !ok || err != nil {
						b.Fatalf("token %d: cached %v, error %v", i*w.step, ok, err)
					}
					i = (i + 7919) % c.cached // a prime stride: all over the cache
				}
				b.StopTimer()
				if hits, misses, _ := w.tokens.CacheStats(); misses != misses0 || hits == hits0 {
					b.Fatalf("%d misses during the run: not a cached lookup", misses-misses0)
				}
			})
		}
	}
}

// BenchmarkLookupUncachedToken is a cache miss as a request meets it: the
// lookup of a token this instance has not seen (its organization cached,
// as it is in a steady state), one at a time. ns/op is the mean; p50-us
// and p99-us the latency percentiles of the run's lookups.
func BenchmarkLookupUncachedToken(b *testing.B) {
	for _, be := range backends {
		for _, n := range sizes {
			b.Run(fmt.Sprintf("%s/tokens=%d", be.name, n), func(b *testing.B) {
				type cursor struct {
					tokens *gateway.Tokens
					next   int
				}
				orgs := orgCount(n)
				fresh := func(s store) *gateway.Tokens {
					tokens := gateway.NewTokens(s, gateway.TokensOptions{})
					// Tokens 0..orgs-1 cover every organization; the
					// measured lookups are of the others.
					warm(b, tokens, orgs, func(k int) int { return k })
					return tokens
				}
				s := openStore(b, be, n)
				c := once(fmt.Sprintf("uncached %s %d", be.name, n), func() *cursor { return &cursor{tokens: fresh(s.s)} })
				ctx := context.Background()
				latencies := make([]time.Duration, 0, 1024)
				b.ReportAllocs()
				for b.Loop() {
					if c.next == n-orgs {
						b.StopTimer()
						c.tokens, c.next = fresh(s.s), 0
						b.StartTimer()
					}
					// A prime stride over the tokens not yet looked up,
					// so the reads land all over the table.
					digest := keygate.DigestToken(secret(orgs + c.next*7919%(n-orgs)))
					c.next++
					start := time.Now()
					if _, _, err := c.tokens.Lookup(ctx, digest); err != nil {
						b.Fatal(err)
					}
					latencies = append(latencies, time.Since(start))
				}
				slices.Sort(latencies)
				pct := func(p float64) float64 {
					return float64(latencies[int(p*float64(len(latencies)-1))].Nanoseconds()) / 1e3
				}
				b.ReportMetric(pct(0.50), "p50-us")
				b.ReportMetric(pct(0.99), "p99-us")
			})
		}
	}
}

// memoryReport is what the child process measured.
type memoryReport struct {
	Entries     int     `json:"entries"`
	Lookups     int     `json:"lookups"`
	RSSOpenMB   float64 `json:"rss_open_mb"`
	RSSMB       float64 `json:"rss_mb"`
	PeakRSSMB   float64 `json:"peak_rss_mb"`
	HeapMB      float64 `json:"heap_mb"`
	BytesEntry  float64 `json:"bytes_per_entry"`
	WarmSeconds float64 `json:"warm_seconds"`
}

// BenchmarkMemoryWithDefaultCache measures a fresh process holding a store
// of a million tokens and the gateway's token cache at its default size,
// after KEYGATE_BENCH_WARM (default 200,000) lookups of distinct tokens:
// twice what the cache holds, so it is full and has evicted. rss-MB is
// the process's resident memory then (VmRSS), peak-rss-MB its high-water
// mark, bytes/entry the live heap the lookups added divided by the
// entries cached. The goal: RSS at most 300 MB.
func BenchmarkMemoryWithDefaultCache(b *testing.B) {
	const n = 1_000_000
	lookups := 2 * defaultCacheEntries
	if v := os.Getenv("KEYGATE_BENCH_WARM"); v != "" {
		var err error
		if lookups, err = strconv.Atoi(v); err != nil || lookups <= 0 {
			b.Fatalf("KEYGATE_BENCH_WARM=%q: want a count of lookups", v)
		}
	}
	for _, be := range backends {
		b.Run(fmt.Sprintf("%s/tokens=%d", be.name, n), func(b *testing.B) {
			s := openStore(b, be, n) // fills the store in this process if need be
			var r memoryReport
			for b.Loop() {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %d %s", childEnv, n, lookups, s.spec))
				cmd.Stderr = os.Stderr
				out, err := cmd.Output()
				if err != nil {
					b.Fatalf("the measuring process: %v", err)
				}
				if err := json.Unmarshal(out, &r); err != nil {
					b.Fatalf("the measuring process said %q: %v", out, err)
				}
			}
			b.ReportMetric(r.RSSMB, "rss-MB")
			b.ReportMetric(r.PeakRSSMB, "peak-rss-MB")
			b.ReportMetric(r.RSSOpenMB, "rss-before-MB")
			b.ReportMetric(r.BytesEntry, "bytes/entry")
			b.ReportMetric(float64(r.Entries), "entries")
		})
	}
}

// memoryChild is the process BenchmarkMemoryWithDefaultCache measures:
// spec is "TOKENS LOOKUPS sqlite PATH" or "TOKENS LOOKUPS postgres URL".
func memoryChild(spec string) int {
	f := strings.SplitN(spec, " ", 4)
	fail := func(err any) int { fmt.Fprintln(os.Stderr, "memory child:", err); return 1 }
	if len(f) != 4 {
		return fail("bad spec")
	}
	n, err1 := strconv.Atoi(f[0])
	lookups, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return fail("bad spec")
	}
	ctx := context.Background()
	var s store
	var err error
	switch f[2] {
	case "sqlite":
		s, err = sqlite.Open(ctx, f[3])
	case "postgres":
		s, err = postgres.Open(ctx, f[3])
	default:
		return fail("unknown store " + f[2])
	}
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	tokens := gateway.NewTokens(s, gateway.TokensOptions{}) // the defaults keygate serve uses
	// One lookup first, so the store's connections and statements exist
	// before the baseline.
	if _, _, err := tokens.Lookup(ctx, keygate.DigestToken(secret(0))); err != nil {
		return fail(err)
	}
	r := memoryReport{Lookups: lookups}
	heap0 := liveHeap()
	r.RSSOpenMB = procStatusMB("VmRSS")
	start := time.Now()
	var failed error
	tb := &childTB{fail: func(err error) { failed = err }}
	warm(tb, tokens, lookups, func(k int) int { return 1 + k*7919%(n-1) })
	if failed != nil {
		return fail(failed)
	}
	r.WarmSeconds = time.Since(start).Seconds()
	heap1 := liveHeap()
	r.Entries = tokens.Len()
	r.HeapMB = float64(heap1) / (1 << 20)
	r.BytesEntry = (float64(heap1) - float64(heap0)) / float64(r.Entries)
	r.RSSMB = procStatusMB("VmRSS")
	r.PeakRSSMB = procStatusMB("VmHWM")
	runtime.KeepAlive(tokens)
	json.NewEncoder(os.Stdout).Encode(r)
	return 0
}

// childTB lets warm report to the child, which has no testing.B.
type childTB struct {
	testing.TB
	fail func(error)
}

func (c *childTB) Fatal(args ...any) { c.fail(fmt.Errorf("%v", args...)) }

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// procStatusMB reads a memory line of /proc/self/status (Linux) in MB;
// 0 where there is none.
func procStatusMB(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
