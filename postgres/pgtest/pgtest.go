// Package pgtest gives tests a PostgreSQL schema of their own in the
// database at KEYGATE_TEST_POSTGRES_URL, so test runs never see each
// other's data and can run side by side and again. Tests are skipped when
// the variable is unset, except under CI, where that fails them
// (testenv.Missing).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/internal/testenv"
)

// EnvURL names the variable holding the test database's URL.
const EnvURL = "KEYGATE_TEST_POSTGRES_URL"

// URL returns the test database's URL, creating the database when it does
// not exist yet. It skips (or, under CI, fails) the test when EnvURL is
// unset.
func URL(t testing.TB) string {
	t.Helper()
	raw := os.Getenv(EnvURL)
	if raw == "" {
		testenv.Missing(t, EnvURL+" is not set")
	}
	ensureDatabase(t, raw)
	return raw
}

// admin is one pool per test binary for creating and dropping schemas:
// a new connection costs tens of milliseconds, and every test makes two.
var admin struct {
	once sync.Once
	pool *pgxpool.Pool
	err  error
}

// adminExec runs one statement on the shared pool.
func adminExec(t testing.TB, base, sql string) {
	t.Helper()
	admin.once.Do(func() { admin.pool, admin.err = pgxpool.New(context.Background(), base) })
	if admin.err != nil {
		t.Fatalf("connecting to the test database: %v", admin.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.pool.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// NewSchema creates an empty schema in the test database and returns the
// database URL with search_path set to it; the schema is dropped when the
// test ends (after the test's own cleanups, which close its stores).
func NewSchema(t testing.TB) string {
	t.Helper()
	base := URL(t)
	var b [6]byte
	rand.Read(b[:])
	schema := "kgtest_" + hex.EncodeToString(b[:])
	adminExec(t, base, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize())
	t.Cleanup(func() {
		adminExec(t, base, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
	})
	return WithParam(t, base, "search_path", schema)
}

// WithParam returns rawURL with a query parameter set, e.g. search_path
// or application_name.
func WithParam(t testing.TB, rawURL, name, value string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("%s is not a URL", EnvURL)
	}
	q := u.Query()
	q.Set(name, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// Exec runs one statement on a connection of its own and fails the test
// when it fails.
func Exec(t testing.TB, rawURL, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		t.Fatalf("connecting to the test database: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// Terminate ends every backend connection whose application_name is name,
// as an operator's pg_terminate_backend or a database restart would, and
// returns how many it ended.
func Terminate(t testing.TB, rawURL, name string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		t.Fatalf("connecting to the test database: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `SELECT COUNT(*) FROM (
		SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = $1 AND pid <> pg_backend_pid()) AS t`, name).Scan(&n)
	if err != nil {
		t.Fatalf("terminating backends of %s: %v", name, err)
	}
	return n
}

// ensured records that ensureDatabase succeeded once in this test binary.
var ensured struct {
	sync.Mutex
	done bool
}

// ensureDatabase creates the database named in rawURL when it is missing,
// connecting to the server's "postgres" database to do it.
func ensureDatabase(t testing.TB, rawURL string) {
	t.Helper()
	ensured.Lock()
	defer ensured.Unlock()
	if ensured.done {
		return
	}
	defer func() { ensured.done = !t.Failed() }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, rawURL)
	if err == nil {
		conn.Close(ctx)
		return
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name
		t.Fatalf("connecting to the test database: %v", err)
	}
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		t.Fatalf("%s is not a PostgreSQL URL", EnvURL)
	}
	name := cfg.Database
	cfg.Database = "postgres"
	admin, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connecting to the server to create database %s: %v", name, err)
	}
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize())
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created meanwhile by another test binary
		return
	} else if err != nil {
		t.Fatalf("creating database %s: %v", name, err)
	}
}

// Proxy forwards TCP connections to the test database, so a test can cut
// keygate off from PostgreSQL and let it back, as a network failure or a
// database restart would, without touching the server other tests use.
type Proxy struct {
	t      testing.TB
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	// flowing is closed while bytes are forwarded; Blackhole replaces it
	// with an open channel that holds every byte until Forward.
	flowing chan struct{}
}

// NewProxy starts a proxy to the host and port of rawURL; it stops when
// the test ends.
func NewProxy(t testing.TB, rawURL string) *Proxy {
	t.Helper()
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		t.Fatalf("%s is not a PostgreSQL URL", EnvURL)
	}
	p := &Proxy{t: t, target: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), conns: map[net.Conn]bool{}, flowing: closedChan()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.Cut)
	return p
}

// OpenBehindProxy opens a store with open (postgres.Open) on a schema of
// its own, reached through a Proxy, for tests of what a database that
// stops answering does to the store's callers. The store is closed when
// the test ends.
func OpenBehindProxy[S io.Closer, O any](t testing.TB, open func(context.Context, string, ...O) (S, error), opts ...O) (S, *Proxy) {
	t.Helper()
	base := NewSchema(t)
	p := NewProxy(t, base)
	st, err := open(context.Background(), p.URL(base), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, p
}

// URL returns rawURL pointed at the proxy.
func (p *Proxy) URL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		p.t.Fatalf("%s is not a URL", EnvURL)
	}
	u.Host = p.addr
	return u.String()
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// Blackhole stops forwarding while leaving every connection open and
// accepting new ones, as a network that drops packets or a database that
// hangs does: clients connect and write, and nothing comes back. What was
// sent meanwhile is delivered after Forward, as TCP would retransmit it.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flowing:
		p.flowing = make(chan struct{})
	default: // already held
	}
}

// Forward ends a Blackhole.
func (p *Proxy) Forward() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flowing:
	default:
		close(p.flowing)
	}
}

// waitFlowing blocks while the proxy is blackholed.
func (p *Proxy) waitFlowing() {
	p.mu.Lock()
	flowing := p.flowing
	p.mu.Unlock()
	<-flowing
}

// Cut closes every proxied connection and stops accepting new ones:
// clients see their connections drop and new ones refused. It ends a
// Blackhole, so nothing stays held.
func (p *Proxy) Cut() {
	p.Forward()
	p.Refuse()
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// Refuse stops accepting connections and leaves the established ones
// forwarding, as a database at its connection limit does: what is
// connected keeps working, and whatever reconnects is refused until
// Restore.
func (p *Proxy) Refuse() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
}

// Restore accepts connections again, on the same address.
func (p *Proxy) Restore() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy: listening again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(client)
		}
	}()
}

func (p *Proxy) forward(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // cut meanwhile
		p.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	p.conns[client], p.conns[server] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.waitFlowing()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	client.Close()
	server.Close()
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

// Conn returns a connection of its own to rawURL, closed when the test ends.
func Conn(t testing.TB, rawURL string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		t.Fatalf("connecting to the test database: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Outage is the check every store deadline gets. call asks something
// that reads the database through p, and returns nil when the answer is
// the working one, else an error that describes the answer. It must work
// at first; with the database blackholed it must return within limit (30
// s without an answer fails the test at once), and what it returned is
// handed back for the caller to judge; once the database answers again it
// must work again within 10 s, without a restart.
func Outage(t testing.TB, p *Proxy, limit time.Duration, call func() error) (during error, took time.Duration) {
	t.Helper()
	timed := func() (error, time.Duration) {
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- call() }()
		select {
		case err := <-done:
			return err, time.Since(start)
		case <-time.After(30 * time.Second):
			t.Fatal("still waiting for the database 30s after it stopped answering")
			return nil, 0
		}
	}
	if err, _ := timed(); err != nil {
		t.Fatalf("before the outage: %v", err)
	}
	p.Blackhole()
	during, took = timed()
	if during == nil {
		t.Errorf("with the database not answering, the answer was the working one")
	}
	if took > limit {
		t.Errorf("with the database not answering, answered after %v, want within %v", took.Round(time.Millisecond), limit)
	}
	p.Forward()
	restored := time.Now()
	for {
		err, _ := timed()
		if err == nil {
			break
		}
		if time.Since(restored) > 10*time.Second {
			t.Fatalf("still %v 10s after the database answered again", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the database answering again: working after %v, without a restart", time.Since(restored).Round(time.Millisecond))
	return during, took
}
