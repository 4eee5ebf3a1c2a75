package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/keygate/keygate"
)

// routeTable matches a method and URL to a route with net/http's own
// pattern matching, so route paths mean exactly what Go patterns mean.
// Unclean paths ("/a/../b") and method mismatches match nothing: the
// gateway answers 404 rather than forward something it did not check.
type routeTable struct {
	mux      *http.ServeMux
	byPat    map[string]*keygate.Route
	patterns map[*keygate.Route]string
}

func newRouteTable(routes []keygate.Route) (t *routeTable, err error) {
	t = &routeTable{mux: http.NewServeMux(), byPat: map[string]*keygate.Route{}, patterns: map[*keygate.Route]string{}}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("gateway: bad route: %v", p)
		}
	}()
	for i := range routes {
		route := &routes[i]
		t.patterns[route] = route.Path
		for _, m := range route.Methods {
			pattern := m + " " + route.Path
			t.byPat[pattern] = route
			t.mux.Handle(pattern, http.NotFoundHandler())
		}
	}
	return t, nil
}

func (t *routeTable) match(method string, u *url.URL) *keygate.Route {
	if !cleanURL(u) {
		return nil
	}
	_, pattern := t.mux.Handler(&http.Request{Method: method, URL: u, Host: "keygate"})
	return t.byPat[pattern]
}

// cleanURL reports whether u's path may be matched and forwarded: clean,
// and without encoded slashes.
func cleanURL(u *url.URL) bool {
	return u != nil && cleanPath(u.Path) && !strings.Contains(strings.ToLower(u.RawPath), "%2f")
}

// cleanPath reports whether p is absolute and has no "." or ".." segments
// nor doubled slashes, after percent-decoding: only such paths are matched,
// so the path checked is the path forwarded. Encoded slashes are refused
// for the same reason: the upstream may split "/a%2Fb" differently.
func cleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}

func (t *routeTable) patternOf(r *keygate.Route) string { return t.patterns[r] }
