package keygate

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes shared by every layer. The HTTP edges map each code to a status
// and body exactly once: the gateway through the API's preset, the management
// API through its JSON error shape.
const (
	// Gateway outcomes: each has a response in every preset.
	ETOKENMISSING  = "token_missing"         // no token on a token route
	ETOKENINVALID  = "token_invalid"         // unknown, malformed, revoked or checksum failure
	ETOKENEXPIRED  = "token_expired"         // known token past expires_at
	ESCOPE         = "insufficient_scope"    // valid token, a required scope is missing
	EPLAN          = "plan_forbidden"        // the organization's plan does not include the route
	EENTITLEMENT   = "entitlement_forbidden" // asked for data outside the organization's entitlements
	ERATELIMITED   = "rate_limited"          // limit exceeded
	ENOTFOUND      = "not_found"             // unknown route or record
	EUPSTREAM      = "bad_gateway"           // the upstream could not be reached
	EUPSTREAMSLOW  = "gateway_timeout"       // the upstream did not connect or answer in time
	EUNAVAILABLE   = "unavailable"           // a dependency (database, Redis in closed mode) is down
	EINTERNAL      = "internal"              // a bug or unexpected failure
	EINVALID       = "invalid"               // bad input from a caller
	ECONFLICT      = "conflict"              // e.g. the active-token limit is reached
	EUNAUTHORIZED  = "unauthorized"          // management caller not authenticated
	EFORBIDDEN     = "forbidden"             // management caller lacks the right
	ETOOLARGE      = "too_large"             // request body over the limit
	EMETHODALLOWED = "method_not_allowed"    // management API only
	// ECANCELED: the client went away (or gave up) before keygate
	// answered. Nobody reads the answer; it is counted apart from errors.
	ECANCELED = "canceled"
)

// Error is keygate's error: a code from the list above, a message safe to show
// to the caller, and for entitlement refusals the kind and value refused.
// Messages never contain a token.
type Error struct {
	Code    string
	Message string
	// Kind and Value name the refused entitlement ("state", "New York").
	Kind, Value string
}

func (e *Error) Error() string {
	return fmt.Sprintf("keygate error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err when it is (or wraps) an *Error,
// EINTERNAL for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	// Asked several times per request: an *Error itself is answered
	// without errors.As, whose target would be allocated on every call.
	if e, ok := err.(*Error); ok {
		return e.Code
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the caller-safe message of err. Errors that are not
// *Error are internal and get a generic message so no detail leaks.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}

// AsError returns err as an *Error, wrapping non-keygate errors as EINTERNAL.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: EINTERNAL, Message: "Internal error."}
}

// StatusClientClosedRequest is the status recorded (never sent) for a
// request whose client went away first; nginx uses the same number.
const StatusClientClosedRequest = 499

// HTTPStatus is the status keygate's own JSON APIs and pages answer an
// error code with. The gateway does not use it: its answers come from each
// API's preset.
func HTTPStatus(code string) int {
	switch code {
	case EINVALID:
		return http.StatusBadRequest
	case EUNAUTHORIZED:
		return http.StatusUnauthorized
	case EFORBIDDEN:
		return http.StatusForbidden
	case ENOTFOUND:
		return http.StatusNotFound
	case EMETHODALLOWED:
		return http.StatusMethodNotAllowed
	case ECONFLICT:
		return http.StatusConflict
	case ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case ERATELIMITED:
		return http.StatusTooManyRequests
	case EUNAVAILABLE:
		return http.StatusServiceUnavailable
	case ECANCELED:
		return StatusClientClosedRequest
	}
	return http.StatusInternalServerError
}
