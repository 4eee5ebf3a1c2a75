package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/webhook"
)

var webhookSecretField = regexp.MustCompile(`id="new-secret" class="secret" value="([^"]+)"`)

// receiver is a webhook endpoint on loopback that verifies every request
// with webhook.Verify and answers the statuses it is given in order (the
// last one repeats; 200 when none).
type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	secret   string
	statuses []int
	count    int
	got      []webhook.Message
	bodies   []string
	bad      []error
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.count++
		if err := webhook.Verify(r.secret, req.Header, body); err != nil {
			r.bad = append(r.bad, err)
		}
		var msg webhook.Message
		if err := json.Unmarshal(body, &msg); err != nil {
			r.bad = append(r.bad, err)
		}
		r.got = append(r.got, msg)
		r.bodies = append(r.bodies, string(body))
		status := http.StatusOK
		if n := len(r.statuses); n > 0 {
			status = r.statuses[min(r.count, n)-1]
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// take returns the event types that arrived since the last call and their
// bodies, failing the test for any request that does not verify.
func (r *receiver) take(t *testing.T) ([]string, []string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		t.Fatalf("deliveries that do not verify: %v", r.bad)
	}
	var types []string
	for _, m := range r.got {
		types = append(types, m.Type)
	}
	bodies := r.bodies
	r.got, r.bodies = nil, nil
	return types, bodies
}

func (f *fixture) deliver() {
	f.t.Helper()
	if _, err := f.hooks.DeliverDue(context.Background()); err != nil {
		f.t.Fatal(err)
	}
}

// addWebhook fills in and sends the add-endpoint form.
func (b *browser) addWebhook(org string, form url.Values) page {
	b.f.t.Helper()
	newForm := b.get("/orgs/"+org+"/webhooks/new").expect(b.f.t, http.StatusOK)
	form.Set("csrf_token", field(b.f.t, csrfField, newForm.Body))
	form.Set("form_id", field(b.f.t, formIDField, newForm.Body))
	return b.post("/orgs/"+org+"/webhooks", form)
}

