package webhook_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/webhook"
)

// The test vector published with the Standard Webhooks reference libraries.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignMatchesPublishedVector(t *testing.T) {
	for _, secret := range []string{vectorSecret, strings.TrimPrefix(vectorSecret, "whsec_")} {
		got, err := webhook.Sign(secret, vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorBody))
		if err != nil {
			t.Fatalf("Sign(%q): %v", secret, err)
		}
		if got != vectorSignature {
			t.Errorf("Sign(%q) = %s, want %s", secret, got, vectorSignature)
		}
	}
}

func TestSignRefusesInvalidSecret(t *testing.T) {
	for _, secret := range []string{"", "whsec_", "whsec_not base64!"} {
		if _, err := webhook.Sign(secret, vectorID, time.Unix(vectorTimestamp, 0), nil); !errors.Is(err, webhook.ErrInvalidSecret) {
			t.Errorf("Sign(%q) error = %v, want ErrInvalidSecret", secret, err)
		}
	}
}

func vectorHeader() http.Header {
	h := http.Header{}
	h.Set("webhook-id", vectorID)
	h.Set("webhook-timestamp", strconv.Itoa(vectorTimestamp))
	h.Set("webhook-signature", vectorSignature)
	return h
}

func TestVerify(t *testing.T) {
	sent := time.Unix(vectorTimestamp, 0)
	tests := []struct {
		name   string
		secret string
		change func(h http.Header)
		body   string
		now    time.Time
		want   error
	}{
		{name: "published vector", now: sent},
		{name: "secret without prefix", secret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", now: sent},
		{name: "at the edge of the tolerance, late", now: sent.Add(webhook.DefaultTolerance)},
		{name: "at the edge of the tolerance, early", now: sent.Add(-webhook.DefaultTolerance)},
		{name: "too old", now: sent.Add(webhook.DefaultTolerance + time.Second), want: webhook.ErrTimestampOutOfRange},
		{name: "too new", now: sent.Add(-webhook.DefaultTolerance - time.Second), want: webhook.ErrTimestampOutOfRange},
		{name: "tampered body", body: `{"test": 2432232315}`, now: sent, want: webhook.ErrNoMatchingSignature},
		{name: "re-encoded body", body: `{"test":2432232314}`, now: sent, want: webhook.ErrNoMatchingSignature},
		{name: "wrong secret", secret: keygate.NewWebhookSecret(), now: sent, want: webhook.ErrNoMatchingSignature},
		{name: "invalid secret", secret: "whsec_%%%", now: sent, want: webhook.ErrInvalidSecret},
		{name: "other id", change: func(h http.Header) { h.Set("webhook-id", "msg_other") }, now: sent, want: webhook.ErrNoMatchingSignature},
		{name: "timestamp moved", change: func(h http.Header) { h.Set("webhook-timestamp", strconv.Itoa(vectorTimestamp+1)) },
			now: sent, want: webhook.ErrNoMatchingSignature},
		{name: "timestamp not a number", change: func(h http.Header) { h.Set("webhook-timestamp", "2021-02-25T15:02:10Z") },
			now: sent, want: webhook.ErrInvalidTimestamp},
		{name: "no id", change: func(h http.Header) { h.Del("webhook-id") }, now: sent, want: webhook.ErrMissingHeaders},
		{name: "no timestamp", change: func(h http.Header) { h.Del("webhook-timestamp") }, now: sent, want: webhook.ErrMissingHeaders},
		{name: "no signature", change: func(h http.Header) { h.Del("webhook-signature") }, now: sent, want: webhook.ErrMissingHeaders},
		{name: "several signatures, one valid", change: func(h http.Header) {
			h.Set("webhook-signature", "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1a,"+
				strings.TrimPrefix(vectorSignature, "v1,")+" "+vectorSignature+" v1,%%%")
		}, now: sent},
		{name: "right bytes under another version", change: func(h http.Header) {
			h.Set("webhook-signature", "v2,"+strings.TrimPrefix(vectorSignature, "v1,"))
		}, now: sent, want: webhook.ErrNoMatchingSignature},
		{name: "signature without version", change: func(h http.Header) {
			h.Set("webhook-signature", strings.TrimPrefix(vectorSignature, "v1,"))
		}, now: sent, want: webhook.ErrNoMatchingSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := vectorHeader()
			if tt.change != nil {
				tt.change(h)
			}
			secret, body := tt.secret, tt.body
			if secret == "" {
				secret = vectorSecret
			}
			if body == "" {
				body = vectorBody
			}
			err := webhook.VerifyAt(secret, h, []byte(body), tt.now, 0)
			if !errors.Is(err, tt.want) {
				t.Errorf("VerifyAt = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifyUsesTheClock(t *testing.T) {
	if err := webhook.Verify(vectorSecret, vectorHeader(), []byte(vectorBody)); !errors.Is(err, webhook.ErrTimestampOutOfRange) {
		t.Errorf("Verify of a 2021 message now = %v, want ErrTimestampOutOfRange", err)
	}
	now := time.Now()
	sig, err := webhook.Sign(vectorSecret, vectorID, now, []byte(vectorBody))
	if err != nil {
		t.Fatal(err)
	}
	h := vectorHeader()
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", sig)
	if err := webhook.Verify(vectorSecret, h, []byte(vectorBody)); err != nil {
		t.Errorf("Verify of a message signed now: %v", err)
	}
}

func TestNewWebhookSecret(t *testing.T) {
	a, b := keygate.NewWebhookSecret(), keygate.NewWebhookSecret()
	if a == b {
		t.Fatal("two secrets are equal")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "whsec_"))
	if !strings.HasPrefix(a, "whsec_") || err != nil || len(key) != 32 {
		t.Fatalf("secret %q: want whsec_ and the base64 of 32 bytes (%d bytes, %v)", a, len(key), err)
	}
	now := time.Now()
	sig, err := webhook.Sign(a, "msg_1", now, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", sig)
	if err := webhook.VerifyAt(a, h, []byte(`{}`), now, 0); err != nil {
		t.Errorf("a new secret does not verify its own signature: %v", err)
	}
	if err := webhook.VerifyAt(b, h, []byte(`{}`), now, 0); !errors.Is(err, webhook.ErrNoMatchingSignature) {
		t.Errorf("another secret verified the signature: %v", err)
	}
}
