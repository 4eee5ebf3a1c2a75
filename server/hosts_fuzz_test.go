package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzHostRouter sends arbitrary Host values to APIs sharing one listen
// address. A request reaches an API only when its Host names that API's
// host (in any case, with at most a port and one trailing dot); spelled
// that way, it always does; anything else gets the 404, never a panic.
func FuzzHostRouter(f *testing.F) {
	hosts := []string{"menus.example.com", "events.example"}
	for _, s := range []string{"menus.example.com", "MENUS.example.COM:8080", "events.example.", "events.example.:443",
		"evil.menus.example.com", "menus.example.com.evil", "[::1]:80", "menus.example.com:", ":80", ""} {
		f.Add(s, uint8(0), "")
	}
	f.Add("", uint8(1), "8080")
	f.Add("", uint8(6), "")
	router := hostRouter{}
	for _, h := range hosts {
		router[h] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-Api", h) })
	}

	f.Fuzz(func(t *testing.T, host string, spelling uint8, port string) {
		want := ""
		if spelling%8 != 0 {
			// One of the spellings that must reach an API.
			want = hosts[int(spelling)%len(hosts)]
			host = want
			if spelling&2 != 0 {
				host = strings.ToUpper(host)
			}
			if spelling&4 != 0 {
				host += "."
			}
			if port = strings.Map(func(r rune) rune {
				if r < '0' || r > '9' {
					return -1
				}
				return r
			}, port); port != "" {
				host += ":" + port
			}
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		router.ServeHTTP(rec, req)
		reached := rec.Header().Get("X-Api")
		if want != "" && reached != want {
			t.Fatalf("Host %q reached %q, want %s", host, reached, want)
		}
		if reached == "" {
			if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "No API is configured for this host.") {
				t.Fatalf("Host %q: %d %q, want the 404", host, rec.Code, rec.Body)
			}
			return
		}
		rest, ok := strings.CutPrefix(strings.ToLower(host), reached)
		rest = strings.TrimPrefix(rest, ".")
		if !ok || rest != "" && (rest[0] != ':' || strings.Contains(rest[1:], ":")) {
			t.Fatalf("Host %q reached %s, whose name it does not hold alone", host, reached)
		}
	})
}