func (f *fixture) webhooks(org *keygate.Organization) []*keygate.Webhook {
	f.t.Helper()
	hooks, err := f.store.ListWebhooks(context.Background(), org.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	return hooks
}

func TestWebhookPages(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t)
	owner := f.browser()
	csrf := owner.login(f.owner)

	owner.get("/orgs/acme/webhooks").expect(t, http.StatusOK, "No endpoints yet",
		`<a href="/orgs/acme/webhooks" aria-current="page">Webhooks</a>`)
	owner.get("/orgs/acme/webhooks/new").expect(t, http.StatusOK, `<label for="url">Endpoint URL</label>`,
		`value="token.created" checked`, `value="token.deleted" checked`, `value="token.expiring" checked`, `value="token.expired" checked`)

	// Adding shows the signing secret once, in the answer to the POST.
	endpoint := r.srv.URL + "/hooks/keygate?key=receiver-own-secret"
	created := owner.addWebhook("acme", url.Values{"url": {endpoint}, "events": {"token.created", "token.deleted"}}).
		expect(t, http.StatusCreated, "Copy the signing secret now", "This is the only time the signing secret is shown.", `data-copy="new-secret"`)
	if cc, rp := created.Header.Get("Cache-Control"), created.Header.Get("Referrer-Policy"); cc != "no-store" || rp != "no-referrer" {
		t.Errorf("show-once response Cache-Control %q, Referrer-Policy %q", cc, rp)
	}
	// Pages hold the secret HTML-escaped (base64 has "+" and "/").
	shown := field(t, webhookSecretField, created.Body)
	secret := html.UnescapeString(shown)
	hooks := f.webhooks(f.acme)
	if len(hooks) != 1 || hooks[0].Secret != secret || hooks[0].URL != endpoint || strings.Join(hooks[0].Events, ",") != "token.created,token.deleted" {
		t.Fatalf("stored %+v, shown secret %q", hooks, secret)
	}
	if n := strings.Count(created.Body, shown); n != 1 {
		t.Errorf("the secret appears %d times in the show-once page", n)
	}
	hook := hooks[0]
	r.mu.Lock()
	r.secret = secret
	r.mu.Unlock()
	label := strings.TrimPrefix(r.srv.URL, "http://") + "/hooks/keygate"

	// Posting the same form again adds nothing and shows no secret.
	replay := owner.get("/orgs/acme/webhooks/new")
	values := url.Values{"csrf_token": {field(t, csrfField, replay.Body)}, "form_id": {field(t, formIDField, replay.Body)},
		"url": {newReceiver(t).srv.URL + "/second"}, "events": {"token.created"}}
	owner.post("/orgs/acme/webhooks", values).expect(t, http.StatusCreated)
	owner.post("/orgs/acme/webhooks", values).expect(t, http.StatusConflict, "This form was already submitted").lacks(t, `id="new-secret"`)
	if n := len(f.webhooks(f.acme)); n != 2 {
		t.Fatalf("%d endpoints after a replayed form, want 2", n)
	}

	// The list names the endpoint by host and path, never its query.
	owner.get("/orgs/acme/webhooks").expect(t, http.StatusOK, label, "token.created", "Enabled").lacks(t, shown, secret, "receiver-own-secret")
	owner.get("/orgs/acme/webhooks/"+hook.ID).expect(t, http.StatusOK, "Nothing sent yet", "Send test event").lacks(t, shown, secret)

	// A member's token changes reach the endpoint, signed, without the
	// token's secret.
	member := f.browser()
	member.login(f.member)
	tokenPage := member.createToken("acme", url.Values{"api": {"menus"}, "name": {"Production server"}}).expect(t, http.StatusCreated)
	tokenSecret := field(t, secretField, tokenPage.Body)
	tok := f.activeTokens(f.acme)[0]
	member.post("/orgs/acme/tokens/"+tok.ID+"/delete", url.Values{"csrf_token": {field(t, csrfField, tokenPage.Body)}}).expect(t, http.StatusOK)
	f.deliver()
	types, bodies := r.take(t)
	if strings.Join(types, ",") != "token.created,token.deleted" && strings.Join(types, ",") != "token.deleted,token.created" {
		t.Fatalf("received %v, want token.created and token.deleted", types)
	}
	for _, body := range bodies {
		if !strings.Contains(body, tok.ID) || !strings.Contains(body, `"hint":"`+tok.Hint+`"`) ||
			strings.Contains(body, tokenSecret) || strings.Contains(body, tokenSecret[len("cm_live_"):]) {
			t.Fatalf("token event body lacks the id and hint, or has the secret:\n%s", body)
		}
	}

	// The log shows both, delivered at the first attempt.
	log := owner.get("/orgs/acme/webhooks/"+hook.ID).expect(t, http.StatusOK,
		"<code>token.created</code>", "<code>token.deleted</code>", `<span class="badge badge-success">Delivered</span>`, "1 of 1", "<code>200</code>", "Redeliver")
	log.lacks(t, shown, secret)

	// A test event that the receiver refuses fails (one attempt here), is
	// logged with its status, and is sent again on request.
	r.mu.Lock()
	r.statuses, r.count = []int{500, 200}, 0
	r.mu.Unlock()
	owner.post("/orgs/acme/webhooks/"+hook.ID+"/test", url.Values{"csrf_token": {csrf}}).
		expect(t, http.StatusOK, "Test event queued.", "<code>webhook.test</code>", `<span class="badge">Pending</span>`, "0 of 1")
	f.deliver()
	if types, _ := r.take(t); strings.Join(types, ",") != "webhook.test" {
		t.Fatalf("received %v, want webhook.test", types)
	}
	deliveries, err := f.store.ListWebhookDeliveries(context.Background(), keygate.WebhookDeliveryFilter{WebhookID: hook.ID})
	if err != nil || len(deliveries) != 3 || deliveries[0].Event != keygate.EventWebhookTest || deliveries[0].State != keygate.DeliveryFailed {
		t.Fatalf("deliveries %+v %v", deliveries, err)
	}
	test := deliveries[0]
	owner.get("/orgs/acme/webhooks/"+hook.ID).expect(t, http.StatusOK, `<span class="badge badge-danger">Failed</span>`, "<code>500</code>")
	owner.get("/orgs/acme/webhooks/"+hook.ID+"/deliveries/"+test.ID).expect(t, http.StatusOK,
		"<code>"+test.ID+"</code>", "&#34;type&#34;: &#34;webhook.test&#34;", "HTTP 500", "Redeliver")
	owner.post("/orgs/acme/webhooks/"+hook.ID+"/deliveries/"+test.ID+"/redeliver", url.Values{"csrf_token": {csrf}}).
		expect(t, http.StatusOK, "Delivery queued again, with the same webhook-id.")
	f.deliver()
	if types, _ := r.take(t); strings.Join(types, ",") != "webhook.test" {
		t.Fatalf("redelivery: received %v", types)
	}
	owner.get("/orgs/acme/webhooks/"+hook.ID+"/deliveries/"+test.ID).expect(t, http.StatusOK,
		`<span class="badge badge-success">Delivered</span>`, "2 of 1", "HTTP 500")

	// Disabled, it receives nothing: events meanwhile are not queued for
	// it. Enabled again, it receives new events.
	owner.post("/orgs/acme/webhooks/"+hook.ID+"/disable", url.Values{"csrf_token": {csrf}}).
		expect(t, http.StatusOK, "Endpoint disabled.", "This endpoint is disabled.", ">Enable</button>")
	member.createToken("acme", url.Values{"api": {"menus"}, "name": {"While disabled"}}).expect(t, http.StatusCreated)
	f.deliver()
	if types, _ := r.take(t); len(types) != 0 {
		t.Fatalf("a disabled endpoint received %v", types)
	}
	owner.post("/orgs/acme/webhooks/"+hook.ID+"/enable", url.Values{"csrf_token": {csrf}}).expect(t, http.StatusOK, "Endpoint enabled.")
	f.deliver()
	if types, _ := r.take(t); len(types) != 0 {
		t.Fatalf("after enabling: received %v from while it was disabled", types)
	}
	member.createToken("acme", url.Values{"api": {"events"}, "name": {"After enabling"}}).expect(t, http.StatusCreated)
	f.deliver()
	if types, _ := r.take(t); strings.Join(types, ",") != "token.created" {
		t.Fatalf("after enabling: received %v", types)
	}

	// Delete asks first; only the confirmation's POST deletes.
	owner.get("/orgs/acme/webhooks/"+hook.ID+"/delete").expect(t, http.StatusOK, "Delete endpoint <code>"+label+"</code>?",
		`<button type="submit" class="button button-danger">Delete endpoint</button>`)
	owner.post("/orgs/acme/webhooks/"+hook.ID+"/delete", url.Values{}).expect(t, http.StatusForbidden)
	if n := len(f.webhooks(f.acme)); n != 2 {
		t.Fatal("deleted without the CSRF token")
	}
	owner.post("/orgs/acme/webhooks/"+hook.ID+"/delete", url.Values{"csrf_token": {csrf}}).expect(t, http.StatusOK, "Endpoint deleted.").lacks(t, label)
	if hooks := f.webhooks(f.acme); len(hooks) != 1 || hooks[0].ID == hook.ID {
		t.Fatalf("after delete: %+v", hooks)
	}
	owner.get("/orgs/acme/webhooks/"+hook.ID).expect(t, http.StatusNotFound)

	for i, body := range owner.pages {
		if (strings.Contains(body, shown) || strings.Contains(body, secret)) && !strings.Contains(body, "Copy the signing secret now") {
			t.Errorf("page %d shows the signing secret:\n%s", i, body)
		}
	}
	if logs := f.logs.String(); strings.Contains(logs, secret[len("whsec_"):]) || strings.Contains(logs, "receiver-own-secret") {
		t.Fatalf("a secret is in the logs:\n%s", logs)
	}
}

