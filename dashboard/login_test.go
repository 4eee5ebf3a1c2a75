package dashboard_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestLoginAndLogout(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	form := b.get("/orgs/acme/tokens").expect(t, http.StatusOK, "Log in to keygate", `name="next" value="/orgs/acme/tokens"`)
	if form.Request.URL.RequestURI() != "/login?next=%2Forgs%2Facme%2Ftokens" {
		t.Errorf("sent to %s", form.Request.URL.RequestURI())
	}
	if cc := form.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	token := field(t, csrfField, form.Body)

	wrong := b.post("/login", url.Values{"csrf_token": {token}, "email": {"owner@acme.test"}, "password": {"nope"}, "next": {"/orgs/acme/tokens"}})
	wrong.expect(t, http.StatusUnauthorized, "Wrong email or password.", `value="owner@acme.test"`)
	unknown := b.post("/login", url.Values{"csrf_token": {field(t, csrfField, wrong.Body)}, "email": {"ghost@acme.test"}, "password": {"nope"}})
	unknown.expect(t, http.StatusUnauthorized, "Wrong email or password.")

	ok := b.post("/login", url.Values{"csrf_token": {field(t, csrfField, unknown.Body)}, "email": {"OWNER@acme.test"}, "password": {testPassword}, "next": {"/orgs/acme/tokens"}})
	ok.expect(t, http.StatusOK, "API Tokens", "owner@acme.test")
	if ok.Request.URL.Path != "/orgs/acme/tokens" {
		t.Errorf("after login at %s", ok.Request.URL)
	}
	c := b.cookie("keygate_session")
	if c == nil {
		t.Fatal("no session cookie")
	}
	raw := ok.Request.Response.Header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(raw, want) {
			t.Errorf("session cookie %q lacks %s", raw, want)
		}
	}
	if strings.Contains(f.logs.String(), testPassword) {
		t.Error("a password reached the logs")
	}

	// Log out: the cookie's session is gone from the store, not just the browser.
	csrf := field(t, csrfField, ok.Body)
	out := b.post("/logout", url.Values{"csrf_token": {csrf}}).expect(t, http.StatusOK, "You have logged out.")
	if out.Request.URL.Path != "/login" {
		t.Errorf("after logout at %s", out.Request.URL)
	}
	replay := f.browser()
	replay.client.Jar.SetCookies(mustURL(f.server.URL), []*http.Cookie{{Name: "keygate_session", Value: c.Value}})
	replay.noFollow("GET", "/orgs/acme/tokens", nil).expect(t, http.StatusSeeOther)
	replay.get("/orgs/acme/tokens").expect(t, http.StatusOK, "Log in to keygate")
}

func TestLogoutNeedsCSRF(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.login(f.owner)
	// A cross-site form cannot log people out.
	b.post("/logout", url.Values{}).expect(t, http.StatusForbidden, "This form has expired or did not come from keygate.")
	b.get("/orgs/acme/tokens").expect(t, http.StatusOK, "API Tokens")
	// Without JavaScript, GET /logout offers the button.
	b.get("/logout").expect(t, http.StatusOK, "Log out?", `action="/logout"`)
}

func TestLoginFormNeedsItsOwnToken(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	// A form posted from another site carries neither the cookie nor the field.
	b.post("/login", url.Values{"email": {"owner@acme.test"}, "password": {testPassword}}).
		expect(t, http.StatusForbidden, "Your login form expired. Please try again.")
	form := b.get("/login")
	b.post("/login", url.Values{"csrf_token": {"x" + field(t, csrfField, form.Body)}, "email": {"owner@acme.test"}, "password": {testPassword}}).
		expect(t, http.StatusForbidden, "Your login form expired.")
	if b.cookie("keygate_session") != nil {
		t.Fatal("a session was started")
	}
}

// A session id planted in the browser before login is worthless after it:
// login issues a new id and deletes the old session.
func TestLoginReplacesThePlantedSession(t *testing.T) {
	f := newFixture(t)
	const chosen = "attacker-chosen-value-0123456789"
	victim := f.browser()
	victim.client.Jar.SetCookies(mustURL(f.server.URL), []*http.Cookie{{Name: "keygate_session", Value: chosen}})
	victim.login(f.owner)
	if got := victim.cookie("keygate_session").Value; got == chosen {
		t.Fatal("login kept the planted session id")
	}
	attacker := f.browser()
	attacker.client.Jar.SetCookies(mustURL(f.server.URL), []*http.Cookie{{Name: "keygate_session", Value: chosen}})
	attacker.get("/orgs/acme/tokens").expect(t, http.StatusOK, "Log in to keygate")

	// A planted id that was a live session (the attacker's own login) is
	// ended by the victim's login, not upgraded to the victim's account.
	other := f.browser()
	other.login(f.member)
	planted := other.cookie("keygate_session").Value
	victim2 := f.browser()
	victim2.client.Jar.SetCookies(mustURL(f.server.URL), []*http.Cookie{{Name: "keygate_session", Value: planted}})
	victim2.get("/orgs/acme/tokens").expect(t, http.StatusOK, "member@acme.test")
	// GET /login would lead a logged-in browser to its dashboard, so post
	// the login form as one opened earlier would.
	victim2.client.Jar.SetCookies(mustURL(f.server.URL), []*http.Cookie{{Name: "keygate_login", Value: "form-token"}})
	victim2.post("/login", url.Values{"csrf_token": {"form-token"}, "email": {"owner@acme.test"}, "password": {testPassword}}).
		expect(t, http.StatusOK, "owner@acme.test")
	if victim2.cookie("keygate_session").Value == planted {
		t.Fatal("login kept the planted session id")
	}
	victim2.get("/orgs/acme/members").expect(t, http.StatusOK, "owner@acme.test", "Invite a member")
	other.get("/orgs/acme/members").expect(t, http.StatusOK, "Log in to keygate")
}

