package keygate_test

import (
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

func TestCleanWebhookURL(t *testing.T) {
	for _, ok := range []string{
		"https://hooks.example.com/keygate",
		"  https://hooks.example.com/k?token=abc  ",
		"http://10.0.0.5:8080/hook", // reachability is checked when delivering
	} {
		if got, err := keygate.CleanWebhookURL(ok); err != nil || got != strings.TrimSpace(ok) {
			t.Errorf("CleanWebhookURL(%q) = %q, %v", ok, got, err)
		}
	}
	for _, bad := range []string{
		"", "   ", "hooks.example.com/x", "ftp://hooks.example.com/", "https:///path", "https://user:pw@hooks.example.com/",
		"https://hooks.example.com/#frag", "https://hooks.example.com/" + strings.Repeat("a", keygate.MaxWebhookURLLength),
		"https://exa mple.com/",
	} {
		if _, err := keygate.CleanWebhookURL(bad); keygate.ErrorCode(err) != keygate.EINVALID {
			t.Errorf("CleanWebhookURL(%q) = %v, want EINVALID", bad, err)
		}
	}
}

func TestNewWebhook(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	w, err := keygate.NewWebhook(keygate.WebhookRequest{
		OrganizationID: "org_1",
		URL:            "https://hooks.example.com/k",
		Events:         []string{" token.created ", "token.expired", "token.created", ""},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(w.ID, "whk_") || !strings.HasPrefix(w.Secret, "whsec_") || w.Disabled ||
		w.CreatedAt.Location() != time.UTC || !w.CreatedAt.Equal(now) {
		t.Errorf("NewWebhook = %+v", w)
	}
	if strings.Join(w.Events, ",") != "token.created,token.expired" {
		t.Errorf("Events = %q, want token.created and token.expired once each", w.Events)
	}
	for event, want := range map[string]bool{
		keygate.EventTokenCreated: true, keygate.EventTokenExpired: true,
		keygate.EventTokenDeleted: false, keygate.EventWebhookTest: false,
	} {
		if got := w.Subscribes(event); got != want {
			t.Errorf("Subscribes(%s) = %v, want %v", event, got, want)
		}
	}

	all := &keygate.Webhook{}
	for _, event := range keygate.WebhookEvents {
		if !all.Subscribes(event) {
			t.Errorf("an endpoint with no events does not receive %s", event)
		}
	}
	if all.Subscribes(keygate.EventWebhookTest) || all.Subscribes("token.updated") {
		t.Error("an endpoint with no events subscribes to a non-subscribable event")
	}

	_, err = keygate.NewWebhook(keygate.WebhookRequest{URL: "https://x.example", Events: []string{"token.updated"}}, now)
	if keygate.ErrorCode(err) != keygate.EINVALID {
		t.Errorf("unknown event: %v, want EINVALID", err)
	}
}
