package session

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/password"
)

// Default login limits: enough for a person who mistypes, far too few for
// guessing.
const (
	DefaultFailuresPerAccount = 5
	DefaultFailuresPerIP      = 20
	DefaultFailureWindow      = 15 * time.Minute
	// maxTracked bounds the memory the limiter uses under a flood of
	// distinct emails or addresses.
	maxTracked = 100_000
)

// LoginLimiter checks passwords and refuses further attempts for an account
// or a client address after too many failures in a sliding window. It keeps
// its counts in memory: each instance limits on its own.
type LoginLimiter struct {
	PerAccount int           // failures per Window for one email; 0: default
	PerIP      int           // failures per Window from one client IP; 0: default
	Window     time.Duration // 0: default
	Now        func() time.Time

	mu       sync.Mutex
	failures map[string][]time.Time
}

func (l *LoginLimiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *LoginLimiter) window() time.Duration {
	if l.Window > 0 {
		return l.Window
	}
	return DefaultFailureWindow
}

func (l *LoginLimiter) limits() (account, ip int) {
	account, ip = l.PerAccount, l.PerIP
	if account <= 0 {
		account = DefaultFailuresPerAccount
	}
	if ip <= 0 {
		ip = DefaultFailuresPerIP
	}
	return account, ip
}

// CheckPassword returns the user with this email and password. Wrong email
// and wrong password get the same EUNAUTHORIZED and take the same time.
// While the account or the client IP is over its limit it answers
// ERATELIMITED without looking at the password.
func (l *LoginLimiter) CheckPassword(ctx context.Context, users keygate.UserService, email, pw, ip string) (*keygate.User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	accountKey, ipKey := "account:"+email, "ip:"+ip
	if wait := l.wait(accountKey, ipKey); wait > 0 {
		minutes := int((wait + time.Minute - 1) / time.Minute)
		unit := "minutes"
		if minutes == 1 {
			unit = "minute"
		}
		return nil, keygate.Errorf(keygate.ERATELIMITED, "Too many failed login attempts. Try again in %d %s.", minutes, unit)
	}
	refused := keygate.Errorf(keygate.EUNAUTHORIZED, "Wrong email or password.")
	user, err := users.FindUserByEmail(ctx, email)
	if keygate.ErrorCode(err) == keygate.ENOTFOUND || (err == nil && len(pw) > password.MaxLength) {
		password.DummyVerify(pw)
		l.fail(accountKey, ipKey)
		return nil, refused
	} else if err != nil {
		return nil, err
	}
	if !password.Verify(user.PasswordHash, pw) {
		l.fail(accountKey, ipKey)
		return nil, refused
	}
	l.mu.Lock()
	delete(l.failures, accountKey)
	l.mu.Unlock()
	return user, nil
}

// wait returns how long until the account and the IP are both under their
// limits again; 0 when they are now.
func (l *LoginLimiter) wait(accountKey, ipKey string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	perAccount, perIP := l.limits()
	now := l.now()
	return max(l.waitFor(accountKey, perAccount, now), l.waitFor(ipKey, perIP, now))
}

func (l *LoginLimiter) waitFor(key string, limit int, now time.Time) time.Duration {
	recent := l.recent(key, now)
	if len(recent) < limit {
		return 0
	}
	// The attempt that frees a slot is the limit-th most recent one expiring.
	return recent[len(recent)-limit].Add(l.window()).Sub(now)
}

// recent drops failures older than the window and returns the rest.
func (l *LoginLimiter) recent(key string, now time.Time) []time.Time {
	times := l.failures[key]
	cut := 0
	for cut < len(times) && !times[cut].After(now.Add(-l.window())) {
		cut++
	}
	times = times[cut:]
	if len(times) == 0 {
		delete(l.failures, key)
	} else {
		l.failures[key] = times
	}
	return times
}

func (l *LoginLimiter) fail(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failures == nil {
		l.failures = map[string][]time.Time{}
	}
	now := l.now()
	if len(l.failures) >= maxTracked {
		for k := range l.failures {
			l.recent(k, now)
		}
	}
	perAccount, perIP := l.limits()
	for _, k := range keys {
		times := append(l.recent(k, now), now)
		// Only the newest limit entries matter for the answer.
		if keep := max(perAccount, perIP); len(times) > keep {
			times = times[len(times)-keep:]
		}
		l.failures[k] = times
	}
}
