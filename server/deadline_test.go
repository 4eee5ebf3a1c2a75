package server_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/postgres/pgtest"
	"github.com/keygate/keygate/server"
)

// A request on the admin listener ends its store calls before its answer
// can no longer be written, including calls that have no deadline of their
// own (the OAuth token endpoint's client lookup): with PostgreSQL
// blackholed, the client gets an answer within admin_write_timeout instead
// of a connection held for as long as the database stays silent.
func TestAdminRequestsEndWithinTheWriteTimeoutWhenTheDatabaseStopsAnswering(t *testing.T) {
	base := pgtest.NewSchema(t)
	proxy := pgtest.NewProxy(t, base)
	admin := freeAddr(t)
	runServer(t, fmt.Sprintf(`
database_url: %q
admin: {listen: %s}
listeners: {admin_write_timeout: 2s}
`, proxy.URL(base), admin)+eventsAPI(freeAddr(t)), server.Options{Logger: quietLogger()})
	// Cleanups run last first: the database answers again before keygate
	// shuts down, so the shutdown does not wait on it.
	t.Cleanup(proxy.Forward)
	client := &http.Client{Timeout: 30 * time.Second}
	refresh := func() (int, string, time.Duration, error) {
		start := time.Now()
		resp, err := client.PostForm("http://"+admin+"/oauth/token", url.Values{
			"grant_type": {"refresh_token"}, "client_id": {"unknown-client"}, "refresh_token": {"kgo_rt_x"},
		})
		if err != nil {
			return 0, "", time.Since(start), err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), time.Since(start), nil
	}
	if status, body, _, err := refresh(); err != nil || status >= 500 {
		t.Fatalf("before the outage: %d %s %v", status, body, err)
	}
	proxy.Blackhole()
	status, body, took, err := refresh()
	t.Logf("database blackholed, admin_write_timeout 2s: /oauth/token answered %d %q after %v (err %v)", status, strings.TrimSpace(body), took.Round(time.Millisecond), err)
	if err != nil || status < 500 {
		t.Errorf("database not answering: %d %s %v, want a 5xx answer", status, body, err)
	}
	if took > 4*time.Second {
		t.Errorf("answered after %v, want within the 2s write timeout (+ slack)", took)
	}
}