func TestLoginAttemptsAreLimitedPerAccount(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	try := func(pw string) page {
		form := b.get("/login")
		return b.post("/login", url.Values{"csrf_token": {field(t, csrfField, form.Body)}, "email": {"owner@acme.test"}, "password": {pw}})
	}
	for i := 0; i < 5; i++ {
		try("wrong").expect(t, http.StatusUnauthorized, "Wrong email or password.")
	}
	// Now even the right password is refused, with a clear message.
	try(testPassword).expect(t, http.StatusTooManyRequests, "Too many failed login attempts. Try again in 15 minutes.")
	// Another account from the same address still works, and so does the
	// owner from another address: failures from one address cannot lock
	// the owner out.
	f.browser().login(f.member)
	f.browserFrom("192.0.2.44").login(f.owner)
	f.now = f.now.Add(10 * time.Minute)
	try(testPassword).expect(t, http.StatusTooManyRequests, "Too many failed login attempts. Try again in 5 minutes.")
	f.now = f.now.Add(5*time.Minute + time.Second)
	try(testPassword).expect(t, http.StatusOK, "API Tokens")
	if !strings.Contains(f.logs.String(), "login refused") {
		t.Errorf("refusals not logged:\n%s", f.logs)
	}
}

// The default is 20 failures per address (session's tests check the
// defaults); 4 here keeps the test quick, each attempt costing an argon2id.
func TestLoginAttemptsAreLimitedPerAddress(t *testing.T) {
	f := newFixture(t)
	f.logins.PerAddress = 4
	b := f.browser()
	for i := 0; i < 4; i++ {
		form := b.get("/login")
		b.post("/login", url.Values{"csrf_token": {field(t, csrfField, form.Body)}, "email": {"guess" + string(rune('a'+i)) + "@acme.test"}, "password": {"x"}}).
			expect(t, http.StatusUnauthorized, "Wrong email or password.")
	}
	form := b.get("/login")
	b.post("/login", url.Values{"csrf_token": {field(t, csrfField, form.Body)}, "email": {"owner@acme.test"}, "password": {testPassword}}).
		expect(t, http.StatusTooManyRequests, "Too many failed login attempts. Try again in 15 minutes.")
}

// An IPv6 client is one address for the login limits by its /64
// (ipv6_prefix_length), as for the gateway's per-IP limits: guesses from a
// new address of the same /64 each time are stopped all the same, while
// the next /64 is another client.
func TestLoginAttemptsFromOneIPv6PrefixAreLimitedTogether(t *testing.T) {
	f := newFixture(t)
	f.logins.PerAddress = 4
	for i := 0; i < 4; i++ {
		b := f.browserFrom(fmt.Sprintf("2001:db8:7:7::%x", i+1))
		form := b.get("/login")
		b.post("/login", url.Values{"csrf_token": {field(t, csrfField, form.Body)}, "email": {"guess" + string(rune('a'+i)) + "@acme.test"}, "password": {"x"}}).
			expect(t, http.StatusUnauthorized, "Wrong email or password.")
	}
	b := f.browserFrom("2001:db8:7:7:ffff::1")
	form := b.get("/login")
	b.post("/login", url.Values{"csrf_token": {field(t, csrfField, form.Body)}, "email": {"owner@acme.test"}, "password": {testPassword}}).
		expect(t, http.StatusTooManyRequests, "Too many failed login attempts. Try again in 15 minutes.")
	f.browserFrom("2001:db8:7:8::1").login(f.owner)
}

// The page asked for before login is where login leads, but only pages of
// this site.
func TestLoginNextStaysOnThisSite(t *testing.T) {
	f := newFixture(t)
	for _, next := range []string{"//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"} {
		b := f.browser()
		form := b.get("/login?next=" + url.QueryEscape(next))
		if strings.Contains(form.Body, "evil") || strings.Contains(form.Body, "javascript") {
			t.Errorf("next %q kept in the form", next)
		}
		p := b.post("/login", url.Values{"csrf_token": {field(t, csrfField, form.Body)}, "email": {"owner@acme.test"}, "password": {testPassword}, "next": {next}})
		if p.Request.URL.Host != mustURL(f.server.URL).Host || p.Request.URL.Path != "/orgs/acme/tokens" {
			t.Errorf("next %q led to %s", next, p.Request.URL)
		}
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
