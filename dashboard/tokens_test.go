package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

func TestCreateTokenShowsItOnce(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.login(f.member)

	form := b.get("/orgs/acme/tokens/new?api=menus").expect(t, http.StatusOK,
		`<label for="name">Name</label>`,
		`value="90d" checked`, "90 days <span class=\"badge badge-success\">recommended</span>",
		`value="products:read"`, `aria-current="page">menus</a>`)
	// The menus API forbids tokens that never expire: not offered.
	form.lacks(t, `value="never"`)
	b.get("/orgs/acme/tokens/new?api=events").expect(t, http.StatusOK,
		`value="never"`, "Never <span class=\"badge badge-warning\">not recommended</span>")

	created := b.createToken("acme", url.Values{
		"api": {"menus"}, "name": {"Production server"}, "expires_in": {"30d"},
		"scopes": {"products:read"}, "environment": {"live"},
	}).expect(t, http.StatusCreated, "Copy your new token now", "This is the only time the token is shown.",
		`data-copy="new-token"`, "Send it in the <code>X-Token</code> header.")
	if cc := created.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("show-once response Cache-Control %q", cc)
	}
	if rp := created.Header.Get("Referrer-Policy"); rp != "no-referrer" {
		t.Errorf("Referrer-Policy %q", rp)
	}
	secret := field(t, secretField, created.Body)
	if !keygate.WellFormedToken(secret, "cm_live_") {
		t.Fatalf("shown token %q", secret)
	}
	if n := strings.Count(created.Body, secret); n != 1 {
		t.Errorf("the secret appears %d times in the show-once page", n)
	}
	if created.Request.URL.Path != "/orgs/acme/tokens" || created.Request.Method != "POST" {
		t.Errorf("show-once page at %s %s: it must answer the POST itself", created.Request.Method, created.Request.URL)
	}
	tokens := f.activeTokens(f.acme)
	if len(tokens) != 1 || tokens[0].Name != "Production server" || tokens[0].CreatedBy != f.member.ID ||
		tokens[0].ExpiresAt == nil || !tokens[0].ExpiresAt.Equal(f.now.Add(30*24*time.Hour).Truncate(time.Millisecond)) ||
		strings.Join(tokens[0].Scopes, ",") != "products:read" || tokens[0].Hash != keygate.HashToken(secret) {
		t.Fatalf("stored %+v", tokens[0])
	}
	tok := tokens[0]

	// Reloading (the browser posting the same form again) shows neither
	// this token nor a new one.
	replayForm := b.get("/orgs/acme/tokens/new?api=events")
	values := url.Values{
		"csrf_token": {field(t, csrfField, replayForm.Body)}, "form_id": {field(t, formIDField, replayForm.Body)},
		"api": {"events"}, "name": {"Once"}, "expires_in": {"7d"},
	}
	b.post("/orgs/acme/tokens", values).expect(t, http.StatusCreated)
	b.post("/orgs/acme/tokens", values).expect(t, http.StatusConflict,
		"This form was already submitted and its token was shown once.").lacks(t, `id="new-token"`)
	if n := len(f.activeTokens(f.acme)); n != 2 {
		t.Errorf("%d tokens after a replayed form, want 2", n)
	}

	// The list and every other page show the hint, never the secret.
	list := b.get("/orgs/acme/tokens").expect(t, http.StatusOK, "Production server", tok.Hint, "products:read", "Never")
	list.lacks(t, secret)
	b.get("/orgs/acme/tokens/"+tok.ID).expect(t, http.StatusOK, tok.Hint).lacks(t, secret)
	b.get("/orgs/acme/tokens/"+tok.ID+"/delete").expect(t, http.StatusOK, tok.Hint).lacks(t, secret)
	b.get("/orgs/acme/usage").expect(t, http.StatusOK).lacks(t, secret)

	for i, body := range b.pages {
		if strings.Contains(body, secret) && !strings.Contains(body, "Copy your new token now") {
			t.Errorf("page %d shows the secret:\n%s", i, body)
		}
	}
	logs := f.logs.String()
	if strings.Contains(logs, secret) || strings.Contains(logs, secret[len("cm_live_"):]) {
		t.Fatalf("the secret is in the logs:\n%s", logs)
	}
	if !strings.Contains(logs, "token created") || !strings.Contains(logs, tok.ID) {
		t.Errorf("creation not logged by id:\n%s", logs)
	}
}