func TestAddWebhookFormErrors(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.login(f.owner)
	b.addWebhook("acme", url.Values{"url": {"https://hooks.example.com/k"}}).
		expect(t, http.StatusBadRequest, "Choose at least one event.", `value="https://hooks.example.com/k"`).lacks(t, "checked")
	b.addWebhook("acme", url.Values{"url": {"ftp://hooks.example.com/k"}, "events": {"token.expired"}}).
		expect(t, http.StatusBadRequest, "Webhook URL must start with https:// or http://.", `value="token.expired" checked`).
		lacks(t, `value="token.created" checked`)
	b.addWebhook("acme", url.Values{"url": {"https://hooks.example.com/k"}, "events": {"token.renamed"}}).
		expect(t, http.StatusBadRequest, "Unknown webhook event &#34;token.renamed&#34;")
	newForm := b.get("/orgs/acme/webhooks/new")
	b.post("/orgs/acme/webhooks", url.Values{"csrf_token": {field(t, csrfField, newForm.Body)}, "url": {"https://hooks.example.com/k"}, "events": {"token.created"}}).
		expect(t, http.StatusBadRequest, "This form has expired. Open it again to add an endpoint.")
	if n := len(f.webhooks(f.acme)); n != 0 {
		t.Fatalf("%d endpoints added by refused forms", n)
	}
}

