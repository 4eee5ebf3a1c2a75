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
//
// Go reads a path exactly, but the upstream may not: frameworks fold case
// (Express, ASP.NET), drop ";" parameters from segments (Tomcat, Jetty,
// Spring), ignore a trailing slash (Express, older Spring), trim trailing
// dots and spaces (IIS) or take "\" for "/". Where a wildcard or subtree
// pattern can take a path that such a reading takes to another token
// route ("/v1/SECRET" to public /v1/{name} here, to token /v1/secret
// there), the path matches nothing: the route checked must be the route
// the upstream serves. Nor may one be the path of an endpoint mounted
// ahead of the routes (the MCP endpoint, OAuth-protected): "/MCP" or
// "/mcp;x" would pass a public catch-all route to an upstream that serves
// it as /mcp.
type routeTable struct {
	mux      *http.ServeMux
	byPat    map[string]*keygate.Route
	patterns map[*keygate.Route]string
	// folded matches paths with ASCII letters in lower case against the
	// patterns so folded; nil when no pattern has a wildcard or ends in
	// "/", since then each route matches its own path alone.
	folded *http.ServeMux
	// slashed: some pattern ends in "/", so a path read with a slash
	// added may reach it; upper: some pattern holds an upper-case letter,
	// so folded may match a path other than mux does.
	slashed, upper bool
	// mounts are the paths of the endpoints mounted ahead of the routes
	// (see mount); a subtree's ends in "/".
	mounts []string
}

func newRouteTable(routes []keygate.Route) (t *routeTable, err error) {
	t = &routeTable{mux: http.NewServeMux(), byPat: map[string]*keygate.Route{}, patterns: map[*keygate.Route]string{}}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("gateway: bad route: %v", p)
		}
	}()
	wild := false
	for i := range routes {
		route := &routes[i]
		t.patterns[route] = route.Path
		wild = wild || strings.Contains(route.Path, "{") || strings.HasSuffix(route.Path, "/")
		t.slashed = t.slashed || strings.HasSuffix(route.Path, "/") && route.Path != "/"
		t.upper = t.upper || strings.ToLower(route.Path) != route.Path
		for _, m := range route.Methods {
			pattern := m + " " + route.Path
			t.byPat[pattern] = route
			t.mux.Handle(pattern, http.NotFoundHandler())
		}
	}
	if wild {
		t.fold()
	}
	return t, nil
}

func (t *routeTable) fold() {
	t.folded = http.NewServeMux()
	for pattern, route := range t.byPat {
		foldPattern(t.folded, pattern, route)
	}
}

// mount notes that the endpoint at pattern (a path, "/" ending a
// subtree) is served ahead of the routes: a path that it or one of its
// readings takes there matches no route. Called before the table is
// used.
func (t *routeTable) mount(pattern string) {
	if i := strings.IndexByte(pattern, '/'); i >= 0 {
		t.mounts = append(t.mounts, pattern[i:])
	}
	if t.folded == nil {
		t.fold()
	}
}

// mountedAt reports whether a lenient upstream serves p, which need not
// be clean, from a mounted endpoint: compared without case, with a
// trailing slash dropped or added.
func (t *routeTable) mountedAt(p string) bool {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	bare := c
	if len(c) > 1 {
		bare = strings.TrimSuffix(c, "/")
	}
	for _, m := range t.mounts {
		bareMount := m
		if len(m) > 1 {
			bareMount = strings.TrimSuffix(m, "/")
		}
		if keygate.EqualFoldASCII(bare, bareMount) ||
			m != "/" && strings.HasSuffix(m, "/") && len(c) >= len(m) && keygate.EqualFoldASCII(c[:len(m)], m) {
			return true
		}
	}
	return false
}

// foldPattern adds pattern, in lower case, to mux. Patterns that fold to
// one already there (or that conflict with one once folded) are left
// out: a case-folding upstream could not tell them apart either.
func foldPattern(mux *http.ServeMux, pattern string, route *keygate.Route) {
	defer func() { _ = recover() }()
	method, p, _ := strings.Cut(pattern, " ")
	mux.Handle(method+" "+strings.ToLower(p), routeHandler{route})
}

