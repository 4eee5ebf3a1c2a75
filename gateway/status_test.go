package gateway_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentAnswersKeepTheirOwnStatus sends requests whose upstream
// answers differ only in status over the gateway's pooled upstream
// connections, many at once. Each request's status is what it counts
// and logs: read before its connection goes back to the pool, where the
// next request reads its own answer into the same place (run with -race,
// as CI does, a read after that is a data race).
func TestConcurrentAnswersKeepTheirOwnStatus(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, _ := strconv.Atoi(r.URL.Query().Get("status"))
		w.WriteHeader(status)
		io.WriteString(w, "{}")
	}))
	t.Cleanup(upstream.Close)
	p, logs := loggedProxy(t, upstream.URL)

	const workers, each = 8, 40
	statuses := []int{201, 202}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	var wg sync.WaitGroup
	for w := range workers {
		status := statuses[w%len(statuses)]
		wg.Go(func() {
			for range each {
				resp, err := client.Do(p.request(t, "GET", fmt.Sprintf("/v2/products?status=%d", status), nil))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != status {
					t.Errorf("client got %d, want %d", resp.StatusCode, status)
				}
			}
		})
	}
	wg.Wait()

	for _, status := range statuses {
		want := workers / len(statuses) * each
		if got := strings.Count(logs.String(), fmt.Sprintf(" status=%d ", status)); got != want {
			t.Errorf("%d requests logged with status %d, want %d", got, status, want)
		}
	}
}
