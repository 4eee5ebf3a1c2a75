package session_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/password"
	"github.com/keygate/keygate/session"
	"github.com/keygate/keygate/sqlite"
)

const wrong = "Wrong email or password."

type loginCheck func(email, pw, ip, wantCode, wantMessage string)

// newLoginCheck returns a check that logs in through l, on a store with
// ann@example.com (password "right"), and compares the outcome.
func newLoginCheck(t *testing.T, l *session.LoginLimiter) loginCheck {
	ctx := context.Background()
	store := loginStore(t)
	return func(email, pw, ip, wantCode, wantMessage string) {
		t.Helper()
		u, err := l.CheckPassword(ctx, store, email, pw, ip)
		if keygate.ErrorCode(err) != wantCode || keygate.ErrorMessage(err) != wantMessage {
			t.Fatalf("%s/%s from %s: %v, want %s %q", email, pw, ip, err, wantCode, wantMessage)
		}
		if wantCode == "" && u.Email != "ann@example.com" {
			t.Fatalf("user %+v", u)
		}
	}
}

func loginStore(t *testing.T) *sqlite.Store {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	user := &keygate.User{ID: "usr_1", Email: "ann@example.com", Name: "Ann", PasswordHash: cheapHash("right"), CreatedAt: time.Now()}
	if err := store.CreateUser(ctx, user); err != nil {
		t.Fatal(err)
	}
	return store
}

func TestLoginLimiterPerAccountAndAddress(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	l := &session.LoginLimiter{PerAccountAddress: 2, PerAddress: 3, Window: 10 * time.Minute, Now: func() time.Time { return now }}
	check := newLoginCheck(t, l)
	check(" Ann@Example.com ", "right", "10.0.0.1", "", "")
	check("ann@example.com", "bad", "10.0.0.1", keygate.EUNAUTHORIZED, wrong)
	// A success clears the account's failures from that address.
	check("ann@example.com", "right", "10.0.0.1", "", "")
	check("ann@example.com", "bad", "10.0.0.1", keygate.EUNAUTHORIZED, wrong)
	now = now.Add(time.Minute)
	check("ann@example.com", "bad", "10.0.0.1", keygate.EUNAUTHORIZED, wrong)
	check("ann@example.com", "right", "10.0.0.1", keygate.ERATELIMITED, "Too many failed login attempts. Try again in 9 minutes.")
	// The owner, from another address, is not locked out.
	check("ann@example.com", "right", "10.0.0.2", "", "")
	// The window slides: the first failure leaves after 10 minutes.
	now = now.Add(9*time.Minute + time.Second)
	check("ann@example.com", "right", "10.0.0.1", "", "")

	// Per address, across accounts, unknown ones included.
	check("x@example.com", "bad", "10.9.9.9", keygate.EUNAUTHORIZED, wrong)
	check("y@example.com", "bad", "10.9.9.9", keygate.EUNAUTHORIZED, wrong)
	check("z@example.com", "bad", "10.9.9.9", keygate.EUNAUTHORIZED, wrong)
	check("ann@example.com", "right", "10.9.9.9", keygate.ERATELIMITED, "Too many failed login attempts. Try again in 10 minutes.")
	now = now.Add(9*time.Minute + 30*time.Second)
	check("ann@example.com", "right", "10.9.9.9", keygate.ERATELIMITED, "Too many failed login attempts. Try again in 30 seconds.")
	now = now.Add(31 * time.Second)
	check("ann@example.com", "right", "10.9.9.9", "", "")
}

