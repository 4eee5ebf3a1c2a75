// Package bench holds keygate's benchmarks at scale: a store holding a
// million tokens (SQLite and PostgreSQL) under the gateway's token cache.
// It has no code of its own and no Test functions: only `go test -bench`
// runs anything here, so the normal test suite spends nothing on it. The
// side-by-side harness (run.sh) lives in this directory too.
package bench
