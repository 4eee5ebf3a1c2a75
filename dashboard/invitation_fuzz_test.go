package dashboard_test

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"
)

// FuzzInvitationLink opens, signs up from, accepts and declines
// invitation links made from arbitrary input, as a visitor without a
// session: the real link, the link with bytes added before or after its
// secret, or any other secret. Whatever is sent: never a 5xx; a link that
// is not the real one gets the one "not valid" page, byte for byte, on a
// GET; only the real link opens the invitation; and neither the real
// secret nor a guessed one ever reaches the logs, nor a guess a page.
func FuzzInvitationLink(f *testing.F) {
	for _, s := range []struct {
		secret string
		mode   uint8
		form   string
	}{
		{"", 1, ""},
		{"x", 1, ""},
		{"x", 2, ""},
		{"", 4, "name=Ann&password=plum+orchard+42&password_confirm=plum+orchard+42&csrf_token=x"},
		{"", 7, "csrf_token=x"},
		{"", 10, ""},
		{"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0, ""},
		{"../../orgs/acme/members", 0, ""},
		{"%00", 3, "a=%zz"},
		{strings.Repeat("A", 5000), 0, ""},
	} {
		f.Add(s.secret, s.mode, s.form)
	}
	fx := newFixture(f)
	owner := fx.browser()
	owner.login(fx.owner)
	link := owner.invite("new@example.test", "member")
	secret := strings.TrimPrefix(link, "/invitations/")
	notValid := fx.browserFrom("192.0.2.1").get("/invitations/"+strings.Repeat("A", 43)).
		expect(f, http.StatusNotFound, "This invitation is not valid").Body
	n := 0

	f.Fuzz(func(t *testing.T, s string, mode uint8, form string) {
		fx.t = t
		switch mode % 3 {
		case 1:
			s = secret + s
		case 2:
			s = s + secret
		}
		if s == "" || !cleanPath("/invitations/"+s) {
			// /invitations/ is no link, and net/http redirects a path
			// with empty, "." or ".." segments (a secret holding "/" or
			// dots) to its clean form before any route sees it.
			t.Skip()
		}
		real := s == secret
		n++ // each input from its own address: the pages are limited per address
		b := fx.browserFrom(fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255))
		path := "/invitations/" + url.PathEscape(s)
		var p page
		switch mode / 3 % 4 {
		case 0:
			p = b.get(path)
		case 1:
			v, _ := url.ParseQuery(form)
			p = b.noFollow(http.MethodPost, path+"/signup", v)
		case 2:
			p = b.noFollow(http.MethodPost, path+"/accept", url.Values{"csrf_token": {form}})
		case 3:
			p = b.noFollow(http.MethodPost, path+"/decline", url.Values{"csrf_token": {form}})
		}
		if p.StatusCode >= 500 {
			t.Fatalf("%s %q: %d\n%s", p.Request.Method, path, p.StatusCode, p.Body)
		}
		if mode/3%4 == 0 {
			switch {
			case real && p.StatusCode != http.StatusOK:
				t.Fatalf("the real link answered %d", p.StatusCode)
			case real && !strings.Contains(p.Body, "Join Acme Corp"):
				t.Fatalf("the real link does not open the invitation:\n%s", p.Body)
			case !real && p.StatusCode == http.StatusNotFound && p.Body != notValid:
				t.Fatalf("GET %q: a not-valid page unlike the others:\n%s", path, p.Body)
			case !real && p.StatusCode != http.StatusNotFound:
				t.Fatalf("GET %q: %d, want the not-valid page", path, p.StatusCode)
			}
		}
		if !real && p.StatusCode == http.StatusOK && strings.Contains(p.Body, "Join Acme Corp") {
			t.Fatalf("%s %q opened the invitation", p.Request.Method, path)
		}
		if len(s) >= 12 && !real && strings.Contains(p.Body, s) {
			t.Fatalf("%s %q: the page repeats the guessed secret", p.Request.Method, path)
		}
		logs := fx.logs.String()
		if strings.Contains(logs, secret) || len(s) >= 12 && strings.Contains(logs, s) {
			t.Fatalf("%s %q: an invitation secret reached the logs", p.Request.Method, path)
		}
	})
}

// cleanPath reports whether net/http's ServeMux takes p as it is rather
// than redirecting it to its clean form (path.Clean, keeping a trailing
// slash).
func cleanPath(p string) bool {
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return clean == p
}
