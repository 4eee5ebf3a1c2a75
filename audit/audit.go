// Package audit records keygate's audit log: one entry per
// security-relevant action, whoever does it and through whichever door.
//
// Store wraps a keygate.Store so that every change the dashboard, the
// management API, the CLI and the OAuth server make through it is recorded
// with the actor its context carries (keygate.WithActor), in the change's
// own transaction: a change is never committed without its entry. The
// few actions that change nothing in the store (failed and throttled
// logins, token expiry) are recorded with Log.Record. Entries carry ids,
// names, hints and hosts, never a secret, and cannot be changed or deleted
// except by the retention purge.
package audit

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/detach"
)

// DefaultRetention is how long entries are kept unless configured.
const DefaultRetention = 365 * 24 * time.Hour

// Log appends entries to the store's audit log and tells Shipper, if set,
// about each one (the webhook dispatcher sends it to the organization's
// SIEM endpoints as an audit.* event).
type Log struct {
	// Store is where Record appends; Store (the wrapper) appends a
	// change's entries to the store it wraps, in the change's transaction.
	Store  keygate.AuditLog
	Logger *slog.Logger
	Now    func() time.Time
	// Shipper hears of every entry once it is stored.
	Shipper func(ctx context.Context, e *keygate.AuditEntry)
}

// Record appends an entry for an action that changes nothing in the store
// (a failed login, a token's expiry) by the context's actor. details is
// marshalled to JSON; it must not hold a secret. A failure is logged, not
// returned: the action it describes already happened. Changes are
// recorded by Store, in their own transaction.
func (l *Log) Record(ctx context.Context, action, organizationID, targetID string, details any) {
	if l == nil || l.Store == nil {
		return
	}
	e := l.entry(ctx, action, organizationID, targetID, details)
	// Stored even if the client leaves meanwhile, but not past the
	// request's deadline: a database that stops answering does not hold
	// the request beyond it.
	ctx, cancel := detach.Context(ctx)
	defer cancel()
	if err := l.Store.AppendAuditEntry(ctx, e); err != nil {
		l.logger().ErrorContext(ctx, "audit: entry could not be stored", "action", action,
			"org_id", organizationID, "target_id", targetID, "error", err)
		return
	}
	l.ship(ctx, e)
}

// entry is the entry for action by the context's actor, not yet stored.
func (l *Log) entry(ctx context.Context, action, organizationID, targetID string, details any) *keygate.AuditEntry {
	e := &keygate.AuditEntry{
		Action: action, Actor: keygate.ActorFrom(ctx), OrganizationID: organizationID, TargetID: targetID,
	}
	if l.Now != nil {
		e.At = l.Now().UTC().Truncate(time.Millisecond)
	}
	if details != nil {
		b, err := json.Marshal(details)
		if err != nil {
			l.logger().ErrorContext(ctx, "audit: details could not be encoded", "action", action, "error", err)
		} else {
			e.Details = b
		}
	}
	return e
}

// ship tells Shipper of stored entries.
func (l *Log) ship(ctx context.Context, entries ...*keygate.AuditEntry) {
	if l.Shipper == nil {
		return
	}
	for _, e := range entries {
		l.Shipper(ctx, e)
	}
}

func (l *Log) logger() *slog.Logger {
	if l.Logger == nil {
		return slog.Default()
	}
	return l.Logger
}

// Requests puts the request's address (as clientAddr resolves it, trusted
// proxies honoured) and user agent into every request's context as an
// actor, for handlers to complete with who is asking.
func Requests(next http.Handler, clientAddr func(*http.Request) string) http.Handler {
	if clientAddr == nil {
		clientAddr = remoteHost
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := keygate.Actor{Type: keygate.ActorSystem, Address: clientAddr(r), UserAgent: truncate(r.UserAgent(), 256)}
		next.ServeHTTP(w, r.WithContext(keygate.WithActor(r.Context(), a)))
	})
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// AsUser returns ctx with its actor (address and user agent kept) set to
// the user.
func AsUser(ctx context.Context, u *keygate.User) context.Context {
	a := keygate.ActorFrom(ctx)
	a.Type, a.ID, a.Name, a.SiteAdmin = keygate.ActorUser, u.ID, u.Email, u.IsAdmin
	return keygate.WithActor(ctx, a)
}

// AsAdminKey returns ctx with its actor set to the admin key, which acts
// as a site administrator.
func AsAdminKey(ctx context.Context, k *keygate.AdminKey) context.Context {
	a := keygate.ActorFrom(ctx)
	a.Type, a.ID, a.Name, a.SiteAdmin = keygate.ActorAdminKey, k.ID, k.Name, true
	return keygate.WithActor(ctx, a)
}

// AsCLI returns ctx with its actor set to a keygate command run by the
// named operating-system user.
func AsCLI(ctx context.Context, osUser string) context.Context {
	return keygate.WithActor(ctx, keygate.Actor{Type: keygate.ActorCLI, Name: osUser})
}

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}
