package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/api"
	"github.com/keygate/keygate/session"
	"github.com/keygate/keygate/webhook"
)

// receiver is a webhook endpoint on loopback that verifies every request
// with webhook.Verify and answers the statuses it is given in order (the
// last one repeats; 200 when none), with the body "thanks".
type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	secret   string
	statuses []int
	count    int // requests so far
	got      []delivered
}

// delivered is one request as the receiver saw it.
type delivered struct {
	id        string
	msg       webhook.Message
	body      string
	verifyErr error
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		d := delivered{id: req.Header.Get("webhook-id"), body: string(body), verifyErr: webhook.Verify(r.secret, req.Header, body)}
		if err := json.Unmarshal(body, &d.msg); err != nil {
			d.verifyErr = err
		}
		r.got = append(r.got, d)
		r.count++
		status := http.StatusOK
		if n := len(r.statuses); n > 0 {
			status = r.statuses[min(r.count, n)-1]
		}
		w.WriteHeader(status)
		io.WriteString(w, "thanks")
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setSecret(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secret = s
}

// take returns what arrived since the last call, failing the test for any
// request whose signature does not verify.
func (r *receiver) take(t *testing.T) []delivered {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	for _, d := range got {
		if d.verifyErr != nil {
			t.Fatalf("delivery %s does not verify: %v\n%s", d.id, d.verifyErr, d.body)
		}
	}
	return got
}

type webhookBody struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
	Secret    string    `json:"secret"`
}

type deliveryBody struct {
	ID            string          `json:"id"`
	WebhookID     string          `json:"webhook_id"`
	Event         string          `json:"event"`
	State         string          `json:"state"`
	Attempts      int             `json:"attempts"`
	NextAttemptAt *time.Time      `json:"next_attempt_at"`
	LastStatus    int             `json:"last_status"`
	LastError     string          `json:"last_error"`
	LastResponse  string          `json:"last_response"`
	DeliveredAt   *time.Time      `json:"delivered_at"`
	Payload       json.RawMessage `json:"payload"`
	AttemptLog    []struct {
		Attempt   int    `json:"attempt"`
		Status    int    `json:"status"`
		Error     string `json:"error"`
		Response  string `json:"response"`
		Delivered bool   `json:"delivered"`
	} `json:"attempt_log"`
}

// createWebhook adds an endpoint for the receiver through the API and gives
// the receiver its secret.
func (f *fixture) createWebhook(c caller, org string, r *receiver, events string) webhookBody {
	f.t.Helper()
	var hook webhookBody
	f.do(c, "POST", "/api/v1/orgs/"+org+"/webhooks", `{"url": "`+r.srv.URL+`/hooks/keygate?source=kg", "events": `+events+`}`).
		expect(http.StatusCreated, &hook)
	r.setSecret(hook.Secret)
	return hook
}

// deliver sends every due delivery.
func (f *fixture) deliver() {
	f.t.Helper()
	if _, err := f.hooks.DeliverDue(context.Background()); err != nil {
		f.t.Fatal(err)
	}
}

// tokenData is the data of a token event as a receiver decodes it.
type tokenData struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	Hint         string     `json:"hint"`
	API          string     `json:"api"`
	DeletedAt    *time.Time `json:"deleted_at"`
	Organization struct {
		Slug string `json:"slug"`
	} `json:"organization"`
}

