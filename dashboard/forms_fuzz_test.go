package dashboard_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// formRoutes are the dashboard's forms a logged-in owner of acme (and
// site administrator) may post; {id} is filled from the input.
var formRoutes = []string{
	"/orgs", "/orgs/acme/tokens", "/orgs/acme/tokens/{id}/delete", "/orgs/acme/tokens/{id}/rotate",
	"/orgs/acme/connected-apps/{id}/revoke", "/orgs/acme/webhooks", "/orgs/acme/webhooks/{id}/test",
	"/orgs/acme/webhooks/{id}/disable", "/orgs/acme/webhooks/{id}/delete",
	"/orgs/acme/webhooks/{id}/deliveries/{id}/redeliver", "/orgs/acme/invitations",
	"/orgs/acme/invitations/{id}/revoke", "/orgs/acme/members/{id}/role", "/orgs/acme/email",
	"/orgs/acme/settings", "/orgs/globex/settings",
}

// FuzzDashboardForms posts arbitrary form bodies, with the session's
// valid form token ($FORMID in a body stands for a fresh form id), to every form of the dashboard as an owner who is a
// site administrator too, so each handler's own reading of its fields
// runs. Whatever the body: never a 5xx (the database works), and nothing
// from it reaches a page as markup.
func FuzzDashboardForms(f *testing.F) {
	for _, s := range []struct {
		route uint8
		id    string
		form  string
	}{
		{0, "", "slug=new-org&name=New&plan=free"},
		{0, "", "slug=%3Ckg-x%3E&name=%3Ckg-x%3E"},
		{1, "", "api=menus&name=ci&environment=live&expires_in=90d&scopes=products:read&form_id=$FORMID"},
		{1, "", "api=events&name=%3Ckg-x%3E&expires_in=never&scopes=attendees:read&scopes_shown=1&form_id=x"},
		{1, "", "api=nope&expires_in=-1&environment=%00"},
		{2, "tok_x", ""},
		{3, "tok_%3Ckg-x%3E", "grace=99999h&form_id=y"},
		{5, "", "url=http%3A%2F%2F127.0.0.1%3A1%2Fhook&events=token.created&form_id=$FORMID"},
		{5, "", "url=javascript:alert(1)&events=%3Ckg-x%3E"},
		{9, "x", ""},
		{10, "", "email=%3Ckg-x%3E%40example.com&role=king"},
		{12, "usr_x", "role=owner"},
		{13, "", "token_expiring=on&nope=1"},
		{14, "", "name=Acme&plan=pro&states=CA,%3Ckg-x%3E&max_active_tokens=99999999999999999999"},
		{14, "", "max_active_tokens=-1&brands=" + strings.Repeat("b,", 500)},
		{15, "", "name=Taken"},
	} {
		f.Add(s.route, s.id, s.form)
	}
	fx := newFixture(f)
	fx.owner.IsAdmin = true
	if err := fx.store.UpdateUser(f.Context(), fx.owner); err != nil {
		f.Fatal(err)
	}
	b := fx.browser()
	csrf := b.login(fx.owner)

	f.Fuzz(func(t *testing.T, route uint8, id, form string) {
		fx.t = t
		path := strings.ReplaceAll(formRoutes[int(route)%len(formRoutes)], "{id}", url.PathEscape(id))
		if id == "" && strings.Contains(formRoutes[int(route)%len(formRoutes)], "{id}") {
			t.Skip()
		}
		if strings.Contains(form, "$FORMID") {
			// A fresh id, as the new-token page hands each form.
			form = strings.ReplaceAll(form, "$FORMID", field(t, formIDField, b.get("/orgs/acme/tokens/new?api=menus").Body))
		}
		values, err := url.ParseQuery(form)
		if err != nil {
			t.Skip() // a browser sends what it encoded itself
		}
		values.Set("csrf_token", csrf)
		p := b.noFollow(http.MethodPost, path, values)
		if p.StatusCode >= 500 {
			t.Fatalf("POST %s %q: %d\n%s", path, form, p.StatusCode, p.Body)
		}
		if strings.Contains(p.Body, "<kg-") {
			t.Fatalf("POST %s %q: markup from the form on the page:\n%s", path, form, p.Body)
		}
		if loc := p.Header.Get("Location"); loc != "" && !strings.HasPrefix(loc, "/") {
			t.Fatalf("POST %s %q: redirected off the dashboard to %q", path, form, loc)
		}
	})
}
