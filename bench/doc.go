// Package bench holds keygate's benchmarks at scale: a store holding a
// million tokens (SQLite and PostgreSQL) under the gateway's token cache.
// It has no code of its own; `go test -bench` runs it, and its Test
// functions are none, so the normal test suite spends nothing here. The
// side-by-side harness (run.sh) lives in this directory too.
package bench
