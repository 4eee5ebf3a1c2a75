package oauth

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/keygate/keygate"
)

// FuzzMatchRedirectURI checks redirect URI matching on arbitrary pairs: a
// registered URI always matches itself; anything else matches only as
// RFC 8252 allows — http on a loopback IP literal, differing from a
// registered URI in the port alone — and a matched URI is itself one
// keygate would accept for registration, so a code is only ever sent
// where a registered redirect URI points.
func FuzzMatchRedirectURI(f *testing.F) {
	for _, pair := range [][2]string{
		{"https://app.example.com/cb", "https://app.example.com/cb"},
		{"https://app.example.com/cb", "https://app.example.com/cb/"},
		{"http://127.0.0.1/cb", "http://127.0.0.1:51234/cb"},
		{"http://[::1]:8080/cb", "http://[::1]:9/cb"},
		{"http://localhost:1/cb", "http://localhost:2/cb"},
		{"http://127.0.0.1/cb", "http://127.0.0.1:1/cb#"},
		{"http://127.0.0.1/cb", "http://user@127.0.0.1:1/cb"},
		{"http://127.0.0.1/cb?a=1", "http://127.0.0.1:2/cb?a=1"},
		{"http://127.0.0.1/cb", "http://127.0.0.1:2/cb?"},
		{"http://127.0.0.1/cb", "http://127.0.0.1:2/%63b"},
		{"http://127.0.0.1/cb", "http://127.000.000.001:2/cb"},
		{"http://127.0.0.1/cb", "HTTP://127.0.0.1:2/cb"},
		{"https://app.example.com/cb", "https://app.example.com/cb@evil.example"},
	} {
		f.Add(pair[0], pair[1])
	}
	f.Fuzz(func(t *testing.T, registered, requested string) {
		if checkRedirectURI(registered) != nil {
			t.Skip() // only valid URIs are ever registered
		}
		if !matchRedirectURI([]string{registered}, registered) {
			t.Fatalf("%q does not match itself", registered)
		}
		if !matchRedirectURI([]string{registered}, requested) || requested == registered {
			return
		}
		if err := checkRedirectURI(requested); err != nil {
			t.Fatalf("%q matched %q but is no valid redirect URI: %v", requested, registered, err)
		}
		req, _ := url.Parse(requested)
		reg, _ := url.Parse(registered)
		if req.Scheme != "http" || reg.Scheme != "http" || !isLoopbackIP(req.Hostname()) || req.Hostname() != reg.Hostname() {
			t.Fatalf("%q matched %q outside the loopback exception", requested, registered)
		}
		req.Host, reg.Host = req.Hostname(), reg.Hostname()
		if req.String() != reg.String() {
			t.Fatalf("%q matched %q but differs in more than the port", requested, registered)
		}
	})
}