func TestTokenEventsReachTheOrganizationsWebhook(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t)
	owner := f.login(f.owner)
	hook := f.createWebhook(owner, "acme", r, `[]`)
	if !strings.HasPrefix(hook.Secret, "whsec_") || !strings.HasPrefix(hook.ID, "whk_") ||
		hook.URL != r.srv.URL+"/hooks/keygate?source=kg" || len(hook.Events) != 0 || hook.Disabled {
		t.Fatalf("created %+v", hook)
	}

	// A member creates a token: the endpoint gets a signed token.created
	// naming the token by id and hint, never by its secret.
	member := f.login(f.member)
	tok := f.createToken(member, "acme", `{"name": "Production server", "api": "menus"}`)
	f.deliver()
	got := r.take(t)
	if len(got) != 1 || got[0].msg.Type != keygate.EventTokenCreated {
		t.Fatalf("received %+v, want one token.created", got)
	}
	var data tokenData
	if err := json.Unmarshal(got[0].msg.Data, &data); err != nil {
		t.Fatal(err)
	}
	if data.ID != tok.ID || data.Hint != tok.Hint || data.Name != "Production server" || data.API != "menus" ||
		data.Organization.Slug != "acme" || data.DeletedAt != nil {
		t.Errorf("token.created data %+v", data)
	}
	if strings.Contains(got[0].body, tok.Token) || strings.Contains(got[0].body, tok.Token[len("cm_live_"):]) {
		t.Fatalf("the token's secret is in the webhook body:\n%s", got[0].body)
	}

	// Deleting it sends token.deleted with the time of deletion.
	f.do(member, "DELETE", "/api/v1/orgs/acme/tokens/"+tok.ID, "").expect(http.StatusNoContent, nil)
	f.deliver()
	got = r.take(t)
	if len(got) != 1 || got[0].msg.Type != keygate.EventTokenDeleted {
		t.Fatalf("received %+v, want one token.deleted", got)
	}
	data = tokenData{}
	if err := json.Unmarshal(got[0].msg.Data, &data); err != nil {
		t.Fatal(err)
	}
	if data.ID != tok.ID || data.DeletedAt == nil || !data.DeletedAt.Equal(f.now) {
		t.Errorf("token.deleted data %+v, deleted_at want %v", data, f.now)
	}

	// Another organization's tokens are not this endpoint's business.
	f.createToken(f.login(f.globexOwner), "globex", `{"name": "theirs", "api": "menus"}`)
	f.deliver()
	if got := r.take(t); len(got) != 0 {
		t.Errorf("acme's endpoint received globex's event: %+v", got)
	}

	// The delivery log shows both, delivered on the first attempt.
	var log struct{ Deliveries []deliveryBody }
	f.do(owner, "GET", "/api/v1/orgs/acme/webhooks/"+hook.ID+"/deliveries", "").expect(http.StatusOK, &log)
	if len(log.Deliveries) != 2 || log.Deliveries[0].Event != keygate.EventTokenDeleted || log.Deliveries[1].Event != keygate.EventTokenCreated {
		t.Fatalf("log %+v", log.Deliveries)
	}
	for _, d := range log.Deliveries {
		if d.State != keygate.DeliveryDelivered || d.Attempts != 1 || d.LastStatus != 200 || d.LastError != "" ||
			d.NextAttemptAt != nil || d.DeliveredAt == nil || len(d.AttemptLog) != 1 || !d.AttemptLog[0].Delivered ||
			d.AttemptLog[0].Response != "thanks" || d.WebhookID != hook.ID {
			t.Errorf("log entry %+v", d)
		}
	}
	var payload webhook.Message
	if err := json.Unmarshal(log.Deliveries[0].Payload, &payload); err != nil || payload.Type != keygate.EventTokenDeleted ||
		!strings.Contains(string(payload.Data), tok.ID) {
		t.Errorf("payload %s: %v", log.Deliveries[0].Payload, err)
	}
}

func TestWebhookSecretIsShownOnce(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t)
	hook := f.createWebhook(f.key(), "acme", r, `["token.created"]`)
	if len(hook.Secret) != len("whsec_")+44 {
		t.Fatalf("secret %q", hook.Secret)
	}
	list := f.do(f.key(), "GET", "/api/v1/orgs/acme/webhooks", "").expect(http.StatusOK, nil)
	one := f.do(f.key(), "GET", "/api/v1/orgs/acme/webhooks/"+hook.ID, "").expect(http.StatusOK, nil)
	patched := f.do(f.key(), "PATCH", "/api/v1/orgs/acme/webhooks/"+hook.ID, `{"disabled": false}`).expect(http.StatusOK, nil)
	key := hook.Secret[len("whsec_"):]
	for _, body := range []string{list.Body.String(), one.Body.String(), patched.Body.String(), f.logs.String()} {
		if strings.Contains(body, key) {
			t.Fatalf("the signing secret appears after creation in:\n%s", body)
		}
	}
	if strings.Contains(one.Body.String(), `"secret"`) {
		t.Errorf("GET has a secret field:\n%s", one.Body)
	}
	// Logs name the endpoint by host only: the rest of a URL may be the
	// receiver's own secret.
	if !strings.Contains(f.logs.String(), "webhook created") || strings.Contains(f.logs.String(), "source=kg") {
		t.Errorf("creation logged without its id, or with the whole URL:\n%s", f.logs)
	}
}

