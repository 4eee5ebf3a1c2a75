package oauth

import (
	"encoding/json"
	"net/http"
)

// authError is an OAuth error response: the `error` code of RFC 6749 §5.2
// (and of RFC 7591, RFC 8707) and a description safe to show anyone.
type authError struct {
	code        string
	description string
	status      int // 400 unless set
}

func (e *authError) Error() string { return "oauth: " + e.code + ": " + e.description }

func invalidRequest(description string) *authError {
	return &authError{code: "invalid_request", description: description}
}

func invalidGrant(description string) *authError {
	return &authError{code: "invalid_grant", description: description}
}

func invalidClient(description string) *authError {
	return &authError{code: "invalid_client", description: description, status: http.StatusUnauthorized}
}

func serverError() *authError {
	return &authError{code: "server_error", description: "The authorization server failed; try again.", status: http.StatusInternalServerError}
}

// writeError answers with e as JSON, never cached.
func writeError(w http.ResponseWriter, e *authError) {
	status := e.status
	if status == 0 {
		status = http.StatusBadRequest
	}
	writeJSON(w, status, map[string]string{"error": e.code, "error_description": e.description})
}

// writeJSON answers v as JSON. Responses of the authorization server carry
// codes, tokens or client secrets, so none may be stored by a cache.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