// FuzzClientMetadata checks registration metadata on arbitrary JSON: what
// is accepted stays within the limits (1 to 10 redirect URIs, each valid;
// a short printable name; supported grants), survives a JSON round trip
// unchanged, and a metadata document is accepted only at its own URL and
// without a secret.
func FuzzClientMetadata(f *testing.F) {
	f.Add([]byte(`{"redirect_uris":["https://app.example.com/cb"],"client_name":"App"}`), "https://app.example.com/client.json")
	f.Add([]byte(`{"client_id":"https://app.example.com/c","redirect_uris":["http://127.0.0.1/cb"],"grant_types":["authorization_code","refresh_token"]}`), "https://app.example.com/c")
	f.Add([]byte(`{"client_id":"https://a.example/c","redirect_uris":["https://a.example/cb"],"client_secret":"s"}`), "https://a.example/c")
	f.Add([]byte(`{"redirect_uris":["javascript:alert(1)"]}`), "")
	f.Add([]byte(`{"redirect_uris":["https://a.example/cb"],"client_name":"a\u0000b"}`), "")
	f.Add([]byte(`{"redirect_uris":["https://a.example/cb"],"client_name":"Cl\u202eedua"}`), "")
	f.Add([]byte(`{"redirect_uris":["https://a.example/cb"],"client_uri":"https://a.example (verified)"}`), "")
	f.Add([]byte(`{"redirect_uris":["https://a.example/cb"],"grant_types":["implicit"]}`), "")
	f.Add([]byte(`{"redirect_uris":["https://a.example/cb"],"response_types":["token"],"client_uri":"http://a"}`), "")
	f.Add([]byte(`{"redirect_uris":null}`), "")
	f.Add([]byte(`[]`), "")
	f.Fuzz(func(t *testing.T, doc []byte, id string) {
		var m clientMetadata
		if json.Unmarshal(doc, &m) != nil {
			return
		}
		c, aerr := m.check()
		if aerr != nil {
			if aerr.code != "invalid_redirect_uri" && aerr.code != "invalid_client_metadata" || aerr.description == "" {
				t.Fatalf("refusal %+v is not RFC 7591's", aerr)
			}
		} else {
			if n := len(c.RedirectURIs); n < 1 || n > maxRedirectURIs {
				t.Fatalf("accepted %d redirect URIs", n)
			}
			for _, u := range c.RedirectURIs {
				if checkRedirectURI(u) != nil {
					t.Fatalf("accepted redirect URI %q", u)
				}
			}
			if !utf8.ValidString(c.Name) || utf8.RuneCountInString(c.Name) > maxClientNameRunes || keygate.HasHiddenCharacters(c.Name) {
				t.Fatalf("accepted client name %q", c.Name)
			}
			if c.URI != "" && (strings.ContainsAny(c.URI, " \t") || keygate.HasHiddenCharacters(c.URI) || !strings.HasPrefix(c.URI, "https://")) {
				t.Fatalf("accepted client URI %q", c.URI)
			}
			if !slices.Contains(c.GrantTypes, "authorization_code") {
				t.Fatalf("accepted grants %q", c.GrantTypes)
			}
			again, _ := json.Marshal(m)
			var m2 clientMetadata
			if err := json.Unmarshal(again, &m2); err != nil {
				t.Fatal(err)
			}
			c2, aerr2 := m2.check()
			if aerr2 != nil || c2.Name != c.Name || !slices.Equal(c2.RedirectURIs, c.RedirectURIs) || !slices.Equal(c2.GrantTypes, c.GrantTypes) || c2.URI != c.URI {
				t.Fatalf("accepted metadata changes on a round trip: %+v, then %+v %v", c, c2, aerr2)
			}
		}
		if checkMetadataURL(id) != nil {
			return
		}
		dc, err := clientFromDocument(id, &m)
		if err != nil {
			return
		}
		if m.ClientID != id || len(m.ClientSecret) > 0 || aerr != nil || dc.ID != id || !dc.Public() {
			t.Fatalf("document at %q accepted: %+v", id, m)
		}
	})
}

// FuzzCacheTTL reads arbitrary Cache-Control values, as the server of a
// metadata document, chosen by whoever picked the client_id, may send:
// a document is never kept for a negative time or longer than a day, and
// a value that says no-store or no-cache keeps it not at all.
func FuzzCacheTTL(f *testing.F) {
	for _, s := range []string{"", "max-age=60", "no-store", "public, max-age=999999999999999999999", "max-age=-1",
		`max-age="30"`, "No-Cache, max-age=600", "max-age=86401", "max-age=600, NO-STORE", "max-age=0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cacheControl string) {
		ttl := cacheTTL(cacheControl)
		if ttl < 0 || ttl > metadataMaxTTL {
			t.Fatalf("Cache-Control %q: kept %v", cacheControl, ttl)
		}
		for part := range strings.SplitSeq(cacheControl, ",") {
			if d := strings.ToLower(strings.TrimSpace(part)); (d == "no-store" || d == "no-cache") && ttl != 0 {
				t.Fatalf("Cache-Control %q: kept %v", cacheControl, ttl)
			}
		}
	})
}