// Owners and site administrators manage webhooks; members do not see them,
// and nobody reaches another organization's endpoints.
func TestWebhookPagesAreForOwners(t *testing.T) {
	f := newFixture(t)
	owner := f.browser()
	owner.login(f.owner)
	owner.addWebhook("acme", url.Values{"url": {"https://hooks.example.com/acme"}, "events": {"token.created"}}).expect(t, http.StatusCreated)
	hook := f.webhooks(f.acme)[0]

	member := f.browser()
	mcsrf := member.login(f.member)
	member.get("/orgs/acme/tokens").expect(t, http.StatusOK).lacks(t, "/orgs/acme/webhooks")
	for _, path := range []string{"/orgs/acme/webhooks", "/orgs/acme/webhooks/new", "/orgs/acme/webhooks/" + hook.ID} {
		member.get(path).expect(t, http.StatusForbidden, "Only the organization&#39;s owners can manage its webhooks.").lacks(t, "hooks.example.com")
	}
	member.post("/orgs/acme/webhooks/"+hook.ID+"/delete", url.Values{"csrf_token": {mcsrf}}).expect(t, http.StatusForbidden)

	other := f.browser()
	ocsrf := other.login(f.globexOwner)
	other.get("/orgs/acme/webhooks").expect(t, http.StatusNotFound)
	other.get("/orgs/globex/webhooks/"+hook.ID).expect(t, http.StatusNotFound, "Webhook &#34;"+hook.ID+"&#34; not found.")
	for _, action := range []string{"delete", "test", "disable"} {
		other.post("/orgs/globex/webhooks/"+hook.ID+"/"+action, url.Values{"csrf_token": {ocsrf}}).expect(t, http.StatusNotFound)
	}
	if hooks := f.webhooks(f.acme); len(hooks) != 1 || hooks[0].Disabled {
		t.Fatalf("another organization's owner changed acme's endpoint: %+v", hooks)
	}
	deliveries, _ := f.store.ListWebhookDeliveries(context.Background(), keygate.WebhookDeliveryFilter{WebhookID: hook.ID})
	if len(deliveries) != 0 {
		t.Fatalf("another organization's owner sent a test: %+v", deliveries)
	}

	admin := f.browser()
	admin.login(f.sys)
	admin.get("/orgs/acme/webhooks").expect(t, http.StatusOK, "hooks.example.com/acme")
}

// The dashboard's form refuses an eleventh endpoint with the same clear
// 409 as the API, and keeps what was typed.
func TestWebhookEndpointCapOnTheForm(t *testing.T) {
	f := newFixture(t)
	owner := f.browser()
	owner.login(f.owner)
	for i := range 10 {
		owner.addWebhook("acme", url.Values{"url": {fmt.Sprintf("https://hooks.example.com/%d", i)}, "events": {"token.created"}}).expect(t, http.StatusCreated)
	}
	owner.addWebhook("acme", url.Values{"url": {"https://hooks.example.com/eleventh"}, "events": {"token.created"}}).
		expect(t, http.StatusConflict, "This organization already has 10 webhook endpoints, the most allowed. Delete one before adding another.", "https://hooks.example.com/eleventh")
	if n := len(f.webhooks(f.acme)); n != 10 {
		t.Fatalf("%d endpoints stored", n)
	}
}