func TestCreateTokenFormErrors(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.login(f.owner)
	b.createToken("acme", url.Values{"api": {"menus"}, "name": {"  "}, "expires_in": {"30d"}}).
		expect(t, http.StatusBadRequest, "Token name is required.", `value="30d" checked`)
	b.createToken("acme", url.Values{"api": {"menus"}, "name": {strings.Repeat("x", 101)}, "expires_in": {"30d"}}).
		expect(t, http.StatusBadRequest, "Token name must be 1 to 100 characters.")
	b.createToken("acme", url.Values{"api": {"menus"}, "name": {"Keep me"}, "expires_in": {"2w"}, "scopes": {"analytics:read"}}).
		expect(t, http.StatusBadRequest, `Unknown expiration &#34;2w&#34;`, `value="Keep me"`, `value="analytics:read" checked`)
	b.createToken("acme", url.Values{"api": {"menus"}, "name": {"x"}, "expires_in": {"never"}}).
		expect(t, http.StatusBadRequest, "This API does not allow tokens that never expire.")
	b.createToken("acme", url.Values{"api": {"menus"}, "name": {"x"}, "scopes": {"attendees:read"}}).
		expect(t, http.StatusBadRequest, "Unknown scope &#34;attendees:read&#34;.")
	if n := len(f.activeTokens(f.acme)); n != 0 {
		t.Fatalf("%d tokens created by refused forms", n)
	}
	// A form without its one-time id is refused rather than trusted.
	newForm := b.get("/orgs/acme/tokens/new")
	b.post("/orgs/acme/tokens", url.Values{"csrf_token": {field(t, csrfField, newForm.Body)}, "api": {"menus"}, "name": {"x"}}).
		expect(t, http.StatusBadRequest, "This form has expired. Open it again to create a token.")
}

func TestActiveTokenLimitIsExplained(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.login(f.owner)
	for _, name := range []string{"one", "two"} {
		b.createToken("acme", url.Values{"api": {"menus"}, "name": {name}}).expect(t, http.StatusCreated)
	}
	const explained = "Your organization has 2 of 2 active tokens for menus, the most allowed."
	b.get("/orgs/acme/tokens").expect(t, http.StatusOK, "Token limit reached for menus.", explained, "Delete a token before creating a new one.")
	b.get("/orgs/acme/tokens/new?api=menus").expect(t, http.StatusOK, "Token limit reached.", "Delete a token</a> before creating a new one.", `class="button button-primary" disabled`)
	// The store refuses even a form sent anyway.
	b.createToken("acme", url.Values{"api": {"menus"}, "name": {"three"}}).expect(t, http.StatusConflict,
		"This organization already has 2 active tokens for this API, the most allowed. Delete a token before creating a new one.")
	// Other APIs are not affected.
	b.get("/orgs/acme/tokens/new?api=events").expect(t, http.StatusOK).lacks(t, "Token limit reached")
}

func TestDeleteTokenWithConfirmation(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.login(f.member)
	b.createToken("acme", url.Values{"api": {"menus"}, "name": {"Old server"}}).expect(t, http.StatusCreated)
	tok := f.activeTokens(f.acme)[0]
	// The create was passed to Notify too: this instance's cache may hold
	// the new token's hash as unknown.
	select {
	case c := <-f.changes:
		if c.Kind != keygate.ChangeTokenCreated || c.ID != tok.ID {
			t.Errorf("notified %+v after the create", c)
		}
	default:
		t.Error("the create was not passed to Notify")
	}

	confirm := b.get("/orgs/acme/tokens/"+tok.ID+"/delete").expect(t, http.StatusOK,
		"Delete token “Old server”?", "will stop working <strong>immediately</strong>", `<button type="submit" class="button button-danger">Delete token</button>`)
	// Following the link does not delete: only the confirmation's POST does.
	if len(f.activeTokens(f.acme)) != 1 {
		t.Fatal("the confirmation page deleted the token")
	}
	// A forged POST without the CSRF token is refused.
	b.post("/orgs/acme/tokens/"+tok.ID+"/delete", url.Values{}).expect(t, http.StatusForbidden, "This form has expired or did not come from keygate.")
	if len(f.activeTokens(f.acme)) != 1 {
		t.Fatal("deleted without the CSRF token")
	}
	done := b.post("/orgs/acme/tokens/"+tok.ID+"/delete", url.Values{"csrf_token": {field(t, csrfField, confirm.Body)}}).
		expect(t, http.StatusOK, "Token “Old server” deleted. Requests using it are refused from now on.", "No tokens yet")
	if done.Request.URL.Path != "/orgs/acme/tokens" {
		t.Errorf("after delete at %s", done.Request.URL)
	}
	stored, err := f.store.FindTokenByID(context.Background(), tok.ID)
	if err != nil || stored.RevokedAt == nil {
		t.Fatalf("not revoked: %+v %v", stored, err)
	}
	select {
	case c := <-f.changes:
		if c.Kind != keygate.ChangeToken || c.ID != tok.ID {
			t.Errorf("notified %+v", c)
		}
	default:
		t.Error("the delete was not passed to Notify")
	}
	b.get("/orgs/acme/tokens/"+tok.ID+"/delete").expect(t, http.StatusNotFound)
	b.post("/orgs/acme/tokens/"+tok.ID+"/delete", url.Values{"csrf_token": {field(t, csrfField, confirm.Body)}}).expect(t, http.StatusNotFound)
}

