package session

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/clientip"
	"github.com/keygate/keygate/password"
)

// Default login limits, all over a sliding window of 15 minutes. They are
// enough for a person who mistypes and far too few for guessing, and no
// address can lock an account's owner out (docs/dashboard.md):
//
//   - 5 failures for one account from one address stop that address for
//     that account only;
//   - 20 failures from one address over every account stop that address;
//   - after 10 failures for one account from all addresses together, each
//     further attempt for it waits 1 s after the last one, doubling with
//     each failure up to 1 minute. Addresses the account has logged in
//     from in the last 30 days are exempt from this wait.
const (
	DefaultFailuresPerAccountAddress = 5
	DefaultFailuresPerAddress        = 20
	DefaultFailuresPerAccount        = 10
	DefaultMaxAccountDelay           = time.Minute
	DefaultFailureWindow             = 15 * time.Minute
	// knownAddressTTL is how long a successful login exempts its address
	// from the account's backoff.
	knownAddressTTL = 30 * 24 * time.Hour
	// maxTracked bounds the memory the limiter uses under a flood of
	// distinct emails or addresses.
	maxTracked = 100_000
	// maxEmailLength is the longest address an account can have: a longer
	// "email" is counted and logged by its first maxEmailLength bytes
	// only, so that the limiter's keys stay small whatever the form holds.
	maxEmailLength = 254
)

// LoginLimiter checks passwords and decides, in one place, which login
// attempts may reach the password hash. An attempt is counted before its
// password is hashed, in the same step that checks the limits, so attempts
// sent in parallel cannot all pass a limit that each would pass alone. It
// keeps its counts in memory: each instance limits on its own.
type LoginLimiter struct {
	PerAccountAddress     int           // failures per Window for one email from one address; 0: default
	PerAddress            int           // failures per Window from one address; 0: default
	PerAccountBeforeDelay int           // failures per Window for one email before its attempts are spaced out; 0: default
	MaxAccountDelay       time.Duration // the longest spacing; 0: default
	Window                time.Duration // 0: default
	// IPv6PrefixLength is how much of an IPv6 address names one client
	// (ipv6_prefix_length), as for the gateway's per-IP limits: a host
	// picks any address of its /64 at will. 0: clientip's default, 64.
	IPv6PrefixLength int
	Now              func() time.Time
	// Audit, when set, records failed and throttled attempts (a success
	// is recorded where its session is stored).
	Audit *audit.Log

	mu sync.Mutex
	// attempts holds, per key, the times of failed attempts and of those
	// still being checked, oldest first.
	attempts map[string][]time.Time
	// known holds when an account last logged in from an address.
	known map[string]time.Time
	// refusalRecorded holds, per limiter key that refused an attempt,
	// when that refusal was written to the audit log: a flood of refused
	// attempts, which cost no hash, writes one entry per key and window.
	refusalRecorded map[string]time.Time
}

// attempt is one counted login attempt, or a refusal to make one.
type attempt struct {
	wait                   time.Duration // > 0: refused, retry after wait
	recordRefusal          bool          // the first refusal by its limit in this window
	at                     time.Time
	pair, address, account string // limiter keys
	knownKey               string
}

// CheckPassword returns the user with this email and password. Wrong email
// and wrong password get the same EUNAUTHORIZED and cost the same: an
// unknown email is checked against a dummy hash. While a limit holds it
// answers ERATELIMITED without looking at the password; when the process
// is busy hashing other passwords, password.ErrBusy (EUNAVAILABLE).
func (l *LoginLimiter) CheckPassword(ctx context.Context, users keygate.UserService, email, pw, ip string) (*keygate.User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	a := l.begin(email, ip)
	if a.wait > 0 {
		if a.recordRefusal {
			l.record(ctx, keygate.AuditLoginThrottled, email, nil)
		}
		return nil, keygate.Errorf(keygate.ERATELIMITED, "Too many failed login attempts. Try again in %s.", roundUp(a.wait))
	}
	user, err := checkPassword(ctx, users, email, pw)
	l.finish(a, keygate.ErrorCode(err))
	if err == errWrongPassword {
		known, _ := users.FindUserByEmail(ctx, email)
		l.record(ctx, keygate.AuditLoginFailed, email, known)
	}
	return user, err
}

