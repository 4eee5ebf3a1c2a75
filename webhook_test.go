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

func TestQueueFillsOnlyWhatIsMissing(t *testing.T) {
	created := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	later := created.Add(time.Hour)

	var d keygate.WebhookDelivery
	d.Queue(created)
	if !strings.HasPrefix(d.ID, "msg_") || !d.CreatedAt.Equal(created) || d.State != keygate.DeliveryPending ||
		d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(created) || d.Payload == nil || len(d.Payload) != 0 {
		t.Errorf("new delivery queued as %+v", d)
	}
	kept := keygate.WebhookDelivery{ID: "msg_given", State: keygate.DeliveryFailed, NextAttemptAt: &later, Payload: []byte("{}")}
	kept.Queue(created)
	if kept.ID != "msg_given" || kept.State != keygate.DeliveryPending || kept.NextAttemptAt != &later || string(kept.Payload) != "{}" {
		t.Errorf("scheduled delivery queued as %+v", kept)
	}

	var e keygate.Email
	e.Queue(created)
	if !strings.HasPrefix(e.ID, "eml_") || !e.CreatedAt.Equal(created) || e.State != keygate.EmailPending ||
		e.NextAttemptAt == nil || !e.NextAttemptAt.Equal(created) {
		t.Errorf("new email queued as %+v", e)
	}
	keptEmail := keygate.Email{ID: "eml_given", State: keygate.EmailFailed, NextAttemptAt: &later}
	keptEmail.Queue(created)
	if keptEmail.ID != "eml_given" || keptEmail.State != keygate.EmailPending || keptEmail.NextAttemptAt != &later {
		t.Errorf("scheduled email queued as %+v", keptEmail)
	}
}

func TestAttemptResult(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	retry := at.Add(time.Minute)

	for _, c := range []struct {
		a            keygate.WebhookAttempt
		state        string
		next, doneAt *time.Time
	}{
		{keygate.WebhookAttempt{At: at, Delivered: true, NextAttemptAt: &retry}, keygate.DeliveryDelivered, nil, &at},
		{keygate.WebhookAttempt{At: at, NextAttemptAt: &retry}, keygate.DeliveryPending, &retry, nil},
		{keygate.WebhookAttempt{At: at}, keygate.DeliveryFailed, nil, nil},
	} {
		state, next, doneAt := c.a.Result()
		if state != c.state || !sameTime(next, c.next) || !sameTime(doneAt, c.doneAt) {
			t.Errorf("%+v.Result() = %s, %v, %v; want %s, %v, %v", c.a, state, next, doneAt, c.state, c.next, c.doneAt)
		}
	}
	for _, c := range []struct {
		a            keygate.EmailAttempt
		state        string
		next, doneAt *time.Time
	}{
		{keygate.EmailAttempt{At: at, Sent: true, NextAttemptAt: &retry}, keygate.EmailSent, nil, &at},
		{keygate.EmailAttempt{At: at, NextAttemptAt: &retry}, keygate.EmailPending, &retry, nil},
		{keygate.EmailAttempt{At: at}, keygate.EmailFailed, nil, nil},
	} {
		state, next, doneAt := c.a.Result()
		if state != c.state || !sameTime(next, c.next) || !sameTime(doneAt, c.doneAt) {
			t.Errorf("%+v.Result() = %s, %v, %v; want %s, %v, %v", c.a, state, next, doneAt, c.state, c.next, c.doneAt)
		}
	}
}

func sameTime(a, b *time.Time) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Equal(*b))
}
