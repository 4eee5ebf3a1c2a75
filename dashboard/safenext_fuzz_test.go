package dashboard

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzSafeNext checks the post-login destination a visitor may choose
// (?next= and the login form's next field): kept only as a path on this
// host, and the Location the dashboard then sends leads nowhere else, as
// Go reads it and as a browser does (which drops tabs and newlines and
// takes a backslash for a slash).
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{
		"/orgs/acme/tokens", "/invitations/abc?x=1#top", "//evil.example", "/\\evil.example", "/\t/evil.example",
		"https://evil.example/", "/%2F%2Fevil.example", "/.//evil.example", "/../../evil", "javascript:alert(1)",
		"/a/../..//evil.example", "/\u3000/evil", "", "/", "/%0d%0aSet-Cookie:x=1",
	} {
		f.Add(s)
	}
	base, _ := url.Parse("https://keygate.example/login")
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		if got == "" {
			return
		}
		if got != next {
			t.Fatalf("safeNext(%q) = %q: a destination is kept as given or dropped", next, got)
		}
		rec := httptest.NewRecorder()
		redirect(rec, httptest.NewRequest(http.MethodPost, "/login", nil), got)
		loc := rec.Header().Get("Location")
		if strings.ContainsAny(loc, "\r\n") {
			t.Fatalf("Location %q from next %q splits the header", loc, next)
		}
		u, err := base.Parse(loc)
		if err != nil || u.Host != base.Host || u.Scheme != base.Scheme {
			t.Fatalf("next %q: Location %q leads to %v (%v)", next, loc, u, err)
		}
		browser := strings.TrimLeft(strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(loc), "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
		if !strings.HasPrefix(browser, "/") || strings.HasPrefix(browser, "//") {
			t.Fatalf("next %q: a browser reads Location %q as %q, off this host", next, loc, browser)
		}
	})
}
