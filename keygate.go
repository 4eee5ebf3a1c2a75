// Package keygate is the domain of keygate, a self-hosted API access layer:
// organizations, users, API tokens, plans, entitlements, presets and the
// service interfaces that stores implement. It has no dependencies beyond
// the standard library; every edge (SQLite, PostgreSQL, Redis, HTTP) lives
// in a subpackage and cmd/keygate wires them.
//
// Nothing in this package, or any other, logs or returns a token secret after
// NewToken hands it to its creator.
package keygate
