package dashboard_test

import (
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/password"
)

// Thirty wrong passwords for one account arriving at once: each attempt is
// counted before its password is hashed, so no more than the account's
// allowance of five reaches argon2id (64 MiB each), the rest are refused
// at once, and the process's peak memory grows by far less than thirty
// hashes would take.
func TestParallelWrongPasswordsHashAtMostTheAllowance(t *testing.T) {
	f := newFixture(t)
	const attempts = 30
	type attempt struct {
		client *http.Client
		form   url.Values
	}
	prepared := make([]attempt, attempts)
	for i := range prepared {
		b := f.browser()
		form := b.get("/login").expect(t, http.StatusOK)
		prepared[i] = attempt{b.client, url.Values{"csrf_token": {field(t, csrfField, form.Body)}, "email": {"owner@acme.test"}, "password": {"wrong guess " + strconv.Itoa(i)}}}
	}
	// Earlier tests in this binary leave garbage that sets the collector's
	// goal; without collecting it first, hashes could pile up uncollected
	// under that goal and measure the pacing, not keygate.
	runtime.GC()
	debug.FreeOSMemory()
	hashedBefore := password.Computed()
	start := resetPeakRSS(t)
	statuses := make(chan int, attempts)
	var wg sync.WaitGroup
	release := make(chan struct{})
	for _, a := range prepared {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			resp, err := a.client.PostForm(f.server.URL+"/login", a.form)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	close(release)
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	peak := peakRSS(t)
	growth := peak - start
	t.Logf("%d parallel wrong passwords: %d checked (401), %d refused as throttled (429), %d refused as busy (503); peak RSS %d MiB → %d MiB, growth %d MiB",
		attempts, count[401], count[429], count[503], start>>20, peak>>20, growth>>20)
	if count[401]+count[429]+count[503] != attempts {
		t.Errorf("statuses %v", count)
	}
	if count[401] > 5 {
		t.Errorf("%d passwords were checked for one account; the allowance is 5", count[401])
	}
	if hashed := password.Computed() - hashedBefore; hashed > 5 {
		t.Errorf("%d argon2id hashes computed for 30 attempts; the allowance is 5", hashed)
	}
	switch {
	case raceDetector:
		t.Logf("peak RSS not judged under the race detector (its shadow memory multiplies each hash's 64 MiB); run without -race to check the 300 MiB bound")
	case start > 0 && growth > 300<<20:
		t.Errorf("peak RSS grew by %d MiB", growth>>20)
	}
}

// resetPeakRSS resets the process's VmHWM to its current RSS (Linux
// clear_refs 5) and returns that RSS in bytes; 0 where this is unavailable.
func resetPeakRSS(t *testing.T) int64 {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Logf("peak RSS not measured: %v", err)
		return 0
	}
	return procStatus(t, "VmRSS:")
}

func peakRSS(t *testing.T) int64 { return procStatus(t, "VmHWM:") }

func procStatus(t *testing.T, key string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s %q", key, rest)
			}
			return kb << 10
		}
	}
	return 0
}