func TestWebhookUpdateAndDelete(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t)
	owner := f.login(f.owner)
	hook := f.createWebhook(owner, "acme", r, `["token.deleted"]`)

	// Subscribed to token.deleted only: a create sends nothing.
	tok := f.createToken(owner, "acme", `{"name": "one", "api": "menus"}`)
	f.deliver()
	if got := r.take(t); len(got) != 0 {
		t.Fatalf("received %+v for an event the endpoint does not subscribe to", got)
	}

	// Disabled: nothing is queued for it. Enabled again: new events go out.
	var updated webhookBody
	f.do(owner, "PATCH", "/api/v1/orgs/acme/webhooks/"+hook.ID, `{"disabled": true, "events": ["token.created", "token.deleted", "token.created"]}`).
		expect(http.StatusOK, &updated)
	if !updated.Disabled || strings.Join(updated.Events, ",") != "token.created,token.deleted" || updated.URL != hook.URL || updated.Secret != "" {
		t.Fatalf("updated %+v", updated)
	}
	f.createToken(owner, "acme", `{"name": "two", "api": "menus"}`)
	f.deliver()
	if got := r.take(t); len(got) != 0 {
		t.Fatalf("a disabled endpoint received %+v", got)
	}
	f.do(owner, "PATCH", "/api/v1/orgs/acme/webhooks/"+hook.ID, `{"disabled": false}`).expect(http.StatusOK, &updated)
	f.do(owner, "DELETE", "/api/v1/orgs/acme/tokens/"+tok.ID, "").expect(http.StatusNoContent, nil)
	f.deliver()
	if got := r.take(t); len(got) != 1 || got[0].msg.Type != keygate.EventTokenDeleted {
		t.Fatalf("received %+v, want only the token.deleted that happened after enabling", got)
	}

	for _, tc := range []struct{ body, message string }{
		{`{"url": "ftp://example.com/x"}`, "Webhook URL must start with https:// or http://."},
		{`{"url": "https://user:pw@example.com/x"}`, "Webhook URL must not contain a user name or password."},
		{`{"events": ["token.renamed"]}`, `Unknown webhook event "token.renamed": choose from token.created, token.rotated, token.deleted, token.expiring, token.expired, audit.*.`},
		{`{"secret": "whsec_x"}`, `Unknown field "secret".`},
	} {
		f.do(owner, "PATCH", "/api/v1/orgs/acme/webhooks/"+hook.ID, tc.body).expectError(400, "invalid", tc.message)
	}

	f.do(owner, "DELETE", "/api/v1/orgs/acme/webhooks/"+hook.ID, "").expect(http.StatusNoContent, nil)
	f.do(owner, "GET", "/api/v1/orgs/acme/webhooks/"+hook.ID, "").expectError(404, "not_found", fmt.Sprintf("Webhook %q not found.", hook.ID))
	f.do(owner, "DELETE", "/api/v1/orgs/acme/webhooks/"+hook.ID, "").expectError(404, "not_found", fmt.Sprintf("Webhook %q not found.", hook.ID))
	f.createToken(owner, "acme", `{"name": "three", "api": "events"}`)
	f.deliver()
	if got := r.take(t); len(got) != 0 {
		t.Fatalf("a deleted endpoint received %+v", got)
	}
	var list struct{ Webhooks []webhookBody }
	f.do(owner, "GET", "/api/v1/orgs/acme/webhooks", "").expect(http.StatusOK, &list)
	if len(list.Webhooks) != 0 {
		t.Errorf("list after delete %+v", list.Webhooks)
	}
}

