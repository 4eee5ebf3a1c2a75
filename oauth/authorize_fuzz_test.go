package oauth_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/keygate/keygate/oauth"
)

// FuzzAuthorize sends arbitrary authorization requests — the query of
// GET /oauth/authorize, or the same as the consent form's request with an
// approval — logged in or not. $PUB and $MULTI stand for a public client
// with one redirect URI and a confidential one with two, $RESOURCE for
// the MCP endpoint, $CHALLENGE for a valid S256 challenge. Whatever is
// sent: never a 5xx; a redirect goes only to a redirect URI the client
// registered (on a loopback address, any port), with keygate as iss and
// the request's state; a code only after an approval; and what the
// request holds is never markup on a page.
func FuzzAuthorize(f *testing.F) {
	for _, s := range []struct {
		query string
		mode  uint8
	}{
		{"response_type=code&client_id=$PUB&redirect_uri=" + url.QueryEscape(redirectURI) + "&code_challenge=$CHALLENGE&code_challenge_method=S256&state=xyz&resource=$RESOURCE&scope=products%3Aread", 0},
		{"response_type=code&client_id=$PUB&code_challenge=$CHALLENGE&code_challenge_method=S256&state=s&resource=$RESOURCE", 1},
		{"response_type=code&client_id=$PUB&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&code_challenge=$CHALLENGE&code_challenge_method=S256&resource=$RESOURCE", 2},
		{"response_type=code&client_id=$PUB&redirect_uri=http%3A%2F%2Fevil.example%2Fcallback&state=%3Cscript%3E", 0},
		{"response_type=token&client_id=$PUB&state=a&state=b", 0},
		{"response_type=code&client_id=$MULTI&code_challenge=$CHALLENGE&code_challenge_method=S256", 0},
		{"response_type=code&client_id=$MULTI&redirect_uri=https%3A%2F%2Fb.example.com%2Fcb&code_challenge=$CHALLENGE&code_challenge_method=plain", 1},
		{"client_id=https%3A%2F%2F127.0.0.1%2Fclient.json&response_type=code", 0},
		{"client_id=%3Cb%3Ex%3C%2Fb%3E", 0},
		{"%zz", 0},
		{"response_type=code&client_id=$PUB&request_uri=urn:x&state=%22%3E%3Cimg", 2},
	} {
		f.Add(s.query, s.mode)
	}
	h := newHarness(f)
	public := h.registerPublic(redirectURI)
	status, reg := h.register(map[string]any{"client_name": "Multi", "redirect_uris": []string{"https://a.example.com/cb", "https://b.example.com/cb?x=1"}})
	if status != http.StatusCreated {
		f.Fatalf("register: %d %v", status, reg)
	}
	multi := reg["client_id"].(string)
	registered := map[string][]string{public: {redirectURI}, multi: {"https://a.example.com/cb", "https://b.example.com/cb?x=1"}}
	verifier := oauth2.GenerateVerifier()
	h.codeFor(public, verifier) // logs the harness's browser in
	consent := h.browser.get(h.authURL(public, verifier, nil))
	csrf := consent.fields().Get("csrf_token")
	if csrf == "" {
		f.Fatalf("no CSRF token on the consent page:\n%s", consent.body)
	}

	f.Fuzz(func(t *testing.T, query string, mode uint8) {
		if _, err := url.Parse("http://h/?" + query); err != nil || strings.ContainsAny(query, "# \t\r\n\x00") || len(query) > 4096 {
			t.Skip() // not a query a client can send as one
		}
		query = strings.NewReplacer("$PUB", url.QueryEscape(public), "$MULTI", url.QueryEscape(multi),
			"$RESOURCE", url.QueryEscape(h.api().resource), "$CHALLENGE", oauth2.S256ChallengeFromVerifier(verifier)).Replace(query)
		h.t, h.browser.t = t, t
		b := h.browser
		if mode%3 == 1 {
			b = newBrowser(t) // no session
		}
		var p *page
		approve := mode%3 == 2
		if approve {
			p = b.post(h.issuer+oauth.PathAuthorize, url.Values{"request": {query}, "decision": {"approve"},
				"organization": {h.org.ID}, "csrf_token": {csrf}})
		} else {
			p = b.get(h.issuer + oauth.PathAuthorize + "?" + query)
		}
		if p.status >= 500 {
			t.Fatalf("%q: %d\n%s", query, p.status, p.body)
		}
		q, _ := url.ParseQuery(query)
		if strings.Contains(p.body, "<script") || strings.Contains(p.body, "<img") || strings.Contains(p.body, "<b>") {
			t.Fatalf("%q: markup from the request on the page:\n%s", query, p.body)
		}
		if p.status < 300 || p.status > 399 {
			return
		}
		loc := p.location
		if loc == nil {
			t.Fatalf("%q: %d without a Location", query, p.status)
		}
		back := *loc
		back.RawQuery = ""
		var allowed bool
		for _, r := range registered[q.Get("client_id")] {
			ru, _ := url.Parse(r)
			ru.RawQuery = ""
			if ru.String() == back.String() || ru.Hostname() == "127.0.0.1" && loc.Scheme == "http" && loc.Hostname() == "127.0.0.1" && loc.Path == ru.Path && loc.User == nil {
				allowed = true
			}
		}
		if !allowed {
			t.Fatalf("%q: redirected to %s, which client %q did not register", query, loc, q.Get("client_id"))
		}
		got := loc.Query()
		if got.Get("iss") != h.issuer {
			t.Fatalf("%q: redirect %s without iss %s", query, loc, h.issuer)
		}
		if len(q["state"]) == 1 && got.Get("state") != q.Get("state") {
			t.Fatalf("%q: redirect %s loses state %q", query, loc, q.Get("state"))
		}
		if got.Has("code") && !approve {
			t.Fatalf("%q: a code without an approval: %s", query, loc)
		}
		if got.Has("code") == got.Has("error") {
			t.Fatalf("%q: redirect %s with neither or both of code and error", query, loc)
		}
	})
}
