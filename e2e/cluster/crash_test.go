package cluster_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/internal/testenv"
	"github.com/keygate/keygate/postgres"
	"github.com/keygate/keygate/postgres/pgtest"
)

// TestKilledInstanceLosesAtMostOneFlushOfUsage builds keygate, runs
// `keygate serve` on PostgreSQL with usage.flush_interval 1s, sends it
// requests from several clients and kills it with SIGKILL mid-load: no
// shutdown, no last flush. The usage counts stored afterwards miss at most
// what one flush interval, plus the write in flight, holds at the measured
// rate, and never count a request twice.
func TestKilledInstanceLosesAtMostOneFlushOfUsage(t *testing.T) {
	testenv.RedisURL(t) // the cluster suites' skip-or-fail rule
	const flushInterval = time.Second
	t.Setenv(config.DatabaseURLEnv, "")
	db := pgtest.NewSchema(t)
	dir := t.TempDir()
	bin := buildKeygate(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{}`)
	}))
	t.Cleanup(up.Close)
	apiAddr, adminAddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(dir, "keygate.yaml")
	err := os.WriteFile(cfg, []byte(fmt.Sprintf(`data_dir: %q
database_url: %q
admin:
  listen: %s
usage:
  flush_interval: %s
log:
  level: warn
apis:
  - name: %s
    preset: canskan
    listen: %s
    upstream: %s
    token_prefix: csk_
    scopes: [attendees:read]
    rate_limits:
      public: none
      token: none
      failed_auth: none
    routes:
      - methods: [GET]
        path: /api/v1/organization
`, dir, db, adminAddr, flushInterval, api, apiAddr, up.URL)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "orgs", "create", "--config", cfg, "--slug", "acme").CombinedOutput(); err != nil {
		t.Fatalf("keygate orgs create: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "tokens", "create", "--config", cfg, "--org", "acme", "--api", api, "--name", "load").Output()
	if err != nil {
		t.Fatalf("keygate tokens create: %v", err)
	}
	fields := strings.Fields(string(out))
	secret := fields[len(fields)-1]

	serve := exec.Command(bin, "serve", "--config", cfg)
	serve.Stderr = os.Stderr
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { serve.Process.Kill(); serve.Wait() })
	in := &instance{name: "keygate serve", base: "http://" + apiAddr}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if a := in.get("/api/v1/organization", secret); a.status == http.StatusOK {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("keygate serve did not answer within 30s: %d %s", a.status, a.body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The request above is answered and counted too.
	var answered atomic.Int64
	answered.Store(1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if a := in.get("/api/v1/organization", secret); a.status == http.StatusOK {
					answered.Add(1)
				}
			}
		})
	}
	began := time.Now()
	// Several flushes, then the kill at a random point between two.
	time.Sleep(3*flushInterval + rand.N(flushInterval))
	serve.Process.Kill()
	killedAfter := time.Since(began)
	serve.Wait()
	close(stop)
	wg.Wait()

	store, err := postgres.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	org, err := store.FindOrganizationBySlug(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	counts, err := store.ListUsage(ctx, keygate.UsageQuery{OrganizationID: org.ID, From: began.Add(-2 * time.Hour), To: began.Add(2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var recorded int64
	for _, c := range counts {
		recorded += c.Requests
	}
	got := answered.Load()
	rate := float64(got) / killedAfter.Seconds()
	lost := got - recorded
	// A batch is taken every interval and written at once; what a kill
	// loses is what came since the last batch committed: one interval,
	// plus the time the write in flight had taken.
	bound := int64(rate * 2 * flushInterval.Seconds())
	t.Logf("kill -9 after %s under load: %d requests answered (%.0f/s), %d counted in the store, %d lost (%.0f ms of traffic; flush interval %s, bound asserted %d)",
		killedAfter.Round(time.Millisecond), got, rate, recorded, lost, float64(lost)/rate*1000, flushInterval, bound)
	if recorded > got+8 {
		t.Errorf("%d requests counted, but only %d answered (8 may have been in flight): counted twice?", recorded, got)
	}
	if lost > bound {
		t.Errorf("%d counts lost at %.0f requests/s: more than two flush intervals' worth (%d)", lost, rate, bound)
	}
}

// freeAddr returns a loopback address with a free port below the
// ephemeral range, for a process that must be told where to listen.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 200 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(10000+rand.IntN(20000)))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free port found")
	return ""
}

// buildKeygate builds the keygate command for the test to run as a process
// of its own.
func buildKeygate(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "keygate")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/keygate/keygate/cmd/keygate").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