func TestCreateWebhookRefusesBadInput(t *testing.T) {
	f := newFixture(t)
	owner := f.login(f.owner)
	for _, tc := range []struct{ body, message string }{
		{`{}`, "Webhook URL is required."},
		{`{"url": "example.com/hook"}`, "Webhook URL must start with https:// or http://."},
		{`{"url": "https://example.com/hook#x"}`, "Webhook URL must not contain a fragment (#)."},
		{`{"url": "https://example.com/hook", "events": ["webhook.test"]}`, `Unknown webhook event "webhook.test": choose from token.created, token.rotated, token.deleted, token.expiring, token.expired, audit.*.`},
		{`{"url": "https://example.com/hook", "events": "token.created"}`, `Field "events" must be an array.`},
		{`{"url": "https://example.com/hook", "secret": "whsec_mine"}`, `Unknown field "secret".`},
	} {
		f.do(owner, "POST", "/api/v1/orgs/acme/webhooks", tc.body).expectError(400, "invalid", tc.message)
	}

	// Unless private addresses are allowed, an endpoint on one is refused
	// when added, before any event could be sent to it.
	strict := api.New(api.Deps{
		Store: f.store, APIs: testAPIs(), Sessions: f.sessions, Logger: slog.New(slog.DiscardHandler),
		Webhooks: webhook.New(f.store, webhook.Options{}),
	})
	for _, u := range []string{"http://127.0.0.1:8080/hook", "http://10.1.2.3/hook", "http://[::1]/hook", "http://169.254.169.254/latest"} {
		rec := httptest.NewRecorder()
		strict.ServeHTTP(rec, newRequest("POST", "/api/v1/orgs/acme/webhooks", `{"url": "`+u+`"}`, f.key()))
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), "Webhook URL must not point to a private or local address.") {
			t.Errorf("%s: %d %s", u, rec.Code, rec.Body)
		}
	}
	var list struct{ Webhooks []webhookBody }
	f.do(owner, "GET", "/api/v1/orgs/acme/webhooks", "").expect(http.StatusOK, &list)
	if len(list.Webhooks) != 0 {
		t.Errorf("refused requests created %+v", list.Webhooks)
	}
}

func TestWebhookTestAndRedelivery(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t, 500, 200) // fails once, then accepts
	owner := f.login(f.owner)
	hook := f.createWebhook(owner, "acme", r, `[]`)

	var queued deliveryBody
	f.do(owner, "POST", "/api/v1/orgs/acme/webhooks/"+hook.ID+"/test", "").expect(http.StatusAccepted, &queued)
	if queued.Event != keygate.EventWebhookTest || queued.State != keygate.DeliveryPending || queued.Attempts != 0 ||
		queued.WebhookID != hook.ID || !strings.HasPrefix(queued.ID, "msg_") || len(queued.AttemptLog) != 0 {
		t.Fatalf("queued %+v", queued)
	}
	f.do(owner, "POST", "/api/v1/orgs/acme/webhooks/"+hook.ID+"/deliveries/"+queued.ID+"/redeliver", "").
		expectError(409, "conflict", "This delivery is still pending: it will be attempted again on its own.")

	// The fixture's dispatcher gives a delivery one attempt: a 500 fails it.
	f.deliver()
	first := r.take(t)
	if len(first) != 1 || first[0].msg.Type != keygate.EventWebhookTest || first[0].id != queued.ID {
		t.Fatalf("received %+v", first)
	}
	var failed deliveryBody
	f.do(owner, "GET", "/api/v1/orgs/acme/webhooks/"+hook.ID+"/deliveries/"+queued.ID, "").expect(http.StatusOK, &failed)
	if failed.State != keygate.DeliveryFailed || failed.Attempts != 1 || failed.LastStatus != 500 || failed.LastError != "HTTP 500" ||
		failed.LastResponse != "thanks" || failed.NextAttemptAt != nil || failed.DeliveredAt != nil || len(failed.AttemptLog) != 1 {
		t.Fatalf("failed delivery %+v", failed)
	}
	var only struct{ Deliveries []deliveryBody }
	f.do(owner, "GET", "/api/v1/orgs/acme/webhooks/"+hook.ID+"/deliveries?state=failed&limit=5", "").expect(http.StatusOK, &only)
	if len(only.Deliveries) != 1 || only.Deliveries[0].ID != queued.ID {
		t.Errorf("failed deliveries %+v", only.Deliveries)
	}
	f.do(owner, "GET", "/api/v1/orgs/acme/webhooks/"+hook.ID+"/deliveries?state=delivered", "").expect(http.StatusOK, &only)
	if len(only.Deliveries) != 0 {
		t.Errorf("delivered deliveries %+v", only.Deliveries)
	}
	f.do(owner, "GET", "/api/v1/orgs/acme/webhooks/"+hook.ID+"/deliveries?state=lost", "").
		expectError(400, "invalid", `Unknown delivery state "lost": choose pending, delivered or failed.`)
	f.do(owner, "GET", "/api/v1/orgs/acme/webhooks/"+hook.ID+"/deliveries?limit=1000", "").
		expectError(400, "invalid", "The limit must be 1 to 100.")

	// Redelivered: the same message, with the same webhook-id, gets another
	// attempt.
	var again deliveryBody
	f.do(owner, "POST", "/api/v1/orgs/acme/webhooks/"+hook.ID+"/deliveries/"+queued.ID+"/redeliver", "").expect(http.StatusAccepted, &again)
	if again.State != keygate.DeliveryPending || again.ID != queued.ID {
		t.Fatalf("redelivered %+v", again)
	}
	f.deliver()
	second := r.take(t)
	if len(second) != 1 || second[0].id != queued.ID || second[0].body != first[0].body {
		t.Fatalf("redelivery %+v, want the same message as %+v", second, first)
	}
	var done deliveryBody
	f.do(owner, "GET", "/api/v1/orgs/acme/webhooks/"+hook.ID+"/deliveries/"+queued.ID, "").expect(http.StatusOK, &done)
	if done.State != keygate.DeliveryDelivered || done.Attempts != 2 || done.LastStatus != 200 || len(done.AttemptLog) != 2 ||
		done.AttemptLog[0].Status != 500 || done.AttemptLog[0].Error != "HTTP 500" || !done.AttemptLog[1].Delivered {
		t.Fatalf("after redelivery %+v", done)
	}
}

