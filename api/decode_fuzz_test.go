package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/keygate/keygate"
)

// requestTypes are the bodies the management API decodes, every one
// through decode.
var requestTypes = []func() any{
	func() any { return new(updateEmailSettingsRequest) },
	func() any { return new(createInvitationRequest) },
	func() any { return new(answerInvitationRequest) },
	func() any { return new(addMemberRequest) },
	func() any { return new(setRoleRequest) },
	func() any { return new(createOrganizationRequest) },
	func() any { return new(updateOrganizationRequest) },
	func() any { return new(createTokenRequest) },
	func() any { return new(rotateTokenRequest) },
	func() any { return new(createWebhookRequest) },
	func() any { return new(updateWebhookRequest) },
}

// FuzzDecode sends arbitrary bodies and content types to the one decoder
// every management API handler reads its body with, into each request
// type. A body is accepted only if it is one JSON object, with
// Content-Type application/json; what is accepted survives re-encoding
// unchanged and gives each key once, every field spelled exactly as the
// request type names it (so other JSON readers read it alike); a refusal
// is the caller's fault (400 or 413) with a message, and never repeats a
// string value of the body, such as a password or an invitation secret.
func FuzzDecode(f *testing.F) {
	for _, seed := range []struct {
		kind uint8
		ct   string
		body string
	}{
		{0, "application/json", `{"emails":{"token_expiring":true,"webhook_failing":false}}`},
		{0, "application/json", `{"emails":{"token_expiring":"yes"}}`},
		{0, "application/json", `{"emails":null}`},
		{2, "application/json; charset=utf-8", `{"secret":"bqHq0Xu3Tqj4ZzVd1bOlYc0yIzhGZ5Gx6jW7o7sWn0E"}`},
		{2, "application/json", `{"secret":"bqHq0Xu3Tqj4ZzVd1bOlYc0yIzhGZ5Gx6jW7o7sWn0E"}{}`},
		{3, "application/json", `{"email":"a@example.com","password":"correct horse battery","role":"owner","extra":1}`},
		{3, "application/json", `{"email":"a@example.com","password":12}`},
		{5, "application/json", `{"slug":"acme","entitlements":{"states":["CA"]},"max_active_tokens":1e99}`},
		{5, "application/json", `{"slug":"acme","entitlements":{"states":"CA"}}`},
		{7, "application/json", `{"name":"ci","scopes":["a"],"expires_in":"90d"}`},
		{9, "application/json", `{"url":"https://example.com/hook","events":["token.created"]}`},
		{10, "application/json", `{"disabled":true}`},
		{1, "text/plain", `{"email":"a@example.com"}`},
		{1, "application/json", `null`},
		{1, "application/json", `[]`},
		{1, "application/json", ``},
		{1, "application/json", `{"email":"\ud800"}`},
		{1, "application/json", `{"email":"a@example.com"`},
		{1, "application/json", `{"email":"a@example.com","email":"b@example.com"}`},
		{1, "application/json", `{"EMAIL":"a@example.com"}`},
		{7, "application/json", `{"name":"ci","scopes":["a"],"SCOPES":null}`},
		{5, "application/json", `{"slug":"acme","entitlements":{"states":["CA"],"ſtates":[]}}`},
		{0, "application/json", `{"emails":{"token.created":true,"token.created":false}}`},
	} {
		f.Add(seed.kind, seed.ct, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, kind uint8, contentType string, body []byte) {
		newValue := requestTypes[int(kind)%len(requestTypes)]
		v := newValue()
		err := decodeBody(contentType, body, v)
		if err != nil {
			e := keygate.AsError(err)
			if st := keygate.HTTPStatus(e.Code); st != http.StatusBadRequest && st != http.StatusRequestEntityTooLarge || e.Message == "" {
				t.Fatalf("%q refused with %s (%d) %q", body, e.Code, st, e.Message)
			}
			for _, s := range stringValues(body) {
				if len(s) >= 8 && strings.Contains(e.Message, s) {
					t.Fatalf("refusal %q repeats the body's value %q", e.Message, s)
				}
			}
			return
		}
		var top any
		if json.Unmarshal(body, &top) != nil {
			t.Fatalf("accepted %q, which is not JSON", body)
		}
		if _, ok := top.(map[string]any); !ok {
			t.Fatalf("accepted %q, which is not a JSON object", body)
		}
		if key, ok := repeatedKey(body); ok {
			t.Fatalf("accepted %q, which gives the key %q twice in one object", body, key)
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("accepted %q cannot be encoded again: %v", body, err)
		}
		var fields map[string]any
		_ = json.Unmarshal(again, &fields)
		for key := range top.(map[string]any) {
			if _, ok := fields[key]; !ok {
				t.Fatalf("accepted %q, whose key %q is no field's exact name", body, key)
			}
		}
		v2 := newValue()
		if err := decodeBody("application/json", again, v2); err != nil || !reflect.DeepEqual(v, v2) {
			t.Fatalf("accepted %q; encoded again %s it reads as %+v (%v), not %+v", body, again, v2, err, v)
		}
	})
}

func decodeBody(contentType string, body []byte, v any) error {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
	r.Header.Set("Content-Type", contentType)
	return decode(httptest.NewRecorder(), r, v)
}

// repeatedKey returns a key that one object of the JSON body holds twice.
func repeatedKey(body []byte) (string, bool) {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	var objects []map[string]bool // the keys of each open object; nil for an array
	expectKey := func() bool { return len(objects) > 0 && objects[len(objects)-1] != nil }
	afterKey := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		switch tok {
		case json.Delim('{'):
			objects, afterKey = append(objects, map[string]bool{}), false
			continue
		case json.Delim('['):
			objects, afterKey = append(objects, nil), false
			continue
		case json.Delim('}'), json.Delim(']'):
			objects, afterKey = objects[:len(objects)-1], false
			continue
		}
		if key, ok := tok.(string); ok && expectKey() && !afterKey {
			if objects[len(objects)-1][key] {
				return key, true
			}
			objects[len(objects)-1][key], afterKey = true, true
			continue
		}
		afterKey = false
	}
}

// stringValues returns the string values (not keys) anywhere in body,
// when it is JSON.
func stringValues(body []byte) []string {
	var out []string
	var walk func(any)
	walk = func(x any) {
		switch x := x.(type) {
		case string:
			out = append(out, x)
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	for {
		var x any
		if err := dec.Decode(&x); err != nil {
			return out
		}
		walk(x)
	}
}