// record adds a login attempt to the audit log. The email typed is kept
// only when it looks like one: people sometimes type their password into
// the wrong field, and the audit log must not keep it.
func (l *LoginLimiter) record(ctx context.Context, action, email string, user *keygate.User) {
	if l.Audit == nil {
		return
	}
	a := keygate.ActorFrom(ctx)
	a.Type, a.ID, a.Name = keygate.ActorUser, "", ""
	if user != nil {
		a.ID, a.Name = user.ID, user.Email
	} else if len(email) <= maxEmailLength && looksLikeEmail(email) {
		a.Name = email
	}
	l.Audit.Record(keygate.WithActor(ctx, a), action, "", a.ID, nil)
}

func looksLikeEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	return at > 0 && at < len(s)-1 && !strings.ContainsAny(s, " \t") && strings.Contains(s[at:], ".") &&
		!keygate.HasHiddenCharacters(s)
}

var errWrongPassword = keygate.Errorf(keygate.EUNAUTHORIZED, "Wrong email or password.")

func checkPassword(ctx context.Context, users keygate.UserService, email, pw string) (*keygate.User, error) {
	user, err := users.FindUserByEmail(ctx, email)
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		if err := password.VerifyDummy(ctx, pw); err != nil {
			return nil, err
		}
		return nil, errWrongPassword
	} else if err != nil {
		return nil, err
	}
	ok, err := password.Verify(ctx, user.PasswordHash, pw)
	if err != nil {
		return nil, err
	} else if !ok {
		return nil, errWrongPassword
	}
	return user, nil
}

