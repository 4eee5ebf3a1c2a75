package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
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
// misspelt option is an error rather than silently ignored, and refusing
// what encoding/json would read otherwise than other JSON readers (see
// checkKeys).
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return keygate.Errorf(keygate.EINVALID, "Send a JSON body with Content-Type: application/json.")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return decodeError(err)
	}
	// An object, not null: null would decode as an empty request.
	start := bytes.TrimLeft(body, " \t\r\n")
	if len(start) == 0 {
		return decodeError(io.EOF)
	} else if start[0] != '{' {
		return keygate.Errorf(keygate.EINVALID, "The request body must be a JSON object.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return keygate.Errorf(keygate.EINVALID, "The request body must hold one JSON object and nothing after it.")
	}
	return checkKeys(json.NewDecoder(bytes.NewReader(body)), reflect.TypeOf(v))
}

// checkKeys refuses the keys of a body that decoded into a value of type
// t which encoding/json reads otherwise than other JSON readers do: a key
// given twice in one object (encoding/json keeps the last value, other
// readers the first or both), and a field's name in another case or
// Unicode folding ("SCOPES", or "ſcopes" with a long s), which
// encoding/json takes for the field and a case-sensitive reader for no
// field at all. Either would let a body mean one request to whatever
// reads it before keygate (a proxy's policy, a log, a review step) and
// another to keygate: {"scopes": ["products:read"], "SCOPES": null} reads
// as a narrow token elsewhere and made one with every scope here.
func checkKeys(dec *json.Decoder, t reflect.Type) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return keygate.Errorf(keygate.EINVALID, "The request body is not valid JSON.")
	}
	switch tok {
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for dec.More() {
			if err := checkKeys(dec, elem); err != nil {
				return err
			}
		}
	case json.Delim('{'):
		var fields map[string]reflect.Type
		if t != nil && t.Kind() == reflect.Struct {
			fields = jsonFields(t)
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return keygate.Errorf(keygate.EINVALID, "The request body is not valid JSON.")
			}
			key, _ := tok.(string)
			var child reflect.Type
			if fields != nil {
				var ok bool
				if child, ok = fields[key]; !ok {
					return misspeltField(fields, key)
				}
			} else if t != nil && t.Kind() == reflect.Map {
				child = t.Elem()
			}
			if seen[key] {
				if fields != nil {
					return keygate.Errorf(keygate.EINVALID, "Field %q is given more than once: give each field once.", key)
				}
				return keygate.Errorf(keygate.EINVALID, "The request body gives the same key twice in one object: give each key once.")
			}
			seen[key] = true
			if err := checkKeys(dec, child); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	if _, err := dec.Token(); err != nil { // the closing ] or }
		return keygate.Errorf(keygate.EINVALID, "The request body is not valid JSON.")
	}
	return nil
}

// misspeltField refuses key, which encoding/json matched to one of fields
// without its exact spelling (unknown fields were refused before). The
// message names the field as documented, never the key as sent.
func misspeltField(fields map[string]reflect.Type, key string) error {
	for name := range fields {
		if strings.EqualFold(name, key) {
			return keygate.Errorf(keygate.EINVALID, "Field names are case-sensitive: write %q exactly so.", name)
		}
	}
	return keygate.Errorf(keygate.EINVALID, "The request body has a field keygate does not know.")
}

// jsonFields maps the JSON names of struct type t's fields, as
// encoding/json names them, to their types. The request types embed no
// structs, so promoted fields need no reading here.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported():
			continue
		case name == "":
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
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
