package server_test

import (
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/clientip"
	"github.com/keygate/keygate/internal/testenv"
	"github.com/keygate/keygate/ratelimit/redislimit"
	"github.com/keygate/keygate/server"
)

// redisRelay passes TCP connections on to Redis until cut, which closes
// them and refuses new ones until restored: Redis unreachable and back,
// as keygate sees it, without touching the Redis others use.
type redisRelay struct {
	ln    net.Listener
	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func newRedisRelay(t *testing.T, redisAddr string) *redisRelay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &redisRelay{ln: ln}
	t.Cleanup(func() { ln.Close(); r.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			if r.down {
				r.mu.Unlock()
				c.Close()
				continue
			}
			upstream, err := net.Dial("tcp", redisAddr)
			if err != nil {
				r.mu.Unlock()
				c.Close()
				continue
			}
			r.conns = append(r.conns, c, upstream)
			r.mu.Unlock()
			go func() { io.Copy(upstream, c); upstream.Close() }()
			go func() { io.Copy(c, upstream); c.Close() }()
		}
	}()
	return r
}

func (r *redisRelay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = true
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}

func (r *redisRelay) restore() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = false
}

// When Redis (KEYGATE_TEST_REDIS_URL) becomes unreachable in the closed
// mode, an address's OAuth requests go on counting in memory from where
// Redis left them, and when Redis answers again it is given what was
// counted during the outage: Redis then refuses the address the rest of
// the window rather than grant it the part it had not seen.
func TestOAuthEndpointsGiveRedisTheOutagesCountsInClosedMode(t *testing.T) {
	redisURL := testenv.RedisURL(t)
	u, err := url.Parse(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	relay := newRedisRelay(t, u.Host)
	admin := freeAddr(t)
	runServer(t, `
data_dir: `+t.TempDir()+`
admin: {listen: `+admin+`}
trusted_proxies: [127.0.0.1]
rate_limiter: {backend: redis, redis_url: 'redis://`+relay.ln.Addr().String()+u.Path+`', on_redis_failure: closed}
apis:
  - {name: events, preset: canskan, listen: `+freeAddr(t)+`, upstream: http://127.0.0.1:9, routes: [{methods: [GET], path: /attendees}]}
`, server.Options{})

	// An address of this run's own (a random /64 of 2001:db8::/32), so
	// that its window in the shared Redis starts empty.
	a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}
	rand.Read(a[4:8])
	client := netip.AddrFrom16(a).String()
	authorize := func() int {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+admin+"/oauth/authorize?response_type=code&client_id=probe", nil)
		req.Header.Set("X-Forwarded-For", client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := 1; i <= 31; i++ {
		if i == 21 {
			relay.cut()
		}
		if status := authorize(); (status == http.StatusTooManyRequests) != (i == 31) {
			t.Fatalf("request %d (Redis down: %v): %d", i, i > 20, status)
		}
	}
	relay.restore()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body, _ := fetch(t, "http://"+admin+"/readyz")
		if status == http.StatusOK && strings.Contains(body, "ok (redis)") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis not used again 10 s after it answers: %d %s", status, body)
		}
		time.Sleep(10 * time.Millisecond)
	}

	direct, err := redislimit.Connect(redislimit.Connection{URL: redisURL})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	key := "admin:GET /oauth/authorize:ip:" + clientip.BucketOf(client, 64)
	res, err := redislimit.New(direct, redislimit.Options{}).Allow(context.Background(), key, 30, time.Minute)
	if err != nil || res.Allowed {
		t.Errorf("Redis after the outage: %+v, %v; want the address refused (20 counted before, 10 during)", res, err)
	}
}
