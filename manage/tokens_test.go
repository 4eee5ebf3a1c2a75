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