// Every webhook route checks that the endpoint and the delivery in the path
// belong to the organization in the path, and that the caller may manage
// its webhooks.
func TestWebhookRoutesStayInTheirOrganization(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t)
	acmeOwner, globexOwner := f.login(f.owner), f.login(f.globexOwner)
	acme := f.createWebhook(acmeOwner, "acme", r, `[]`)
	var acmeTest deliveryBody
	f.do(acmeOwner, "POST", "/api/v1/orgs/acme/webhooks/"+acme.ID+"/test", "").expect(http.StatusAccepted, &acmeTest)
	globex := f.createWebhook(globexOwner, "globex", newReceiver(t), `[]`)
	var globexTest deliveryBody
	f.do(globexOwner, "POST", "/api/v1/orgs/globex/webhooks/"+globex.ID+"/test", "").expect(http.StatusAccepted, &globexTest)
	second := f.createWebhook(acmeOwner, "acme", newReceiver(t), `[]`)

	notFound := fmt.Sprintf("Webhook %q not found.", acme.ID)
	// globex's owner, through globex's own path, cannot reach acme's
	// endpoint or its deliveries.
	for _, rq := range []struct{ method, path, body string }{
		{"GET", "/api/v1/orgs/globex/webhooks/" + acme.ID, ""},
		{"PATCH", "/api/v1/orgs/globex/webhooks/" + acme.ID, `{"disabled": true}`},
		{"DELETE", "/api/v1/orgs/globex/webhooks/" + acme.ID, ""},
		{"POST", "/api/v1/orgs/globex/webhooks/" + acme.ID + "/test", ""},
		{"GET", "/api/v1/orgs/globex/webhooks/" + acme.ID + "/deliveries", ""},
		{"GET", "/api/v1/orgs/globex/webhooks/" + acme.ID + "/deliveries/" + acmeTest.ID, ""},
		{"POST", "/api/v1/orgs/globex/webhooks/" + acme.ID + "/deliveries/" + acmeTest.ID + "/redeliver", ""},
	} {
		f.do(globexOwner, rq.method, rq.path, rq.body).expectError(404, "not_found", notFound)
	}
	// A delivery of another organization's endpoint, or of another
	// endpoint, is not found under this endpoint's path.
	for _, path := range []string{
		"/api/v1/orgs/globex/webhooks/" + globex.ID + "/deliveries/" + acmeTest.ID,
		"/api/v1/orgs/acme/webhooks/" + second.ID + "/deliveries/" + acmeTest.ID,
	} {
		f.do(f.key(), "GET", path, "").expectError(404, "not_found", fmt.Sprintf("Webhook delivery %q not found.", acmeTest.ID))
		f.do(f.key(), "POST", path+"/redeliver", "").expectError(404, "not_found", fmt.Sprintf("Webhook delivery %q not found.", acmeTest.ID))
	}
	// acme's routes: 404 for a non-member, 403 for a member, as for members.
	f.do(globexOwner, "GET", "/api/v1/orgs/acme/webhooks", "").expectError(404, "not_found", `Organization "acme" not found.`)
	member := f.login(f.member)
	for _, rq := range []struct{ method, path, body string }{
		{"GET", "/api/v1/orgs/acme/webhooks", ""},
		{"POST", "/api/v1/orgs/acme/webhooks", `{"url": "https://example.com/x"}`},
		{"GET", "/api/v1/orgs/acme/webhooks/" + acme.ID, ""},
		{"DELETE", "/api/v1/orgs/acme/webhooks/" + acme.ID, ""},
		{"GET", "/api/v1/orgs/acme/webhooks/" + acme.ID + "/deliveries", ""},
	} {
		f.do(member, rq.method, rq.path, rq.body).expectError(403, "forbidden", "Only the organization's owners can manage its webhooks.")
	}
	// A session without its CSRF token changes nothing.
	noCSRF := acmeOwner
	noCSRF.csrf = ""
	f.do(noCSRF, "DELETE", "/api/v1/orgs/acme/webhooks/"+acme.ID, "").expectError(403, "forbidden", "")

	var list struct{ Webhooks []webhookBody }
	f.do(f.login(f.sys), "GET", "/api/v1/orgs/globex/webhooks", "").expect(http.StatusOK, &list)
	if len(list.Webhooks) != 1 || list.Webhooks[0].ID != globex.ID || list.Webhooks[0].Disabled {
		t.Errorf("globex's webhooks %+v", list.Webhooks)
	}
	f.do(acmeOwner, "GET", "/api/v1/orgs/acme/webhooks", "").expect(http.StatusOK, &list)
	if len(list.Webhooks) != 2 || list.Webhooks[0].ID != acme.ID || list.Webhooks[1].ID != second.ID {
		t.Errorf("acme's webhooks %+v", list.Webhooks)
	}
}

