package manage_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/sqlite"
)

// events records token events, or fails them all when err is set.
type events struct {
	got []string
	err error
}

func (e *events) EmitToken(_ context.Context, event string, tok *keygate.Token, org *keygate.Organization) error {
	e.got = append(e.got, event+" "+tok.ID+" "+org.Slug)
	return e.err
}

func TestTokensSendEventsAfterTheChange(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	org := &keygate.Organization{ID: keygate.NewID("org"), Slug: "acme"}
	if err := manage.CreateOrganization(ctx, store, org, time.Now()); err != nil {
		t.Fatal(err)
	}
	api := &keygate.API{Name: "menus", Tokens: keygate.TokenPolicy{BasePrefix: "cm_", MaxActiveTokens: 1}}
	var logs bytes.Buffer
	ev := &events{}
	tokens := manage.Tokens{Store: store, Events: ev, Logger: slog.New(slog.NewTextHandler(&logs, nil))}

	tok, secret, err := tokens.Create(ctx, api, org, keygate.TokenRequest{Name: "one"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// A refused create or delete changes nothing and sends nothing.
	if _, _, err := tokens.Create(ctx, api, org, keygate.TokenRequest{Name: "two"}, time.Now()); keygate.ErrorCode(err) != keygate.ECONFLICT {
		t.Fatalf("over the limit: %v", err)
	}
	if _, err := tokens.Delete(ctx, org, "tok_missing", time.Now()); keygate.ErrorCode(err) != keygate.ENOTFOUND {
		t.Fatalf("unknown token: %v", err)
	}
	if _, err := tokens.Delete(ctx, org, tok.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	want := []string{"token.created " + tok.ID + " acme", "token.deleted " + tok.ID + " acme"}
	if strings.Join(ev.got, "|") != strings.Join(want, "|") {
		t.Errorf("events %q, want %q", ev.got, want)
	}

	// An event that cannot be stored is logged; the token is created all
	// the same, and the log names it by id and hint only.
	ev.err = errors.New("database is locked")
	again, secret2, err := tokens.Create(ctx, api, org, keygate.TokenRequest{Name: "three"}, time.Now())
	if err != nil {
		t.Fatalf("create with a failing event: %v", err)
	}
	if _, err := store.FindTokenByHash(ctx, keygate.HashToken(secret2)); err != nil {
		t.Fatalf("token not stored: %v", err)
	}
	line := logs.String()
	if !strings.Contains(line, "webhook event could not be stored") || !strings.Contains(line, again.ID) ||
		!strings.Contains(line, "database is locked") || strings.Contains(line, secret2) || strings.Contains(line, secret) {
		t.Errorf("log:\n%s", line)
	}

	// Without events (a store that keeps no webhooks) nothing is sent.
	if _, err := (manage.Tokens{Store: store}).Delete(ctx, org, again.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// A token made without choosing scopes carries every scope of its API; an
// explicitly empty list is refused rather than making a useless token.
func TestCreateTokenDefaultsToEveryScope(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	org := &keygate.Organization{ID: keygate.NewID("org"), Slug: "acme"}
	if err := manage.CreateOrganization(ctx, store, org, time.Now()); err != nil {
		t.Fatal(err)
	}
	declared := &keygate.API{Name: "menus", Tokens: keygate.TokenPolicy{BasePrefix: "cm_", Scopes: []string{"products:read", "brands:read"}}}
	// An API without a scope list: its routes' and MCP endpoint's scopes.
	derived := &keygate.API{Name: "events", Tokens: keygate.TokenPolicy{BasePrefix: "ev_"},
		Routes: []keygate.Route{{Path: "/a", Scopes: []string{"a:read"}}, {Path: "/b"}, {Path: "/c", Scopes: []string{"c:write", "a:read"}}},
		MCP:    &keygate.MCPEndpoint{Scopes: []string{"mcp"}}}
	unscoped := &keygate.API{Name: "open", Tokens: keygate.TokenPolicy{BasePrefix: "op_"}, Routes: []keygate.Route{{Path: "/a"}}}

	for _, c := range []struct {
		api    *keygate.API
		scopes []string
		want   string
		err    string
	}{
		{declared, nil, "products:read brands:read", ""},
		{declared, []string{"brands:read"}, "brands:read", ""},
		{declared, []string{}, "", "Choose at least one scope: a token without scopes can call none of this API's routes. Leave scopes out to give the token all of them (products:read, brands:read)."},
		{declared, []string{" ", ""}, "", "Choose at least one scope"},
		{declared, []string{"nope"}, "", `Unknown scope "nope".`},
		{derived, nil, "a:read c:write mcp", ""},
		{unscoped, nil, "", ""},
		{unscoped, []string{}, "", ""},
	} {
		tok, _, err := manage.CreateToken(ctx, store, c.api, org, keygate.TokenRequest{Name: "t", Scopes: c.scopes}, time.Now())
		if c.err != "" {
			if keygate.ErrorCode(err) != keygate.EINVALID || !strings.Contains(keygate.ErrorMessage(err), c.err) {
				t.Errorf("%s %q: error %v, want %q", c.api.Name, c.scopes, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %q: %v", c.api.Name, c.scopes, err)
			continue
		}
		stored, err := store.FindTokenByID(ctx, tok.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(stored.Scopes, " "); got != c.want {
			t.Errorf("%s %q: stored scopes %q, want %q", c.api.Name, c.scopes, got, c.want)
		}
	}
}

// silentEvents is an event queue whose database never answers: each call
// waits for its context to end.
type silentEvents struct{}

func (silentEvents) EmitToken(ctx context.Context, _ string, _ *keygate.Token, _ *keygate.Organization) error {
	<-ctx.Done()
	return ctx.Err()
}

// A token event is stored even if the caller leaves, but a database that
// stops answering once the token change is committed holds the request no
// longer than its deadline: the event is given up and logged.
func TestTokenEventEndsWithTheRequestsDeadline(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	org := &keygate.Organization{ID: keygate.NewID("org"), Slug: "acme"}
	if err := manage.CreateOrganization(ctx, store, org, time.Now()); err != nil {
		t.Fatal(err)
	}
	api := &keygate.API{Name: "menus", Tokens: keygate.TokenPolicy{BasePrefix: "cm_"}}
	var logs bytes.Buffer
	tokens := manage.Tokens{Store: store, Events: silentEvents{}, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	reqCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	type result struct {
		secret string
		err    error
		took   time.Duration
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		_, secret, err := tokens.Create(reqCtx, api, org, keygate.TokenRequest{Name: "one"}, time.Now())
		done <- result{secret, err, time.Since(start)}
	}()
	select {
	case r := <-done:
		t.Logf("event queue silent, request deadline 300ms: create returned after %v", r.took.Round(time.Millisecond))
		if r.err != nil {
			t.Errorf("the token was created, yet create returned %v", r.err)
		}
		if !strings.Contains(logs.String(), "webhook event could not be stored") || strings.Contains(logs.String(), r.secret) {
			t.Errorf("want the lost event logged without the token:\n%s", logs.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("create still waiting on a silent event queue 5s after the request's 300ms deadline")
	}
}
