package session_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/password"
	"github.com/keygate/keygate/session"
	"github.com/keygate/keygate/sqlite"
)

func TestLoginLimiter(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	hash, err := password.Hash("right")
	if err != nil {
		t.Fatal(err)
	}
	user := &keygate.User{ID: "usr_1", Email: "ann@example.com", Name: "Ann", PasswordHash: hash, CreatedAt: time.Now()}
	if err := store.CreateUser(ctx, user); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	l := &session.LoginLimiter{PerAccount: 2, PerIP: 3, Window: 10 * time.Minute, Now: func() time.Time { return now }}
	check := func(email, pw, ip, wantCode, wantMessage string) {
		t.Helper()
		u, err := l.CheckPassword(ctx, store, email, pw, ip)
		if keygate.ErrorCode(err) != wantCode || keygate.ErrorMessage(err) != wantMessage {
			t.Fatalf("%s/%s from %s: %v, want %s %q", email, pw, ip, err, wantCode, wantMessage)
		}
		if wantCode == "" && u.ID != user.ID {
			t.Fatalf("user %+v", u)
		}
	}
	const wrong = "Wrong email or password."
	check(" Ann@Example.com ", "right", "10.0.0.1", "", "")
	check("ann@example.com", "bad", "10.0.0.1", keygate.EUNAUTHORIZED, wrong)
	// A success clears the account's failures.
	check("ann@example.com", "right", "10.0.0.2", "", "")
	check("ann@example.com", "bad", "10.0.0.1", keygate.EUNAUTHORIZED, wrong)
	now = now.Add(time.Minute)
	check("ann@example.com", "bad", "10.0.0.2", keygate.EUNAUTHORIZED, wrong)
	check("ann@example.com", "right", "10.0.0.3", keygate.ERATELIMITED, "Too many failed login attempts. Try again in 9 minutes.")
	// The window slides: the first failure leaves after 10 minutes.
	now = now.Add(9*time.Minute + time.Second)
	check("ann@example.com", "right", "10.0.0.3", "", "")

	// Per address, across accounts, unknown ones included.
	check("x@example.com", "bad", "10.9.9.9", keygate.EUNAUTHORIZED, wrong)
	check("y@example.com", "bad", "10.9.9.9", keygate.EUNAUTHORIZED, wrong)
	check("z@example.com", "bad", "10.9.9.9", keygate.EUNAUTHORIZED, wrong)
	check("ann@example.com", "right", "10.9.9.9", keygate.ERATELIMITED, "Too many failed login attempts. Try again in 10 minutes.")
	now = now.Add(9*time.Minute + 30*time.Second)
	check("ann@example.com", "right", "10.9.9.9", keygate.ERATELIMITED, "Too many failed login attempts. Try again in 1 minute.")
	now = now.Add(31 * time.Second)
	check("ann@example.com", "right", "10.9.9.9", "", "")
}