// routeHandler names the route of a folded pattern.
type routeHandler struct{ route *keygate.Route }

func (routeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }

func (t *routeTable) match(method string, u *url.URL) *keygate.Route {
	if !cleanURL(u) {
		return nil
	}
	_, pattern := t.mux.Handler(&http.Request{Method: method, URL: u, Host: "keygate"})
	route := t.byPat[pattern]
	if route != nil && t.folded != nil && (t.mounts != nil && t.mountedAt(u.Path) || t.readElsewhere(method, u.Path, route)) {
		return nil
	}
	return route
}

// readElsewhere reports whether another reading of p (see routeTable)
// matches a token route other than route, or a mounted endpoint.
func (t *routeTable) readElsewhere(method, p string, route *keygate.Route) bool {
	other := func(mux *http.ServeMux, v string) bool {
		if t.mounts != nil && t.mountedAt(v) {
			return true
		}
		r := t.lookup(mux, method, v)
		return r != nil && r != route && r.Access == keygate.AccessToken
	}
	// A fragment: nginx passes "/v1/secret#x" on to forward-auth and
	// the upstream as sent, but routes and most upstreams read "/v1/secret".
	var upper, semicolon, backslash, trailing bool
	p, _, fragment := strings.Cut(p, "#")
	if fragment && other(t.mux, p) {
		return true
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case 'A' <= c && c <= 'Z':
			upper = true
		case c == ';':
			semicolon = true
		case c == '\\':
			backslash = true
		case (c == '.' || c == ' ') && (i+1 == len(p) || p[i+1] == '/' || p[i+1] == '\\' || p[i+1] == ';'):
			trailing = true
		}
	}
	// Each reading alone, then all of them together; the usual path (no
	// such byte, no upper-case pattern) costs no lookup here.
	loose := loosePath(p, semicolon, backslash, trailing)
	all := strings.ToLower(loose)
	switch {
	case semicolon && other(t.mux, loosePath(p, true, false, false)),
		backslash && other(t.mux, loosePath(p, false, true, false)),
		trailing && other(t.mux, loosePath(p, false, false, true)),
		upper && other(t.folded, strings.ToLower(p)),
		(fragment || all != p || t.upper) && other(t.folded, all):
		return true
	}
	// A trailing slash, dropped or added.
	if len(all) > 1 && strings.HasSuffix(all, "/") {
		return other(t.folded, strings.TrimSuffix(all, "/"))
	}
	return t.slashed && other(t.folded, all+"/")
}

// lookup returns the route mux matches for method and path p, which need
// not be clean: an upstream that reads p so cleans it.
func (t *routeTable) lookup(mux *http.ServeMux, method, p string) *keygate.Route {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	h, pattern := mux.Handler(&http.Request{Method: method, URL: &url.URL{Path: c}, Host: "keygate"})
	if rh, ok := h.(routeHandler); ok {
		return rh.route
	}
	return t.byPat[pattern]
}

// loosePath is p as a lenient upstream reads it: ";" parameters cut from
// each segment, "\" taken for "/", trailing dots and spaces trimmed from
// each segment.
func loosePath(p string, semicolon, backslash, trailing bool) string {
	if backslash {
		p = strings.ReplaceAll(p, `\`, "/")
	}
	if !semicolon && !trailing {
		return p
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if semicolon {
			s, _, _ = strings.Cut(s, ";")
		}
		if trailing {
			s = strings.TrimRight(s, ". ")
		}
		segs[i] = s
	}
	return strings.Join(segs, "/")
}

// cleanURL reports whether u's path may be matched and forwarded: clean,
// without encoded slashes, and without control bytes (an upstream in C
// may end the path at an encoded NUL, "/v1/secret%00", or trim a tab).
func cleanURL(u *url.URL) bool {
	return u != nil && cleanPath(u.Path) && !strings.Contains(strings.ToLower(u.RawPath), "%2f") && !hasControl(u.Path)
}

func hasControl(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] == 0x7f {
			return true
		}
	}
	return false
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
