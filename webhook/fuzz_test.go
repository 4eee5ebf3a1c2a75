package webhook_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/webhook"
)

// FuzzVerify is what a receiver's check must hold on arbitrary input:
// Sign then Verify round-trips; a changed body, id or timestamp is refused;
// a timestamp outside the tolerance is refused as a replay; and whatever
// the signature header holds, Verify accepts only when one of its
// space-separated entries is exactly the right "v1,…" signature.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "msg_p5jXN8AQM9LWM0D4loKWxJek", []byte(`{"test": 2432232314}`), int64(0), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", uint8(0))
	f.Add([]byte{1}, "id", []byte{}, int64(301), "v1a,abc v1,", uint8(1))
	f.Add([]byte("k"), "a.b", []byte("c"), int64(-299), "v2,AAAA", uint8(2))
	f.Add([]byte("k"), "", []byte("body"), int64(1<<40), "v1,====", uint8(3))
	f.Fuzz(func(t *testing.T, key []byte, id string, body []byte, skew int64, extra string, mutate uint8) {
		if len(key) == 0 {
			key = []byte{0}
		}
		secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
		sent := time.Unix(1_700_000_000, 0)
		sig, err := webhook.Sign(secret, id, sent, body)
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		h := http.Header{}
		h.Set(webhook.HeaderID, id)
		h.Set(webhook.HeaderTimestamp, strconv.FormatInt(sent.Unix(), 10))
		h.Set(webhook.HeaderSignature, sig)
		now := sent.Add(time.Duration(skew%600) * time.Second)
		err = webhook.VerifyAt(secret, h, body, now, 0)
		inWindow := skew%600 <= 300 && skew%600 >= -300
		switch {
		case id == "":
			if !errors.Is(err, webhook.ErrMissingHeaders) {
				t.Fatalf("no id: %v", err)
			}
			return
		case inWindow && err != nil:
			t.Fatalf("Sign then Verify %v from now: %v", skew%600, err)
		case !inWindow && !errors.Is(err, webhook.ErrTimestampOutOfRange):
			t.Fatalf("%v s from now: %v, want a replay refusal", skew%600, err)
		}

		// The same message with one thing changed, and the fuzzed
		// signature header around (or instead of) the right signature.
		body2, id2, ts2 := body, id, sent
		switch mutate % 4 {
		case 1:
			body2 = append(append([]byte{}, body...), 'x')
		case 2:
			id2 = id + "x"
		case 3:
			ts2 = sent.Add(time.Second)
		}
		h.Set(webhook.HeaderID, id2)
		h.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts2.Unix(), 10))
		h.Set(webhook.HeaderSignature, extra)
		if !validSignatureHeader(extra) {
			return
		}
		err = webhook.VerifyAt(secret, h, body2, ts2, 0)
		want, _ := webhook.Sign(secret, id2, ts2, body2)
		carries := false
		for _, s := range strings.Fields(extra) {
			v, enc, _ := strings.Cut(s, ",")
			got, _ := base64.StdEncoding.DecodeString(enc)
			if v == "v1" && base64.StdEncoding.EncodeToString(got) == strings.TrimPrefix(want, "v1,") {
				carries = true
			}
		}
		if extra == "" {
			if !errors.Is(err, webhook.ErrMissingHeaders) {
				t.Fatalf("empty signature header: %v", err)
			}
		} else if (err == nil) != carries {
			t.Fatalf("signature header %q for the message: err %v, carries the right signature %v", extra, err, carries)
		}
	})
}

func validSignatureHeader(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 && s[i] != '\t' || s[i] == 0x7f {
			return false
		}
	}
	return strings.TrimSpace(s) == s
}
