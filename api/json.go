package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/keygate/keygate"
)

// maxBody bounds every request body; management requests are small.
const maxBody = 64 << 10

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeError answers with err's code and caller-safe message. Failures that
// are not keygate errors are logged, and the caller gets a generic message.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := keygate.AsError(err)
	st := keygate.HTTPStatus(e.Code)
	if st >= 500 {
		h.d.Logger.ErrorContext(r.Context(), "management API request failed",
			"method", r.Method, "path", r.URL.Path, "code", e.Code, "err", err)
	}
	if st == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="keygate"`)
	}
	writeJSON(w, st, errorBody{Error: errorDetail{Code: e.Code, Message: e.Message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// decode reads exactly one JSON object into v, refusing unknown fields so a
// misspelt option is an error rather than silently ignored.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return keygate.Errorf(keygate.EINVALID, "Send a JSON body with Content-Type: application/json.")
	}
	br := bufio.NewReader(http.MaxBytesReader(w, r.Body, maxBody))
	// An object, not null: null would decode as an empty request.
	for {
		c, err := br.ReadByte()
		if err != nil {
			return decodeError(err)
		}
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			continue
		}
		if c != '{' {
			return keygate.Errorf(keygate.EINVALID, "The request body must be a JSON object.")
		}
		br.UnreadByte()
		break
	}
	dec := json.NewDecoder(br)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return keygate.Errorf(keygate.EINVALID, "The request body must hold one JSON object and nothing after it.")
	}
	return nil
}

// decodeError words a JSON decoding failure for the caller.
func decodeError(err error) error {
	var maxErr *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &maxErr):
		return keygate.Errorf(keygate.ETOOLARGE, "The request body is larger than %d bytes.", maxBody)
	case errors.Is(err, io.EOF):
		return keygate.Errorf(keygate.EINVALID, "The request body is empty; send a JSON object.")
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return keygate.Errorf(keygate.EINVALID, "The request body must be a JSON object.")
		}
		return keygate.Errorf(keygate.EINVALID, "Field %q must be %s.", typeErr.Field, jsonKind(typeErr.Type.Kind().String()))
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return keygate.Errorf(keygate.EINVALID, "The request body is not valid JSON.")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return keygate.Errorf(keygate.EINVALID, "Unknown field %s.", field)
	}
	return keygate.Errorf(keygate.EINVALID, "The request body could not be read: %s.", strings.TrimPrefix(err.Error(), "json: "))
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	case "bool":
		return "true or false"
	case "int", "int64", "int32", "uint", "float64":
		return "a number"
	}
	return fmt.Sprintf("a %s", goKind)
}
