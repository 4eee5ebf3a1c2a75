// Package preset holds keygate's built-in presets as data: the exact header,
// statuses and bodies of the CannMenus and CANSKAN APIs. Adding a preset is
// adding one value to this file.
package preset

import (
	"net/http"
	"sort"
	"time"

	"github.com/keygate/keygate"
)

// DefaultFailedAuthLimit is the failed-authentication budget per client
// address of presets without a public limit to borrow from: a client with
// a mistyped token gives up long before it, a token guesser is slowed to
// one store lookup a second.
func DefaultFailedAuthLimit() *keygate.RateLimit {
	return &keygate.RateLimit{Key: keygate.LimitByIP, Limit: 60, Period: time.Minute}
}

// CannMenus answers like the CannMenus API: token in X-Token, 404
// {"detail": "Not Found"} for any token problem, at most 2 active tokens.
func CannMenus() *keygate.Preset {
	notFound := keygate.Response{Status: http.StatusNotFound, Body: `{"detail": "Not Found"}`}
	return &keygate.Preset{
		Name:                "cannmenus",
		TokenHeader:         "X-Token",
		MaxActiveTokens:     2,
		FailedAuthRateLimit: DefaultFailedAuthLimit(),
		Responses: map[string]keygate.Response{
			keygate.ETOKENMISSING: notFound,
			keygate.ETOKENINVALID: notFound,
			keygate.ETOKENEXPIRED: notFound,
			keygate.ENOTFOUND:     notFound,
			keygate.ESCOPE:        {Status: http.StatusForbidden, Body: `{"detail": "Token does not have access to this endpoint."}`},
			keygate.EPLAN:         {Status: http.StatusForbidden, Body: `{"detail": "Your plan does not include this endpoint."}`},
			keygate.EENTITLEMENT:  {Status: http.StatusForbidden, Body: `{"detail": "Your organization does not have access to {kind} {value}."}`},
			keygate.ERATELIMITED:  {Status: http.StatusTooManyRequests, Body: `{"detail": "Too Many Requests"}`},
			keygate.EUPSTREAM:     {Status: http.StatusBadGateway, Body: `{"detail": "Bad Gateway"}`},
			keygate.EUPSTREAMSLOW: {Status: http.StatusGatewayTimeout, Body: `{"detail": "Gateway Timeout"}`},
			keygate.EUNAVAILABLE:  {Status: http.StatusServiceUnavailable, Body: `{"detail": "Service Unavailable"}`},
			keygate.EINTERNAL:     {Status: http.StatusInternalServerError, Body: `{"detail": "Internal Server Error"}`},
			keygate.ETOOLARGE:     {Status: http.StatusRequestEntityTooLarge, Body: `{"detail": "Request Entity Too Large"}`},
			keygate.EINVALID:      {Status: http.StatusBadRequest, Body: `{"detail": "Bad Request"}`},
		},
	}
}

// CANSKAN answers like the CANSKAN (Laravel) API: Bearer token, three
// distinct 401 bodies, public routes 10/min per IP and token routes 60/min
// per token.
func CANSKAN() *keygate.Preset {
	forbidden := keygate.Response{Status: http.StatusForbidden, Body: `{"message": "Token does not have required permissions."}`}
	return &keygate.Preset{
		Name:            "canskan",
		TokenHeader:     "Authorization",
		TokenScheme:     "Bearer",
		PublicRateLimit: &keygate.RateLimit{Key: keygate.LimitByIP, Limit: 10, Period: time.Minute},
		TokenRateLimit:  &keygate.RateLimit{Key: keygate.LimitByToken, Limit: 60, Period: time.Minute},
		// Laravel throttles a failed login like any anonymous request.
		FailedAuthRateLimit: &keygate.RateLimit{Key: keygate.LimitByIP, Limit: 10, Period: time.Minute},
		Responses: map[string]keygate.Response{
			keygate.ETOKENMISSING: {Status: http.StatusUnauthorized, Body: `{"message": "API token required."}`},
			keygate.ETOKENINVALID: {Status: http.StatusUnauthorized, Body: `{"message": "Invalid API token."}`},
			keygate.ETOKENEXPIRED: {Status: http.StatusUnauthorized, Body: `{"message": "API token has expired."}`},
			keygate.ESCOPE:        forbidden,
			keygate.EPLAN:         forbidden,
			keygate.EENTITLEMENT:  forbidden,
			keygate.ENOTFOUND:     {Status: http.StatusNotFound, Body: `{"message": "Not Found."}`},
			keygate.ERATELIMITED:  {Status: http.StatusTooManyRequests, Body: `{"message": "Too Many Attempts."}`},
			keygate.EUPSTREAM:     {Status: http.StatusBadGateway, Body: `{"message": "Bad Gateway."}`},
			keygate.EUPSTREAMSLOW: {Status: http.StatusGatewayTimeout, Body: `{"message": "Gateway Timeout."}`},
			keygate.EUNAVAILABLE:  {Status: http.StatusServiceUnavailable, Body: `{"message": "Service Unavailable."}`},
			keygate.EINTERNAL:     {Status: http.StatusInternalServerError, Body: `{"message": "Server Error"}`},
			keygate.ETOOLARGE:     {Status: http.StatusRequestEntityTooLarge, Body: `{"message": "Request Entity Too Large."}`},
			keygate.EINVALID:      {Status: http.StatusBadRequest, Body: `{"message": "Bad Request."}`},
		},
	}
}

var builtin = map[string]func() *keygate.Preset{
	"cannmenus": CannMenus,
	"canskan":   CANSKAN,
}

// Lookup returns a fresh copy of the named built-in preset, or nil.
func Lookup(name string) *keygate.Preset {
	if f, ok := builtin[name]; ok {
		return f()
	}
	return nil
}

// Names lists the built-in presets, sorted.
func Names() []string {
	names := make([]string, 0, len(builtin))
	for n := range builtin {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
