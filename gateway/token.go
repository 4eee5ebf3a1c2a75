package gateway

import (
	"net/http"
	"strings"

	"github.com/keygate/keygate"
)

// tokenFrom reads the token from the preset's header. Absent, empty, or
// (for schemed presets) a different scheme is ETOKENMISSING, as Laravel
// Sanctum treats "Authorization: Basic …". Anything that cannot be a token
// of this API — repeated headers, over-long values, wrong prefix, bad
// checksum — is ETOKENINVALID, decided without touching storage.
// Whitespace around the value is ignored, as HTTP itself ignores it.
func tokenFrom(h http.Header, preset *keygate.Preset, prefixes []string) (string, error) {
	values := h.Values(preset.TokenHeader)
	if len(values) == 0 {
		return "", errTokenMissing
	} else if len(values) > 1 {
		return "", errTokenInvalid
	}
	v := strings.TrimSpace(values[0])
	if preset.TokenScheme != "" {
		scheme, rest, _ := strings.Cut(v, " ")
		if !strings.EqualFold(scheme, preset.TokenScheme) {
			return "", errTokenMissing
		}
		v = strings.TrimSpace(rest)
	}
	if v == "" {
		return "", errTokenMissing
	}
	if len(v) > keygate.MaxTokenLength || !keygate.WellFormedToken(v, prefixes...) {
		return "", errTokenInvalid
	}
	return v, nil
}

var (
	errTokenMissing = keygate.Errorf(keygate.ETOKENMISSING, "API token required.")
	errTokenInvalid = keygate.Errorf(keygate.ETOKENINVALID, "Invalid API token.")
	errTokenExpired = keygate.Errorf(keygate.ETOKENEXPIRED, "API token has expired.")
	errNotFound     = keygate.Errorf(keygate.ENOTFOUND, "Not Found.")
	errScope        = keygate.Errorf(keygate.ESCOPE, "Token does not have required permissions.")
	errPlan         = keygate.Errorf(keygate.EPLAN, "Your plan does not include this endpoint.")
	errRateLimited  = keygate.Errorf(keygate.ERATELIMITED, "Too many requests.")
	errTooLarge     = keygate.Errorf(keygate.ETOOLARGE, "Request body too large.")
	errUpstream     = keygate.Errorf(keygate.EUPSTREAM, "Upstream unreachable.")
	errUpstreamSlow = keygate.Errorf(keygate.EUPSTREAMSLOW, "Upstream did not answer in time.")
	errCanceled     = keygate.Errorf(keygate.ECANCELED, "The client went away before an answer.")
	// errMethodOverride: the request names another method for the
	// upstream to serve than the one its route was checked for.
	errMethodOverride = keygate.Errorf(keygate.EINVALID, "Method override names another method.")
)