// With a store that keeps no webhooks (no dispatcher), tokens still work
// and the webhook routes say why they cannot.
func TestWithoutWebhooks(t *testing.T) {
	f := newFixture(t)
	h := api.New(api.Deps{Store: f.store, APIs: testAPIs(), Sessions: &session.Manager{Sessions: f.store, Users: f.store}, Logger: slog.New(slog.DiscardHandler)})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, newRequest("POST", "/api/v1/orgs/acme/tokens", `{"name": "x", "api": "menus"}`, f.key()))
	if rec.Code != http.StatusCreated {
		t.Fatalf("create token: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, newRequest("GET", "/api/v1/orgs/acme/webhooks", "", f.key()))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "Webhooks are off: this keygate's store does not keep them.") {
		t.Errorf("webhooks without a dispatcher: %d %s", rec.Code, rec.Body)
	}
}

// An organization has at most 10 webhook endpoints by default: each event
// fans out to every endpoint with retries. The 11th is a clear 409, sent
// in parallel or not; deleting one makes room.
func TestWebhookEndpointsAreCappedPerOrganization(t *testing.T) {
	f := newFixture(t)
	const tries = 20
	codes := make(chan int, tries)
	var wg sync.WaitGroup
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := httptest.NewRecorder()
			f.handler.ServeHTTP(rec, newRequest("POST", "/api/v1/orgs/acme/webhooks", fmt.Sprintf(`{"url": "https://hooks.example.com/%d"}`, i), f.key()))
			codes <- rec.Code
		}()
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[http.StatusCreated] != 10 || count[http.StatusConflict] != tries-10 {
		t.Fatalf("%d parallel creates: %v, want 10 created and the rest 409", tries, count)
	}
	f.do(f.key(), "POST", "/api/v1/orgs/acme/webhooks", `{"url": "https://hooks.example.com/more"}`).
		expectError(409, "conflict", "This organization already has 10 webhook endpoints, the most allowed. Delete one before adding another.")
	var list struct{ Webhooks []webhookBody }
	f.do(f.key(), "GET", "/api/v1/orgs/acme/webhooks", "").expect(http.StatusOK, &list)
	if len(list.Webhooks) != 10 {
		t.Fatalf("%d endpoints stored", len(list.Webhooks))
	}
	f.do(f.key(), "DELETE", "/api/v1/orgs/acme/webhooks/"+list.Webhooks[0].ID, "").expect(http.StatusNoContent, nil)
	f.do(f.key(), "POST", "/api/v1/orgs/acme/webhooks", `{"url": "https://hooks.example.com/more"}`).expect(http.StatusCreated, nil)
}