// An IPv6 client counts by its /64, as in the gateway's per-IP limits: a
// host picks any address of its /64 at will, so a new address per guess
// gains it nothing. Another /64 is another client; ipv6_prefix_length 128
// counts every address on its own; IPv4 and IPv4-mapped IPv6 addresses
// are one client.
func TestLoginLimiterCountsAnIPv6ClientByItsPrefix(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	const tooMany = "Too many failed login attempts. Try again in 10 minutes."
	l := &session.LoginLimiter{PerAccountAddress: 2, PerAddress: 3, Window: 10 * time.Minute, Now: func() time.Time { return now }}
	check := newLoginCheck(t, l)
	// One account, one /64, a new address each time.
	check("ann@example.com", "bad", "2001:db8:1:2::1", keygate.EUNAUTHORIZED, wrong)
	check("ann@example.com", "bad", "2001:db8:1:2:aaaa::2", keygate.EUNAUTHORIZED, wrong)
	check("ann@example.com", "right", "2001:db8:1:2:ffff:ffff:ffff:fffe", keygate.ERATELIMITED, tooMany)
	check("ann@example.com", "right", "2001:db8:1:3::1", "", "") // the next /64
	// Across accounts, the same /64.
	check("x@example.com", "bad", "2001:db8:9:9::1", keygate.EUNAUTHORIZED, wrong)
	check("y@example.com", "bad", "2001:db8:9:9::2", keygate.EUNAUTHORIZED, wrong)
	check("z@example.com", "bad", "2001:db8:9:9::3", keygate.EUNAUTHORIZED, wrong)
	check("w@example.com", "bad", "2001:db8:9:9::4", keygate.ERATELIMITED, tooMany)
	// IPv4 and its IPv4-mapped IPv6 spelling are one client.
	check("x@example.com", "bad", "192.0.2.7", keygate.EUNAUTHORIZED, wrong)
	check("y@example.com", "bad", "::ffff:192.0.2.7", keygate.EUNAUTHORIZED, wrong)
	check("z@example.com", "bad", "192.0.2.7", keygate.EUNAUTHORIZED, wrong)
	check("w@example.com", "bad", "::ffff:192.0.2.7", keygate.ERATELIMITED, tooMany)

	whole := &session.LoginLimiter{PerAccountAddress: 2, Window: 10 * time.Minute, IPv6PrefixLength: 128, Now: func() time.Time { return now }}
	check = newLoginCheck(t, whole)
	check("ann@example.com", "bad", "2001:db8:1:2::1", keygate.EUNAUTHORIZED, wrong)
	check("ann@example.com", "bad", "2001:db8:1:2::1", keygate.EUNAUTHORIZED, wrong)
	check("ann@example.com", "right", "2001:db8:1:2::1", keygate.ERATELIMITED, tooMany)
	check("ann@example.com", "right", "2001:db8:1:2::2", "", "")
}

// Guesses for one account from many addresses are spaced out once the
// account's free failures are used: 1 s after the last, doubling up to the
// maximum. Addresses that logged in to the account before are exempt, so
// the guessing cannot lock its owner out.
func TestLoginLimiterSpacesOutGuessesForOneAccount(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	l := &session.LoginLimiter{PerAccountBeforeDelay: 3, MaxAccountDelay: 4 * time.Second, Now: func() time.Time { return now }}
	check := newLoginCheck(t, l)
	check("ann@example.com", "right", "192.0.2.1", "", "") // the owner's usual address
	ip := 0
	next := func() string { ip++; return fmt.Sprint("198.51.100.", ip) }
	for range 3 {
		check("ann@example.com", "guess", next(), keygate.EUNAUTHORIZED, wrong)
	}
	for _, delay := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		check("ann@example.com", "guess", next(), keygate.ERATELIMITED, "Too many failed login attempts. Try again in "+seconds(delay)+".")
		check("ann@example.com", "right", "203.0.113.9", keygate.ERATELIMITED, "Too many failed login attempts. Try again in "+seconds(delay)+".")
		check("ann@example.com", "right", "192.0.2.1", "", "")
		now = now.Add(delay)
		check("ann@example.com", "guess", next(), keygate.EUNAUTHORIZED, wrong)
	}
	// Known addresses are exempt from the spacing, not from their own limit.
	for range 5 {
		check("ann@example.com", "typo", "192.0.2.1", keygate.EUNAUTHORIZED, wrong)
	}
	check("ann@example.com", "right", "192.0.2.1", keygate.ERATELIMITED, "Too many failed login attempts. Try again in 15 minutes.")
}

func seconds(d time.Duration) string {
	if d == time.Second {
		return "1 second"
	}
	return fmt.Sprintf("%d seconds", d/time.Second)
}

// Thirty wrong passwords for one account at once: the attempts are counted
// before hashing, so only the allowance of five reaches argon2id.
func TestLoginLimiterCountsParallelAttemptsBeforeHashing(t *testing.T) {
	l := &session.LoginLimiter{}
	store := loginStore(t)
	before := password.Computed()
	codes := make(chan string, 30)
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.CheckPassword(context.Background(), store, "ann@example.com", fmt.Sprint("guess ", i), "192.0.2.7")
			codes <- keygate.ErrorCode(err)
		}()
	}
	wg.Wait()
	close(codes)
	count := map[string]int{}
	for c := range codes {
		count[c]++
	}
	hashed := password.Computed() - before
	t.Logf("30 parallel wrong passwords: %v; %d argon2id hashes computed", count, hashed)
	if count[keygate.EUNAUTHORIZED] > 5 || hashed > 5 || count[keygate.EUNAUTHORIZED]+count[keygate.ERATELIMITED]+count[keygate.EUNAVAILABLE] != 30 {
		t.Errorf("outcomes %v, %d hashes; want at most 5 checked", count, hashed)
	}
}

