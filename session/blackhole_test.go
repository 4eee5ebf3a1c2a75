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
	st, proxy := pgtest.OpenBehindProxy(t, postgres.Open)
	ctx := context.Background()
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
	current := func() error {
		req := httptest.NewRequest("GET", "/", nil)
		req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
		_, _, err := m.Current(req)
		return err
	}
	during, took := pgtest.Outage(t, proxy, storeTimeout+time.Second, current)
	t.Logf("database blackholed, store timeout %v: the session lookup ended after %v", storeTimeout, took.Round(time.Millisecond))
	if keygate.ErrorCode(during) != keygate.EUNAVAILABLE {
		t.Errorf("database not answering: %v, want EUNAVAILABLE", during)
	}
}
