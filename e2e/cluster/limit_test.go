package cluster_test

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// A limit of 50 per minute per token, shared through Redis by three
// instances hammered at once: exactly 50 requests pass, the rest get the
// preset's 429, none slips through.
func TestRateLimitIsSharedWithoutOvershoot(t *testing.T) {
	c := newCluster(t)
	c.start(3, defaults, "")
	_, secret := c.token(c.instances[0])

	const workers, perWorker = 12, 10 // per instance: 360 requests in all
	var (
		mu     sync.Mutex
		counts = map[int]int{}
		wg     sync.WaitGroup
		start  = make(chan struct{})
	)
	for _, in := range c.instances {
		for range workers {
			wg.Go(func() {
				<-start
				for range perWorker {
					a := in.get("/api/v1/limited", secret)
					if a.status != http.StatusOK && (a.status != http.StatusTooManyRequests || a.body != bodyRateLimited) {
						t.Errorf("%s answered %d %s", in.name, a.status, a.body)
					}
					mu.Lock()
					counts[a.status]++
					mu.Unlock()
				}
			})
		}
	}
	began := time.Now()
	close(start)
	wg.Wait()
	total := len(c.instances) * workers * perWorker
	t.Logf("%d requests to 3 instances in %s with a limit of %d/min: %d allowed, %d refused with 429, overshoot %d",
		total, time.Since(began).Round(time.Millisecond), limitPerMinute,
		counts[http.StatusOK], counts[http.StatusTooManyRequests], counts[http.StatusOK]-limitPerMinute)
	if counts[http.StatusOK] != limitPerMinute || counts[http.StatusTooManyRequests] != total-limitPerMinute {
		t.Errorf("allowed %d and refused %d of %d, want exactly %d allowed", counts[http.StatusOK],
			counts[http.StatusTooManyRequests], total, limitPerMinute)
	}
}
