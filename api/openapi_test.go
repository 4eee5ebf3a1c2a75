package api_test

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/keygate/keygate/api"
)

// The OpenAPI document lists exactly the routes the handler registers, plus
// the gateway's verify endpoint, which is mounted beside it.
func TestOpenAPIDocumentMatchesTheRoutes(t *testing.T) {
	f := newFixture(t)
	r := f.do(anonymous, "GET", "/api/v1/openapi.json", "").expect(http.StatusOK, nil)
	if ct := r.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(r.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for key := range item {
			if key == "parameters" || key == "summary" || key == "description" {
				continue
			}
			documented[strings.ToUpper(key)+" "+path] = true
		}
	}
	registered := map[string]bool{"POST " + api.VerifyPath: true}
	for _, rt := range f.handler.(*api.Handler).Routes() {
		registered[rt.Method+" "+rt.Path] = true
	}
	if missing := difference(registered, documented); len(missing) > 0 {
		t.Errorf("registered but not documented: %v", missing)
	}
	if extra := difference(documented, registered); len(extra) > 0 {
		t.Errorf("documented but not registered: %v", extra)
	}

	// Every documented operation reaches a route of this handler (not the
	// catch-all), except verify, which the gateway serves.
	for op := range documented {
		method, path, _ := strings.Cut(op, " ")
		path = strings.NewReplacer("{org}", "acme", "{id}", "tok_x", "{user}", "usr_x").Replace(path)
		resp := f.do(f.key(), method, path, "")
		notOurs := resp.Code == 404 && strings.Contains(resp.Body.String(), "No such endpoint")
		if notOurs != (op == "POST "+api.VerifyPath) {
			t.Errorf("%s: %d %s", op, resp.Code, resp.Body)
		}
	}
}

// Every $ref in the document points at something that exists.
func TestOpenAPIReferencesResolve(t *testing.T) {
	f := newFixture(t)
	r := f.do(anonymous, "GET", "/api/v1/openapi.json", "").expect(http.StatusOK, nil)
	var doc map[string]any
	if err := json.Unmarshal(r.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	count := 0
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				count++
				if !resolves(doc, ref) {
					t.Errorf("$ref %q does not resolve", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	if count < 50 {
		t.Errorf("only %d references checked", count)
	}
}

func resolves(doc map[string]any, ref string) bool {
	if !strings.HasPrefix(ref, "#/") {
		return false
	}
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return true
}

func difference(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
