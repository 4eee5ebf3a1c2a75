package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate"
)

// Standard Webhooks request headers. The id stays the same across retries of
// one delivery; the timestamp is the attempt's.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// DefaultTolerance is how far a webhook-timestamp may be from the
// receiver's clock, either way, before Verify refuses it as a replay.
const DefaultTolerance = 5 * time.Minute

// Reasons Verify refuses a request.
var (
	ErrMissingHeaders      = errors.New("webhook: webhook-id, webhook-timestamp or webhook-signature is missing")
	ErrInvalidTimestamp    = errors.New("webhook: webhook-timestamp is not a Unix time in seconds")
	ErrTimestampOutOfRange = errors.New("webhook: webhook-timestamp is too far from the current time")
	ErrNoMatchingSignature = errors.New("webhook: no signature matches")
	ErrInvalidSecret       = errors.New("webhook: the signing secret is not whsec_ followed by base64")
)

// Sign returns the webhook-signature header value for a message: "v1," and
// the base64 HMAC-SHA256 of "{id}.{timestamp}.{body}", keyed with the
// base64-decoded part of secret (with or without its "whsec_" prefix).
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := secretKey(secret)
	if err != nil {
		return "", err
	}
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, id, ts.Unix(), body)), nil
}

// Verify checks a received webhook against the endpoint's secret: the
// three headers are present, the timestamp is within DefaultTolerance of
// now, and one of the space-separated "v1,…" signatures matches body, which
// must be the raw request body, not re-encoded JSON.
func Verify(secret string, header http.Header, body []byte) error {
	return VerifyAt(secret, header, body, time.Now(), DefaultTolerance)
}

// VerifyAt is Verify with the receiver's clock and tolerance given;
// a tolerance of zero or less means DefaultTolerance.
func VerifyAt(secret string, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id, stamp, signatures := header.Get(HeaderID), header.Get(HeaderTimestamp), header.Get(HeaderSignature)
	if id == "" || stamp == "" || signatures == "" {
		return ErrMissingHeaders
	}
	seconds, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		return ErrInvalidTimestamp
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if skew := now.Sub(time.Unix(seconds, 0)); skew > tolerance || skew < -tolerance {
		return ErrTimestampOutOfRange
	}
	key, err := secretKey(secret)
	if err != nil {
		return err
	}
	want := mac(key, id, seconds, body)
	// Several signatures let a sender roll its secret without downtime;
	// versions other than v1 (v1a: asymmetric) are not ours to check.
	for _, s := range strings.Fields(signatures) {
		version, encoded, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(encoded)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrNoMatchingSignature
}

func secretKey(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, keygate.WebhookSecretPrefix))
	if err != nil || len(key) == 0 {
		return nil, ErrInvalidSecret
	}
	return key, nil
}

func mac(key []byte, id string, seconds int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(nil, seconds, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}