// begin checks every limit for email from ip and, when none holds, counts
// the attempt under each: one step under the lock. An IPv6 address counts
// by its prefix (IPv6PrefixLength).
func (l *LoginLimiter) begin(email, ip string) attempt {
	ip = clientip.BucketOf(ip, l.IPv6PrefixLength)
	if len(email) > maxEmailLength {
		email = email[:maxEmailLength]
	}
	a := attempt{
		pair:     "account-address:" + email + "\x00" + ip,
		address:  "address:" + ip,
		account:  "account:" + email,
		knownKey: email + "\x00" + ip,
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.attempts == nil {
		l.attempts = map[string][]time.Time{}
		l.known = map[string]time.Time{}
	}
	now := l.now()
	l.prune(now)
	pair, perAddress, account := l.limits()
	waits := []struct {
		key  string
		wait time.Duration
	}{
		{a.address, waitForSlot(l.recent(a.address, now), perAddress, l.window(), now)},
		{a.pair, waitForSlot(l.recent(a.pair, now), pair, l.window(), now)},
	}
	if !l.knownAddress(a.knownKey, now) {
		waits = append(waits, struct {
			key  string
			wait time.Duration
		}{a.account, l.accountDelay(l.recent(a.account, now), account, now)})
	}
	for _, w := range waits {
		if w.wait > 0 && a.wait == 0 {
			a.recordRefusal = l.firstRefusal(w.key, now)
		}
		a.wait = max(a.wait, w.wait)
	}
	if a.wait > 0 {
		return a
	}
	a.at = now
	keep := max(pair, perAddress, account+accountDoublings)
	for _, k := range []string{a.pair, a.address, a.account} {
		times := append(l.attempts[k], now)
		if len(times) > keep {
			times = times[len(times)-keep:]
		}
		l.attempts[k] = times
	}
	return a
}

// firstRefusal reports whether key's refusal at now is the first one to
// record in the audit log for this window, and notes it. Under l.mu.
func (l *LoginLimiter) firstRefusal(key string, now time.Time) bool {
	if l.refusalRecorded == nil {
		l.refusalRecorded = map[string]time.Time{}
	}
	if at, ok := l.refusalRecorded[key]; ok && now.Sub(at) < l.window() {
		return false
	}
	if len(l.refusalRecorded) >= maxTracked {
		for k, at := range l.refusalRecorded {
			if now.Sub(at) >= l.window() {
				delete(l.refusalRecorded, k)
			}
		}
		if len(l.refusalRecorded) >= maxTracked {
			return false
		}
	}
	l.refusalRecorded[key] = now
	return true
}

// finish settles a counted attempt by its outcome: a wrong password stays
// counted; a success clears the account's failures from that address and
// exempts the address from the account's backoff; a password that could
// not be checked (busy, store error) does not count.
func (l *LoginLimiter) finish(a attempt, code string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch code {
	case keygate.EUNAUTHORIZED:
		return
	case "":
		delete(l.attempts, a.pair)
		if len(l.known) >= maxTracked {
			for k := range l.known {
				delete(l.known, k)
				break
			}
		}
		l.known[a.knownKey] = l.now()
	default:
		l.uncount(a.pair, a.at)
	}
	l.uncount(a.address, a.at)
	l.uncount(a.account, a.at)
}

// accountDoublings is how many failures past the free ones it takes for
// the account's delay to reach any sensible maximum (2^16 s).
const accountDoublings = 16

// accountDelay is how long the next attempt for an account waits: nothing
// for its first free failures, then 1 s after the last attempt, doubling
// with each failure, up to MaxAccountDelay.
func (l *LoginLimiter) accountDelay(recent []time.Time, free int, now time.Time) time.Duration {
	over := len(recent) - free
	if over < 0 {
		return 0
	}
	delay := l.maxAccountDelay()
	if over < accountDoublings {
		delay = min(delay, time.Second<<over)
	}
	return max(0, recent[len(recent)-1].Add(delay).Sub(now))
}

// waitForSlot returns how long until fewer than limit of recent are inside
// the window: the limit-th most recent one leaving it frees a slot.
func waitForSlot(recent []time.Time, limit int, window time.Duration, now time.Time) time.Duration {
	if len(recent) < limit {
		return 0
	}
	return recent[len(recent)-limit].Add(window).Sub(now)
}

func (l *LoginLimiter) knownAddress(key string, now time.Time) bool {
	at, ok := l.known[key]
	if ok && now.Sub(at) > knownAddressTTL {
		delete(l.known, key)
		return false
	}
	return ok
}

// recent drops attempts older than the window and returns the rest.
func (l *LoginLimiter) recent(key string, now time.Time) []time.Time {
	times := l.attempts[key]
	cut := 0
	for cut < len(times) && !times[cut].After(now.Add(-l.window())) {
		cut++
	}
	times = times[cut:]
	if len(times) == 0 {
		delete(l.attempts, key)
	} else {
		l.attempts[key] = times
	}
	return times
}

// uncount removes one attempt made at at from key.
func (l *LoginLimiter) uncount(key string, at time.Time) {
	times := l.attempts[key]
	for i := len(times) - 1; i >= 0; i-- {
		if times[i].Equal(at) {
			l.attempts[key] = append(times[:i:i], times[i+1:]...)
			return
		}
	}
}

// prune drops expired keys once the map is full.
func (l *LoginLimiter) prune(now time.Time) {
	if len(l.attempts) < maxTracked {
		return
	}
	for k := range l.attempts {
		l.recent(k, now)
	}
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

func (l *LoginLimiter) maxAccountDelay() time.Duration {
	if l.MaxAccountDelay > 0 {
		return l.MaxAccountDelay
	}
	return DefaultMaxAccountDelay
}

func (l *LoginLimiter) limits() (accountAddress, address, account int) {
	accountAddress, address, account = l.PerAccountAddress, l.PerAddress, l.PerAccountBeforeDelay
	if accountAddress <= 0 {
		accountAddress = DefaultFailuresPerAccountAddress
	}
	if address <= 0 {
		address = DefaultFailuresPerAddress
	}
	if account <= 0 {
		account = DefaultFailuresPerAccount
	}
	return accountAddress, address, account
}

// roundUp says a wait in whole seconds under a minute, else whole minutes.
func roundUp(d time.Duration) string {
	n, unit := int((d+time.Second-1)/time.Second), "second"
	if n > 60 {
		n, unit = int((d+time.Minute-1)/time.Minute), "minute"
	}
	if n != 1 {
		unit += "s"
	}
	return fmt.Sprintf("%d %s", n, unit)
}
