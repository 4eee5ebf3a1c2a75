// Package cluster holds keygate's end-to-end tests of several instances:
// three keygates started in this process with server.New, as
// `keygate serve` starts them, on one PostgreSQL database and one Redis.
// They prove what an operator running more than one instance relies on: a
// token deleted through one instance is refused by the others within a
// second, the rate limit is shared with no overshoot, the change feed
// survives pg_terminate_backend, a database outage degrades gracefully and
// recovers without a restart, and last-used times are batched without lost
// updates.
//
// The tests need KEYGATE_TEST_POSTGRES_URL and KEYGATE_TEST_REDIS_URL; they
// are skipped without them, except under CI, where that fails them.
package cluster