func TestTokenListShowsState(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.login(f.owner)
	b.createToken("acme", url.Values{"api": {"events"}, "name": {"Weekly"}, "expires_in": {"7d"}, "environment": {"test"}}).expect(t, http.StatusCreated)
	b.createToken("acme", url.Values{"api": {"events"}, "name": {"Forever"}, "expires_in": {"never"}}).expect(t, http.StatusCreated)
	var weekly *keygate.Token
	for _, tk := range f.activeTokens(f.acme) {
		if tk.Name == "Weekly" {
			weekly = tk
		}
	}
	used := f.now.Truncate(time.Minute)
	if err := f.store.TouchTokens(context.Background(), map[string]time.Time{weekly.ID: used}); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(8 * 24 * time.Hour)
	list := b.get("/orgs/acme/tokens").expect(t, http.StatusOK,
		`<tr class="is-expired">`, `<span class="badge badge-danger">Expired</span>`,
		`<span class="badge">test</span>`, `<span class="badge badge-warning">Never</span>`,
		`datetime="`+used.Format(time.RFC3339)+`"`, "csk_test_…", "<th scope=\"col\">API</th>")
	if strings.Count(list.Body, `<span class="muted">Never</span>`) != 1 {
		t.Errorf("want exactly one token never used:\n%s", list.Body)
	}
}

// A member of one organization can neither see nor change another's tokens
// through the pages; the other organization looks like it does not exist.
func TestPagesKeepOrganizationsApart(t *testing.T) {
	f := newFixture(t)
	theirs := f.browser()
	theirs.login(f.globexOwner)
	theirs.createToken("globex", url.Values{"api": {"menus"}, "name": {"Globex prod"}}).expect(t, http.StatusCreated)
	globexToken := f.activeTokens(f.globex)[0]

	b := f.browser()
	csrf := b.login(f.member)
	home := b.get("/orgs/acme/tokens")
	home.lacks(t, "Globex")
	for _, path := range []string{"/orgs/globex", "/orgs/globex/tokens", "/orgs/globex/tokens/new", "/orgs/globex/tokens/" + globexToken.ID,
		"/orgs/globex/tokens/" + globexToken.ID + "/delete", "/orgs/globex/usage", "/orgs/globex/members", "/orgs/globex/settings"} {
		b.get(path).expect(t, http.StatusNotFound, `Organization &#34;globex&#34; not found.`).lacks(t, "Globex prod")
	}
	form := b.get("/orgs/acme/tokens/new")
	b.post("/orgs/globex/tokens", url.Values{"csrf_token": {csrf}, "form_id": {field(t, formIDField, form.Body)}, "api": {"menus"}, "name": {"sneaky"}}).
		expect(t, http.StatusNotFound)
	b.post("/orgs/globex/tokens/"+globexToken.ID+"/delete", url.Values{"csrf_token": {csrf}}).expect(t, http.StatusNotFound)
	// Through their own organization's URL, another's token does not exist.
	b.get("/orgs/acme/tokens/"+globexToken.ID).expect(t, http.StatusNotFound)
	b.post("/orgs/acme/tokens/"+globexToken.ID+"/delete", url.Values{"csrf_token": {csrf}}).expect(t, http.StatusNotFound)
	b.get("/orgs/acme/usage?period=24h").lacks(t, "Globex prod")

	if got := f.activeTokens(f.globex); len(got) != 1 || got[0].ID != globexToken.ID {
		t.Fatalf("globex tokens changed: %+v", got)
	}
	if got := f.activeTokens(f.acme); len(got) != 0 {
		t.Fatalf("acme got tokens: %+v", got)
	}
}

