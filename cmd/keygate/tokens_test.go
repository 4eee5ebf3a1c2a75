package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/sqlite"
	"github.com/keygate/keygate/webhook"
)

// The CLI runs no dispatcher, but tokens it creates and revokes send the
// same webhook events as the dashboard's: stored by the command, delivered
// by whichever keygate process runs one on the same database.
func TestCLITokenCommandsSendWebhookEvents(t *testing.T) {
	dir := t.TempDir()
	config := "data_dir: .\napis:\n  - name: menus\n    preset: cannmenus\n    listen: 127.0.0.1:0\n    upstream: http://127.0.0.1:9\n" +
		"    routes:\n      - path: /v2/products\n        methods: [GET]\n        access: token\n"
	if err := os.WriteFile(filepath.Join(dir, "keygate.yaml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "orgs", "create", "--data-dir", dir, "--slug", "acme"); err != nil {
		t.Fatalf("orgs create: %v\n%s", err, out)
	}

	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	org, err := store.FindOrganizationBySlug(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []webhook.Message
	var bodies []string
	hook, err := keygate.NewWebhook(keygate.WebhookRequest{OrganizationID: org.ID, URL: "http://placeholder.invalid/"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(hook.Secret, r.Header, body); err != nil {
			t.Errorf("delivery does not verify: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var msg webhook.Message
		if err := json.Unmarshal(body, &msg); err != nil {
			t.Errorf("body %s: %v", body, err)
		}
		mu.Lock()
		got = append(got, msg)
		bodies = append(bodies, string(body))
		mu.Unlock()
	}))
	defer receiver.Close()
	hook.URL = receiver.URL + "/hooks"
	if err := store.CreateWebhook(ctx, hook, 0); err != nil {
		t.Fatal(err)
	}

	out, err := runCLI(t, "tokens", "create", "--data-dir", dir, "--org", "acme", "--api", "menus", "--name", "Nightly export")
	if err != nil {
		t.Fatalf("tokens create: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	secret := lines[len(lines)-1]
	tokens, err := store.ListTokens(ctx, keygate.TokenFilter{OrganizationID: org.ID})
	if err != nil || len(tokens) != 1 {
		t.Fatalf("tokens %v %v", tokens, err)
	}
	tok := tokens[0]
	out, err = runCLI(t, "tokens", "rotate", "--data-dir", dir, "--grace", "0", tok.ID)
	if err != nil || !strings.Contains(out, "rotated token "+tok.ID) {
		t.Fatalf("tokens rotate: %v\n%s", err, out)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	newSecret := lines[len(lines)-1]
	rotated, err := store.FindTokenByHash(ctx, keygate.HashToken(newSecret))
	if err != nil || rotated.ID != tok.ID || rotated.AcceptsHash(tok.Hash, time.Now()) {
		t.Fatalf("after tokens rotate --grace 0: %+v, %v; want the same token, old secret refused", rotated, err)
	}
	if _, err := runCLI(t, "tokens", "rotate", "--data-dir", dir, "--grace", "2d", tok.ID); userMessage(err) != `Unknown grace period "2d": choose one of 0, 1h, 24h, 7d.` {
		t.Errorf("rotate with a bad grace: %v", err)
	}
	if out, err := runCLI(t, "tokens", "revoke", "--data-dir", dir, tok.ID); err != nil || !strings.Contains(out, "revoked token "+tok.ID) {
		t.Fatalf("tokens revoke: %v\n%s", err, out)
	}
	// Revoked means gone: a second revoke finds nothing, and sends nothing.
	if _, err := runCLI(t, "tokens", "revoke", "--data-dir", dir, tok.ID); userMessage(err) != `Token "`+tok.ID+`" not found.` {
		t.Errorf("second revoke: %v", err)
	}
	if _, err := runCLI(t, "tokens", "rotate", "--data-dir", dir, tok.ID); userMessage(err) != `Token "`+tok.ID+`" not found.` {
		t.Errorf("rotate after revoke: %v", err)
	}

	d := webhook.New(store, webhook.Options{AllowPrivateAddresses: true, Logger: slog.New(slog.DiscardHandler)})
	if n, err := d.DeliverDue(ctx); err != nil || n != 3 {
		t.Fatalf("delivered %d, %v; want 3 attempts", n, err)
	}
	mu.Lock()
	defer mu.Unlock()
	// Deliveries go out concurrently, so in either order.
	types := map[string]bool{}
	for _, msg := range got {
		types[msg.Type] = true
	}
	if len(got) != 3 || !types[keygate.EventTokenCreated] || !types[keygate.EventTokenRotated] || !types[keygate.EventTokenDeleted] {
		t.Fatalf("received %+v, want token.created, token.rotated and token.deleted", got)
	}
	for i, msg := range got {
		var data webhook.TokenData
		if err := json.Unmarshal(msg.Data, &data); err != nil {
			t.Fatal(err)
		}
		hint := rotated.Hint
		if msg.Type == keygate.EventTokenCreated {
			hint = tok.Hint
		}
		if data.ID != tok.ID || data.Hint != hint || data.Name != "Nightly export" || data.Organization.Slug != "acme" ||
			(msg.Type == keygate.EventTokenDeleted) != (data.DeletedAt != nil) {
			t.Errorf("%s data %+v", msg.Type, data)
		}
		if strings.Contains(bodies[i], secret[len("cm_live_"):]) || strings.Contains(bodies[i], newSecret[len("cm_live_"):]) {
			t.Fatalf("the token's secret is in the %s body:\n%s", msg.Type, bodies[i])
		}
	}
}
