package session_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/postgres"
	"github.com/keygate/keygate/postgres/pgtest"
	"github.com/keygate/keygate/session"
)

// A PostgreSQL that stops answering does not hold dashboard pages: the
// session lookup runs under the store timeout, so the visitor gets
// EUNAVAILABLE (a 503 page) within it although the request itself has no
// deadline, and the session works again once the database answers.
func TestSessionLookupIsBoundedWhenTheDatabaseStopsAnswering(t *testing.T) {
	base := pgtest.NewSchema(t)
	proxy := pgtest.NewProxy(t, base)
	ctx := context.Background()
	st, err := postgres.Open(ctx, proxy.URL(base))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	user := &keygate.User{ID: keygate.NewID("usr"), Email: "ann@example.com", PasswordHash: "x", CreatedAt: time.Now().UTC()}
	if err := st.CreateUser(ctx, user); err != nil {
		t.Fatal(err)
	}
	const storeTimeout = 500 * time.Millisecond
	m := &session.Manager{Sessions: st, Users: st, StoreTimeout: storeTimeout}
	login := httptest.NewRecorder()
	if _, err := m.Login(login, httptest.NewRequest("POST", "/login", nil), user); err != nil {
		t.Fatal(err)
	}
	cookie := login.Result().Cookies()[0]
	current := func() (error, time.Duration) {
		req := httptest.NewRequest("GET", "/", nil)
		req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
		start := time.Now()
		done := make(chan error, 1)
		go func() { _, _, err := m.Current(req); done <- err }()
		select {
		case err := <-done:
			return err, time.Since(start)
		case <-time.After(30 * time.Second):
			t.Fatal("a session lookup was still waiting for the database 30s later")
			return nil, 0
		}
	}
	if err, _ := current(); err != nil {
		t.Fatalf("before the outage: %v", err)
	}
	proxy.Blackhole()
	err, took := current()
	if keygate.ErrorCode(err) != keygate.EUNAVAILABLE {
		t.Errorf("database not answering: %v, want EUNAVAILABLE", err)
	}
	t.Logf("database blackholed, store timeout %v: the session lookup ended after %v", storeTimeout, took.Round(time.Millisecond))
	if limit := storeTimeout + time.Second; took > limit {
		t.Errorf("ended after %v, want within %v", took, limit)
	}
	proxy.Forward()
	restored := time.Now()
	for {
		if err, _ := current(); err == nil {
			break
		} else if time.Since(restored) > 10*time.Second {
			t.Fatalf("still %v 10s after the database answered again", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
