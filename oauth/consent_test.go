package oauth_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/oauth"
	"github.com/keygate/keygate/session"
)

// consentPage logs in and returns the consent page for a fresh request.
func (h *harness) consentPage(b *browser, clientID string) *page {
	h.t.Helper()
	p := b.login(b.get(h.authURL(clientID, oauth2.GenerateVerifier(), nil)), userEmail, userPassword)
	if p.status != http.StatusOK {
		h.t.Fatalf("consent page: status %d, body %s", p.status, p.body)
	}
	return p
}

func TestConsentPageSaysWhatIsShared(t *testing.T) {
	h := newHarness(t)
	clientID := h.registerPublic(redirectURI)
	p := h.consentPage(newBrowser(t), clientID)
	for _, want := range []string{
		"Allow <strong>Test MCP client</strong> to use cannmenus?",
		"registered itself as <code>" + clientID + "</code>",
		"sent to <strong>127.0.0.1:33418</strong>",
		"on this computer (localhost)",
		"<code>" + h.api().resource + "</code>",
		"scope <code>products:read</code>", "scope <code>dispensaries:read</code>",
		"receives a refresh token",
		"Acme Dispensaries", "States: California, Oregon", "Brands: all",
		"Globex", "States: Colorado", "Brands: Sunny Farms",
		"Logged in as " + userEmail,
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	for k, want := range map[string]string{
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-store",
		"Content-Security-Policy": "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'",
	} {
		if got := p.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestConsentDeny(t *testing.T) {
	h := newHarness(t)
	b := newBrowser(t)
	back := b.decide(h.consentPage(b, h.registerPublic(redirectURI)), "deny", "")
	if back.status != http.StatusSeeOther || back.location == nil {
		t.Fatalf("deny: status %d", back.status)
	}
	q := back.location.Query()
	if q.Get("error") != "access_denied" || q.Get("state") != "xyz" || q.Get("iss") != h.issuer || q.Has("code") {
		t.Errorf("deny redirect query %v", q)
	}
}

func TestConsentNeedsCSRFAndMembership(t *testing.T) {
	h := newHarness(t)
	clientID := h.registerPublic(redirectURI)
	b := newBrowser(t)
	consent := h.consentPage(b, clientID)

	form := consent.fields()
	form.Set("csrf_token", "forged")
	form.Set("organization", h.org.ID)
	form.Set("decision", "approve")
	if p := b.post(consent.resolve("authorize"), form); p.status != http.StatusForbidden || p.location != nil {
		t.Errorf("forged CSRF token: status %d, Location %v; want 403", p.status, p.location)
	}

	stranger := &keygate.Organization{Slug: "stranger", Name: "Stranger", Plan: "free"}
	h.must("CreateOrganization", h.store.CreateOrganization(h.ctx, stranger))
	if p := b.decide(consent, "approve", stranger.ID); p.status != http.StatusForbidden || !strings.Contains(p.body, "not a member") {
		t.Errorf("organization of which the user is not a member: status %d, body %s", p.status, p.body)
	}

	// Without a session the decision asks for a login again.
	if p := newBrowser(t).decide(consent, "approve", h.org.ID); p.status != http.StatusOK || !strings.Contains(p.body, "Your session ended") {
		t.Errorf("decision without session: status %d", p.status)
	}
}

func TestUserWithoutOrganization(t *testing.T) {
	h := newHarness(t)
	for _, org := range []*keygate.Organization{h.org, h.org2} {
		h.must("DeleteMembership", h.store.DeleteMembership(h.ctx, org.ID, h.user.ID))
	}
	p := h.consentPage(newBrowser(t), h.registerPublic(redirectURI))
	if !strings.Contains(p.body, "not a member of any organization") || strings.Contains(p.body, `value="approve"`) {
		t.Errorf("consent page for a user without organization offers approval: %s", p.body)
	}
}

func TestLogin(t *testing.T) {
	h := newHarness(t)
	clientID := h.registerPublic(redirectURI)
	b := newBrowser(t)
	loginPage := b.get(h.authURL(clientID, oauth2.GenerateVerifier(), nil))

	for _, c := range []struct{ email, password string }{
		{userEmail, "wrong password"},
		{"nobody@example.com", userPassword},
	} {
		form := loginPage.fields()
		form.Set("email", c.email)
		form.Set("password", c.password)
		p := b.post(loginPage.resolve("login"), form)
		if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Email or password is incorrect.") {
			t.Errorf("login %s: status %d", c.email, p.status)
		}
		loginPage = p // a new form, with a new CSRF token
	}

	// The login form's CSRF token must match its cookie.
	form := loginPage.fields()
	form.Set("login_csrf", "forged")
	form.Set("email", userEmail)
	form.Set("password", userPassword)
	if p := b.post(loginPage.resolve("login"), form); p.status != http.StatusForbidden {
		t.Errorf("forged login CSRF: status %d, want 403", p.status)
	}

	// Logging out from the consent page ("not you?") shows the login again.
	consent := h.consentPage(b, clientID)
	logout := b.post(consent.resolve("logout"), consent.fields())
	if logout.status != http.StatusSeeOther {
		t.Fatalf("logout: status %d", logout.status)
	}
	if p := b.get(logout.location.String()); !strings.Contains(p.body, "Log in to keygate") {
		t.Errorf("after logout: %s", p.body)
	}
}

// TestLoginCSRFCookieCannotBeTossed: behind TLS the login form's
// double-submit cookie is a __Host- cookie, which only keygate's own
// origin can set. A sibling subdomain is the same site, so it can post
// the form; if it could also plant the cookie (Domain=the parent), it
// would log the visitor in to an account of its choosing, and the
// visitor's MCP client would then be connected to that account.
func TestLoginCSRFCookieCannotBeTossed(t *testing.T) {
	h := newHarness(t, func(o *harnessOptions) {
		o.config = func(c *oauth.Config) { c.Sessions.Secure = true }
	})
	clientID := h.registerPublic(redirectURI)
	loginPage := newBrowser(t).get(h.authURL(clientID, oauth2.GenerateVerifier(), nil))
	var names []string
	for _, c := range (&http.Response{Header: loginPage.header}).Cookies() {
		names = append(names, c.Name)
		if !c.Secure || !strings.HasPrefix(c.Name, "__Host-") || c.Path != "/" || c.Domain != "" {
			t.Errorf("login page sets cookie %s (Secure %v, Path %q, Domain %q); want a __Host- cookie", c.Name, c.Secure, c.Path, c.Domain)
		}
	}
	if len(names) != 1 {
		t.Fatalf("login page sets cookies %q, want one", names)
	}

	// The cookie a sibling subdomain can plant, named as keygate would
	// name it without TLS, with the token it posts.
	form := loginPage.fields()
	form.Set("login_csrf", "planted")
	form.Set("email", userEmail)
	form.Set("password", userPassword)
	req, _ := http.NewRequest(http.MethodPost, loginPage.resolve("login"), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", "keygate_oauth_login=planted")
	p := newBrowser(t).do(req)
	var set []string
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		set = append(set, c.Name)
	}
	if p.status != http.StatusForbidden || slices.Contains(set, session.SecureCookieName) {
		t.Errorf("login with a planted cookie: status %d, cookies set %q; want 403 and no session", p.status, set)
	}
}

func TestLoginURLSendsToDashboard(t *testing.T) {
	h := newHarness(t, func(o *harnessOptions) {
		o.config = func(c *oauth.Config) { c.LoginURL = "/login" }
	})
	clientID := h.registerPublic(redirectURI)
	authURL := h.authURL(clientID, oauth2.GenerateVerifier(), nil)
	p := newBrowser(t).get(authURL)
	if p.status != http.StatusSeeOther || p.location.Path != "/login" {
		t.Fatalf("status %d, Location %v; want 303 to /login", p.status, p.location)
	}
	next, _ := url.Parse(p.location.Query().Get("next"))
	if next.Path != "/oauth/authorize" || next.Query().Get("client_id") != clientID {
		t.Errorf("next = %s, want the authorization request", next)
	}
}

// TestLoginAttemptsLimited: the login form shares the dashboard's limiter,
// so it is no way around the dashboard's limits.
func TestLoginAttemptsLimited(t *testing.T) {
	limiter := &session.LoginLimiter{PerAccountAddress: 2}
	h := newHarness(t, func(o *harnessOptions) {
		o.config = func(c *oauth.Config) { c.Logins = limiter }
	})
	b := newBrowser(t)
	p := b.get(h.authURL(h.registerPublic(redirectURI), oauth2.GenerateVerifier(), nil))
	for _, pw := range []string{"guess one", "guess two", userPassword} {
		form := p.fields()
		form.Set("email", userEmail)
		form.Set("password", pw)
		p = b.post(p.resolve("login"), form)
	}
	if p.status != http.StatusTooManyRequests || !strings.Contains(p.body, "Too many failed login attempts.") {
		t.Errorf("third attempt after two failures: status %d, body %s", p.status, p.body)
	}
}

// Thirty wrong passwords for one account posted at once to the OAuth login
// form: attempts are counted before hashing, so at most the allowance of
// five reaches argon2id and the rest are refused at once.
func TestParallelLoginAttemptsHashAtMostTheAllowance(t *testing.T) {
	h := newHarness(t)
	clientID := h.registerPublic(redirectURI)
	type attempt struct {
		b    *browser
		url  string
		form url.Values
	}
	prepared := make([]attempt, 30)
	for i := range prepared {
		b := newBrowser(t)
		p := b.get(h.authURL(clientID, oauth2.GenerateVerifier(), nil))
		form := p.fields()
		form.Set("email", userEmail)
		form.Set("password", fmt.Sprint("guess ", i))
		prepared[i] = attempt{b, p.resolve("login"), form}
	}
	statuses := make(chan int, len(prepared))
	var wg sync.WaitGroup
	for _, a := range prepared {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, a.url, strings.NewReader(a.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := a.b.client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	t.Logf("30 parallel wrong passwords on /oauth/login: %d checked (401), %d throttled (429), %d busy (503)", count[401], count[429], count[503])
	if count[401] > 5 || count[401]+count[429]+count[503] != 30 {
		t.Errorf("statuses %v: want at most 5 passwords checked, the rest refused", count)
	}
}
