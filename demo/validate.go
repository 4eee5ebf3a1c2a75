package demo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxBodyBytes bounds every JSON body the events API reads; its forms are
// a few short fields.
const maxBodyBytes = 64 << 10

// form is a JSON object body, read field by field so each field can be
// checked and reported the way Laravel's validator does.
type form map[string]json.RawMessage

// readForm reads the body as a JSON object. An empty body is an empty form,
// so its required fields are reported. It answers 413 or 422 itself and
// returns false when the body is too large or not a JSON object.
func readForm(w http.ResponseWriter, r *http.Request) (form, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		writeRaw(w, http.StatusRequestEntityTooLarge, `{"message": "Request Entity Too Large."}`)
		return nil, false
	} else if err != nil {
		writeRaw(w, http.StatusBadRequest, `{"message": "Bad Request."}`)
		return nil, false
	}
	f := form{}
	if len(bytes.TrimSpace(body)) == 0 {
		return f, true
	}
	if err := json.Unmarshal(body, &f); err != nil {
		v := &validation{}
		v.add("body", "The request body must be a valid JSON object.")
		v.write(w)
		return nil, false
	}
	return f, true
}

// validation collects field errors in the order they were found.
type validation struct {
	fields []string
	errors map[string][]string
	count  int
}

func (v *validation) add(field, message string) {
	if v.errors == nil {
		v.errors = map[string][]string{}
	}
	if _, ok := v.errors[field]; !ok {
		v.fields = append(v.fields, field)
	}
	v.errors[field] = append(v.errors[field], message)
	v.count++
}

func (v *validation) failed() bool { return v.count > 0 }

// write answers 422 like Laravel: the first message, "(and N more errors)",
// and every message by field.
func (v *validation) write(w http.ResponseWriter) {
	message := v.errors[v.fields[0]][0]
	switch more := v.count - 1; {
	case more == 1:
		message += " (and 1 more error)"
	case more > 1:
		message += fmt.Sprintf(" (and %d more errors)", more)
	}
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": message, "errors": v.errors})
}

// attribute is a field's name as messages say it: "event_id" → "event id".
func attribute(field string) string { return strings.ReplaceAll(field, "_", " ") }

// has reports whether the field is present and not null.
func (f form) has(field string) bool {
	raw, ok := f[field]
	return ok && string(raw) != "null"
}

// text reads a string field of at most max characters, trimmed.
func (f form) text(v *validation, field string, required bool, max int) string {
	if !f.has(field) {
		if required {
			v.add(field, fmt.Sprintf("The %s field is required.", attribute(field)))
		}
		return ""
	}
	var s string
	if err := json.Unmarshal(f[field], &s); err != nil {
		v.add(field, fmt.Sprintf("The %s field must be a string.", attribute(field)))
		return ""
	}
	s = strings.TrimSpace(s)
	switch {
	case s == "" && required:
		v.add(field, fmt.Sprintf("The %s field is required.", attribute(field)))
	case utf8.RuneCountInString(s) > max:
		v.add(field, fmt.Sprintf("The %s field must not be greater than %d characters.", attribute(field), max))
		return ""
	}
	return s
}

// email reads a required email address, lower-cased.
func (f form) email(v *validation, field string) string {
	before := v.count
	s := f.text(v, field, true, 255)
	if v.count > before {
		return ""
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || addr.Name != "" {
		v.add(field, fmt.Sprintf("The %s field must be a valid email address.", attribute(field)))
		return ""
	}
	return strings.ToLower(s)
}

// integer reads an integer field given as a JSON number or a numeric
// string, as Laravel's "integer" rule accepts both.
func (f form) integer(v *validation, field string, required bool) (int, bool) {
	if !f.has(field) {
		if required {
			v.add(field, fmt.Sprintf("The %s field is required.", attribute(field)))
		}
		return 0, false
	}
	raw := bytes.Trim(f[field], `"`)
	n, err := strconv.Atoi(string(raw))
	if err != nil {
		v.add(field, fmt.Sprintf("The %s field must be an integer.", attribute(field)))
		return 0, false
	}
	return n, true
}

// strings reads a required, non-empty array of distinct strings with at
// most max items.
func (f form) strings(v *validation, field string, max int) []string {
	if !f.has(field) {
		v.add(field, fmt.Sprintf("The %s field is required.", attribute(field)))
		return nil
	}
	var list []string
	if err := json.Unmarshal(f[field], &list); err != nil {
		v.add(field, fmt.Sprintf("The %s field must be an array of strings.", attribute(field)))
		return nil
	}
	switch {
	case len(list) == 0:
		v.add(field, fmt.Sprintf("The %s field is required.", attribute(field)))
		return nil
	case len(list) > max:
		v.add(field, fmt.Sprintf("The %s field must not have more than %d items.", attribute(field), max))
		return nil
	}
	seen := map[string]bool{}
	for i, s := range list {
		if seen[s] {
			v.add(fmt.Sprintf("%s.%d", field, i), fmt.Sprintf("The %s.%d field has a duplicate value.", field, i))
		}
		seen[s] = true
	}
	return list
}
