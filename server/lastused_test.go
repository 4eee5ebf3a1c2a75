package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/keygate/keygate/manage"
)

// A token's last use shows in the management API seconds after the call,
// though the batch that writes it is an hour away: the instance merges
// what it has not flushed yet into what it shows.
func TestLastUsedShowsBeforeTheFlush(t *testing.T) {
	r := start(t, echoUpstream(t).URL, "{backend: memory}\nlast_used: {flush_interval: 1h}")
	tok, secret := r.token(t)
	_, key, err := manage.CreateAdminKey(context.Background(), r.srv.Store(), "test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	lastUsed := func() *time.Time {
		t.Helper()
		status, body, _ := fetch(t, "http://"+r.admin+"/api/v1/orgs/acme/tokens/"+tok.ID, "Authorization", "Bearer "+key)
		if status != http.StatusOK {
			t.Fatalf("get token: %d %s", status, body)
		}
		var got struct {
			LastUsedAt *time.Time `json:"last_used_at"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		return got.LastUsedAt
	}
	if at := lastUsed(); at != nil {
		t.Fatalf("unused token has last_used_at %v", at)
	}
	before := time.Now().UTC().Truncate(time.Minute)
	if status, body, _ := fetch(t, "http://"+r.events+"/attendees", "Authorization", "Bearer "+secret); status != http.StatusOK {
		t.Fatalf("call: %d %s", status, body)
	}
	at := lastUsed()
	if at == nil || at.Before(before) || at.After(time.Now()) {
		t.Fatalf("last_used_at right after a call: %v, want this minute", at)
	}
	stored, err := r.srv.Store().FindTokenByID(context.Background(), tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.LastUsedAt != nil {
		t.Fatalf("the store already has %v: the batch was written, so this test proves nothing", stored.LastUsedAt)
	}
	status, body, _ := fetch(t, "http://"+r.admin+"/api/v1/orgs/acme/tokens", "Authorization", "Bearer "+key)
	var list struct {
		Tokens []struct {
			LastUsedAt *time.Time `json:"last_used_at"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || status != 200 || len(list.Tokens) != 1 || list.Tokens[0].LastUsedAt == nil || !list.Tokens[0].LastUsedAt.Equal(*at) {
		t.Fatalf("list: %d %s", status, body)
	}
}