// cheapHash is an argon2id PHC string with the smallest parameters, which
// Verify reads from the hash: these tests are about the limiter, and the
// full 64 MiB cost per attempt would only make them slow.
func cheapHash(pw string) string {
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte(pw), salt, 1, 64, 1, 32)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=64,t=1,p=1$%s$%s", argon2.Version, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// A flood of logins from an address the limiter already stops writes one
// login.throttled entry, not one per request: refused attempts cost no
// hash, so without this anyone could grow the audit log as fast as they
// can send requests. An "email" longer than any address is not kept in
// the log either.
func TestLoginLimiterRecordsAFloodOfRefusalsOnce(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	store := loginStore(t)
	l := &session.LoginLimiter{PerAccountAddress: 2, PerAddress: 3, Window: 10 * time.Minute,
		Now: func() time.Time { return now }, Audit: &audit.Log{Store: store}}
	long := strings.Repeat("a", 16000) + "@example.com"
	for _, email := range []string{"ann@example.com", "ann@example.com", long} {
		if _, err := l.CheckPassword(ctx, store, email, "bad", "10.0.0.1"); keygate.ErrorCode(err) != keygate.EUNAUTHORIZED {
			t.Fatalf("%.20s: %v", email, err)
		}
	}
	for i := range 500 {
		email := fmt.Sprintf("guess%d@example.com", i)
		if i%2 == 0 {
			email = "ann@example.com"
		}
		if _, err := l.CheckPassword(ctx, store, email, "bad", "10.0.0.1"); keygate.ErrorCode(err) != keygate.ERATELIMITED {
			t.Fatalf("attempt %d: %v, want throttled", i, err)
		}
	}
	entries := allAuditEntries(t, store, "")
	count := map[string]int{}
	for _, e := range entries {
		count[e.Action]++
		if len(e.Actor.Name) > 254 {
			t.Errorf("%s entry keeps an actor name of %d bytes", e.Action, len(e.Actor.Name))
		}
	}
	t.Logf("3 failures then 500 refused attempts: %v", count)
	if count[keygate.AuditLoginFailed] != 3 || count[keygate.AuditLoginThrottled] != 1 || len(entries) != 4 {
		t.Errorf("audit entries %v, want 3 login.failed and 1 login.throttled", count)
	}

	// Once the window has passed and the address is stopped again, that
	// is recorded again.
	now = now.Add(11 * time.Minute)
	for range 3 {
		l.CheckPassword(ctx, store, "ann@example.com", "bad", "10.0.0.1")
	}
	for range 10 {
		l.CheckPassword(ctx, store, "ann@example.com", "bad", "10.0.0.1")
	}
	if entries := allAuditEntries(t, store, keygate.AuditLoginThrottled); len(entries) != 2 {
		t.Errorf("%d login.throttled entries after a second window, want 2", len(entries))
	}
}

// allAuditEntries reads every entry of the log, page by page.
func allAuditEntries(t *testing.T, store *sqlite.Store, action string) []*keygate.AuditEntry {
	t.Helper()
	var all []*keygate.AuditEntry
	f := keygate.AuditFilter{Action: action, Limit: keygate.MaxAuditPage}
	for {
		page, err := store.ListAuditEntries(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < f.Limit {
			return all
		}
		f.Before = page[len(page)-1].Seq
	}
}

// An "email" holding a control character or a text-reordering mark is not
// kept in the audit log: whoever reads the log (a terminal, a SIEM) must
// not get an escape sequence from the login page.
func TestLoginLimiterKeepsNoControlCharactersInTheLog(t *testing.T) {
	ctx := context.Background()
	store := loginStore(t)
	l := &session.LoginLimiter{Audit: &audit.Log{Store: store}}
	for _, email := range []string{"x\x1b]52;c;cm0gLXJmIH4=\x07@evil.example", "x\u009b31m@evil.example", "moc.elpmaxe\u202e@evil.example"} {
		if _, err := l.CheckPassword(ctx, store, email, "bad", "10.0.0.1"); keygate.ErrorCode(err) != keygate.EUNAUTHORIZED {
			t.Fatalf("%q: %v", email, err)
		}
	}
	for _, e := range allAuditEntries(t, store, keygate.AuditLoginFailed) {
		if e.Actor.Name != "" {
			t.Errorf("login.failed keeps the typed email %q", e.Actor.Name)
		}
	}
}
