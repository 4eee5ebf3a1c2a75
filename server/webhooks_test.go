package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/server"
	"github.com/keygate/keygate/webhook"
)

// A running keygate delivers the token events of its management API
// through its own dispatcher: the endpoint hears of a token created and
// deleted over HTTP within seconds, signed.
func TestServerSendsTokenEventsToWebhooks(t *testing.T) {
	admin := freeAddr(t)
	srv := newServer(t, parseConfig(t, `
data_dir: `+t.TempDir()+`
admin: {listen: `+admin+`}
webhooks: {allow_private_addresses: true}
apis:
  - name: events
    preset: canskan
    listen: `+freeAddr(t)+`
    upstream: http://127.0.0.1:9
    routes:
      - {methods: [GET], path: /attendees, access: token}
`), server.Options{Logger: quietLogger()})
	if srv.Webhooks() == nil {
		t.Fatal("no webhook dispatcher before Start: the management API would send no events")
	}
	startServer(t, srv)
	ctx := context.Background()
	if err := manage.CreateOrganization(ctx, srv.Store(), &keygate.Organization{Slug: "acme"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, key, err := manage.CreateAdminKey(ctx, srv.Store(), "test", time.Now())
	if err != nil {
		t.Fatal(err)
	}

	secret := make(chan string, 1)
	got := make(chan webhook.Message, 10)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s := <-secret
		secret <- s
		if err := webhook.Verify(s, r.Header, body); err != nil {
			t.Errorf("delivery does not verify: %v", err)
		}
		var msg webhook.Message
		_ = json.Unmarshal(body, &msg)
		got <- msg
	}))
	defer receiver.Close()

	call := func(method, path, body string, into any) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+admin+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
		if into != nil {
			if err := json.Unmarshal(raw, into); err != nil {
				t.Fatal(err)
			}
		}
	}
	var hook struct{ Secret string }
	call("POST", "/api/v1/orgs/acme/webhooks", `{"url": "`+receiver.URL+`"}`, &hook)
	secret <- hook.Secret

	var tok struct{ ID string }
	call("POST", "/api/v1/orgs/acme/tokens", `{"name": "svc"}`, &tok)
	call("DELETE", "/api/v1/orgs/acme/tokens/"+tok.ID, "", nil)
	// Workers send concurrently: the two may arrive in either order.
	types := map[string]bool{}
	for range 2 {
		select {
		case msg := <-got:
			if !strings.Contains(string(msg.Data), tok.ID) {
				t.Errorf("received %s %s, not about %s", msg.Type, msg.Data, tok.ID)
			}
			types[msg.Type] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("within 10s received only %v", types)
		}
	}
	if !types[keygate.EventTokenCreated] || !types[keygate.EventTokenDeleted] {
		t.Errorf("received %v, want token.created and token.deleted", types)
	}
}
