package keygate

import "net/http"

// HeaderNameIs compares header names folding ASCII case and "_" to "-":
// net/http canonicalises names but keeps underscores, and many
// frameworks (WSGI, PHP, CGI, nginx's underscores_in_headers) read
// X_HTTP_Method_Override as X-HTTP-Method-Override.
func HeaderNameIs(name, want string) bool {
	return len(name) == len(want) && HeaderNameHasPrefix(name, want)
}

// HeaderNameHasPrefix is HeaderNameIs for the first len(prefix) bytes.
func HeaderNameHasPrefix(name, prefix string) bool {
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if foldHeaderByte(name[i]) != foldHeaderByte(prefix[i]) {
			return false
		}
	}
	return true
}

func foldHeaderByte(c byte) byte {
	switch {
	case c == '_':
		return '-'
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	}
	return c
}

// MethodOverrideHeaders name, in the spellings frameworks read, a method
// that replaces the request's: Symfony and so Laravel take
// X-HTTP-Method-Override on any POST, Express's method-override,
// ASP.NET's middleware and gorilla/handlers too, Google's front ends
// X-HTTP-Method.
var MethodOverrideHeaders = []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"}

// MethodOverrides returns the values of h's method override headers, in
// every spelling HeaderNameIs folds together; nil when it has none. A
// route is checked for the request's own method, so whoever checks one
// (the gateway, the verify API and its callers) must see these too.
func MethodOverrides(h http.Header) []string {
	var values []string
	for name, vs := range h {
		if len(name) < len("X-HTTP-Method") || !HeaderNameHasPrefix(name, "X-") {
			continue
		}
		for _, n := range MethodOverrideHeaders {
			if HeaderNameIs(name, n) {
				values = append(values, vs...)
			}
		}
	}
	return values
}