func TestFormsNeedTheSessionCSRFToken(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.login(f.owner)
	other := f.browser()
	otherCSRF := other.login(f.owner) // the same user's other session
	form := b.get("/orgs/acme/tokens/new")
	for _, csrf := range []string{"", otherCSRF, "forged"} {
		values := url.Values{"form_id": {field(t, formIDField, form.Body)}, "api": {"menus"}, "name": {"x"}}
		if csrf != "" {
			values.Set("csrf_token", csrf)
		}
		b.post("/orgs/acme/tokens", values).expect(t, http.StatusForbidden, "This form has expired or did not come from keygate.").lacks(t, `id="new-token"`)
		b.post("/orgs/acme/invitations", url.Values{"csrf_token": {csrf}, "email": {"x@acme.test"}, "role": {"owner"}}).expect(t, http.StatusForbidden).lacks(t, "invitation-link")
	}
	if n := len(f.activeTokens(f.acme)); n != 0 {
		t.Fatalf("%d tokens created without the CSRF token", n)
	}
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.login(f.owner)
	p := b.get("/orgs/acme/tokens")
	for header, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-store",
		"Content-Type":            "text/html; charset=utf-8",
	} {
		if got := p.Header.Get(header); got != want {
			t.Errorf("%s: %q, want %q", header, got, want)
		}
	}
	css := b.get("/static/style.css").expect(t, http.StatusOK, ".show-once")
	if ct := css.Header.Get("Content-Type"); ct != "text/css; charset=utf-8" {
		t.Errorf("style.css Content-Type %q", ct)
	}
	b.get("/static/keygate.js").expect(t, http.StatusOK, "navigator.clipboard", "replaceState")
	b.get("/static/").expect(t, http.StatusNotFound)
	b.get("/nowhere").expect(t, http.StatusNotFound, "There is no page at /nowhere.")
}

// Every scope box starts ticked: a token made with name and expiry only
// carries all of the API's scopes. Unticking every box is refused with a
// clear error rather than making a token no route accepts.
func TestCreateTokenStartsWithEveryScope(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.login(f.member)
	form := b.get("/orgs/acme/tokens/new?api=menus").expect(t, http.StatusOK,
		`name="scopes_shown" value="1"`, `value="products:read" checked`, `value="analytics:read" checked`, "Untick scopes to narrow this token.")

	// What the browser sends when nothing but name and expiry is touched.
	values := url.Values{
		"csrf_token": {field(t, csrfField, form.Body)}, "form_id": {field(t, formIDField, form.Body)},
		"api": {"menus"}, "name": {"Everything"}, "expires_in": {"30d"}, "environment": {"live"},
		"scopes_shown": {"1"}, "scopes": {"products:read", "analytics:read"},
	}
	b.post("/orgs/acme/tokens", values).expect(t, http.StatusCreated,
		`<span class="scope">products:read</span> <span class="scope">analytics:read</span>`)
	tokens := f.activeTokens(f.acme)
	if len(tokens) != 1 || strings.Join(tokens[0].Scopes, ",") != "products:read,analytics:read" {
		t.Fatalf("stored %+v", tokens)
	}

	// Every box unticked: refused, the form kept with nothing ticked.
	b.createToken("acme", url.Values{"api": {"menus"}, "name": {"Nothing"}, "expires_in": {"30d"}, "scopes_shown": {"1"}}).
		expect(t, http.StatusBadRequest, "Choose at least one scope", "Leave scopes out to give the token all of them (products:read, analytics:read).", `value="Nothing"`).
		lacks(t, `value="products:read" checked`)
	// A script posting without the form's scope boxes gets every scope too.
	b.createToken("acme", url.Values{"api": {"events"}, "name": {"Scripted"}}).expect(t, http.StatusCreated)
	for _, tok := range f.activeTokens(f.acme) {
		if tok.Name == "Scripted" && strings.Join(tok.Scopes, ",") != "attendees:read,attendees:write" {
			t.Errorf("scripted token scopes %q", tok.Scopes)
		}
	}
	if n := len(f.activeTokens(f.acme)); n != 2 {
		t.Errorf("%d tokens, want 2", n)
	}
}

// Last used reads the gateway's not yet written batch: a token called a
// few seconds ago is not "Never" on the list or its own page.
func TestLastUsedIncludesTheUnflushedBatch(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.login(f.member)
	b.createToken("acme", url.Values{"api": {"menus"}, "name": {"Busy"}}).expect(t, http.StatusCreated)
	tok := f.activeTokens(f.acme)[0]
	lastUsedCell := regexp.MustCompile(`(?s)Busy</a>.*?</tr>`)
	if row := lastUsedCell.FindString(b.get("/orgs/acme/tokens").Body); !strings.Contains(row, `<span class="muted">Never</span>`) {
		t.Fatalf("unused token row:\n%s", row)
	}
	f.usage.Record(f.acme.ID, tok.ID, http.StatusOK, f.now)
	used := f.now.UTC().Truncate(time.Minute)
	row := lastUsedCell.FindString(b.get("/orgs/acme/tokens").Body)
	if strings.Contains(row, `<span class="muted">Never</span></td>`) || !strings.Contains(row, `datetime="`+used.Format(time.RFC3339)) {
		t.Errorf("row after a call, before the flush:\n%s", row)
	}
	b.get("/orgs/acme/tokens/"+tok.ID).expect(t, http.StatusOK, "<dt>Last used</dt><dd>").lacks(t, "<dt>Last used</dt><dd>Never</dd>")
	if stored, _ := f.store.FindTokenByID(context.Background(), tok.ID); stored.LastUsedAt != nil {
		t.Fatal("the batch was written already; the test proves nothing")
	}
}
